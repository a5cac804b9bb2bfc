//! A flood: 10,000 slices (64x64 gray PNGs, 100 series of 100) appear in the drop folder at once
//! while the daemon runs. All must be analysed, none lost or analysed twice, with the peak
//! resident memory (VmHWM) bounded. Takes minutes, so it is `#[ignore]`d; run it with
//!   cargo test --test flood -- --ignored --nocapture
//! and it prints the rate and the RSS ceiling (recorded in docs/install.md).

mod common;

use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

const SERIES: u32 = 100;
const PER_SERIES: u32 = 100;
/// The ceiling asserted on VmHWM. The daemon holds two models, fixed buffers and bounded queues, so
/// its peak must not grow with the number of files waiting; 10,000 waiting paths cost about 2 MB.
const RSS_CEILING_KB: u64 = 512 * 1024;

fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                n += 1;
            }
        }
    }
    n
}

#[test]
#[ignore = "minutes long: run with --ignored"]
fn ten_thousand_slices_at_once_are_all_analysed_once_with_bounded_memory() {
    let total = SERIES * PER_SERIES;
    let tmp = tempfile::tempdir().expect("tmp");
    let (drop, state, staging) = (tmp.path().join("drop"), tmp.path().join("state"), tmp.path().join("staging"));
    std::fs::create_dir_all(&drop).expect("drop");
    for s in 0..SERIES {
        let dir = staging.join(format!("series-{s:03}"));
        std::fs::create_dir_all(&dir).expect("series");
        for i in 0..PER_SERIES {
            std::fs::write(dir.join(format!("slice-{:04}.png", i + 1)), png_bytes(s * PER_SERIES + i)).expect("png");
        }
    }
    let cfg = profile(tmp.path());
    let mut d = Daemon::start(&cfg, &drop, &state);
    wait_for(&mut d, Duration::from_secs(60), "the daemon ready", |d| d.log().contains("watching drop folder"));
    let idle_kb = status_kb(d.pid(), "VmRSS:").unwrap_or(0);

    // At once: every series folder renamed into the drop folder (complete files, one rename each).
    let t = Instant::now();
    for s in 0..SERIES {
        let name = format!("series-{s:03}");
        std::fs::rename(staging.join(&name), drop.join(&name)).expect("rename series in");
    }
    let mut last = 0;
    let mut last_change = Instant::now();
    loop {
        let n = try_count(&state, "SELECT COUNT(*) FROM slices").unwrap_or(0);
        if n >= i64::from(total) {
            break;
        }
        if n != last {
            last = n;
            last_change = Instant::now();
        }
        assert!(d.alive(), "daemon died at {n} slices:\n{}", d.log());
        assert!(last_change.elapsed() < Duration::from_secs(120), "stuck at {n} slices for 2 min:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(500));
    }
    let elapsed = t.elapsed();
    let hwm_kb = status_kb(d.pid(), "VmHWM:").expect("VmHWM");
    let rows = try_count(&state, "SELECT COUNT(*) FROM slices");
    let distinct = try_count(&state, "SELECT COUNT(DISTINCT sha256) FROM slices");
    let series = try_count(&state, "SELECT COUNT(*) FROM series");
    eprintln!(
        "flood: {total} slices in {:.1} s ({:.0} slices/s); RSS idle {} MB, peak (VmHWM) {} MB",
        elapsed.as_secs_f64(),
        f64::from(total) / elapsed.as_secs_f64(),
        idle_kb / 1024,
        hwm_kb / 1024
    );
    assert_eq!(rows, Some(i64::from(total)), "journal rows");
    assert_eq!(distinct, Some(i64::from(total)), "a slice analysed twice or one missing");
    assert_eq!(series, Some(i64::from(SERIES)));
    wait_for(&mut d, Duration::from_secs(60), "every file moved to done/", |_| {
        count_files(&drop.join("done")) == total as usize
    });
    assert_eq!(count_files(&drop.join("rejected")), 0);
    assert!(hwm_kb < RSS_CEILING_KB, "peak RSS {hwm_kb} kB above the {RSS_CEILING_KB} kB ceiling");
    assert!(d.terminate().success());
}
