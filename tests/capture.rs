//! The capture-card source on replayed console frames: phantom slices rendered into 1920x1080
//! console-like frames (chrome, ticking clock, changing read-outs, a moving cursor, noise) as
//! YUYV and MJPEG, with known slice changes. Checks slice-change detection, the viewport crop and
//! finder, faults and the latest-wins hand-off, and series verdicts through the real pipeline.

use pe_sentinel::pipeline::{ModelSet, Pipeline, SliceScores};
use pe_sentinel::slice::{Pixels, Slice};
use pe_sentinel::source::capture::console::{self, ConsoleSim, READOUT, VIEWPORT};
use pe_sentinel::source::capture::detect::DetectConfig;
use pe_sentinel::source::capture::replay::{RenderFn, ReplaySource};
use pe_sentinel::source::capture::runner::{CaptureEvent, CaptureRunner, CaptureState, RunnerConfig, SliceMaker};
use pe_sentinel::source::capture::viewport::find_viewport;
use pe_sentinel::source::capture::{CaptureError, FrameSource, PixelFormat};
use pe_sentinel::verdict::fusion::fuse;
use pe_sentinel::verdict::series::{SeriesTracker, SeriesVerdict, SliceObservation};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A live (not lossless) runner with short reconnect pauses.
fn runner_config() -> RunnerConfig {
    RunnerConfig {
        detect: detect_config(),
        series_gap_ms: 60_000,
        lossless: false,
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(80),
    }
}

fn detect_config() -> DetectConfig {
    let mut c = DetectConfig::new(VIEWPORT);
    c.masks = vec![READOUT];
    c
}

/// Each slice shown for 3..=6 frames in order, then a scroll back over `back` and forward again.
fn schedule(n: usize, back: &[usize]) -> Vec<usize> {
    let mut s = Vec::new();
    for k in 0..n {
        s.extend(std::iter::repeat_n(k, 3 + (k * 7) % 4));
    }
    for &k in back {
        s.extend(std::iter::repeat_n(k, 4));
    }
    s
}

/// Runs a whole source through a SliceMaker; returns the slices.
fn capture_all(src: &mut dyn FrameSource, maker: &mut SliceMaker) -> Vec<Slice> {
    let name = src.name().to_string();
    let mut out = Vec::new();
    loop {
        match src.next_frame() {
            Ok(f) => {
                if let Some(s) = maker.push(&f, &name).expect("frame") {
                    out.push(s);
                }
            }
            Err(CaptureError::Ended { .. }) => return out,
            Err(e) => panic!("{e}"),
        }
    }
}

fn gray(s: &Slice) -> &[u8] {
    match &s.pixels {
        Pixels::Gray8(v) => v,
        p => panic!("capture slices are Gray8, got {} values", p.len()),
    }
}

/// Mean absolute difference of two equal-size gray images.
fn mad(a: &[u8], b: &[u8]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| f64::from(x.abs_diff(y))).sum::<f64>() / a.len() as f64
}

fn check_detection(pixel: PixelFormat, n: usize, max_mad: f64) {
    let slices = console::phantom_slices(3, 0, n as u32, true);
    let sched = schedule(n, &[n - 1, 2, 3]);
    let frames = sched.len();
    let mut maker = SliceMaker::new(detect_config(), 60_000);
    let mut src = ConsoleSim::new(slices.clone(), sched).into_source(pixel);
    let got = capture_all(&mut src, &mut maker);
    // Every slice change detected exactly once, in order, and nothing for the cursor, the clock,
    // the read-out or the scroll back.
    assert_eq!(got.len(), n, "{pixel}: {:?}", maker.detector.stats);
    assert_eq!(maker.detector.stats.frames, frames as u64);
    assert_eq!(maker.detector.stats.redisplays, 2, "{pixel}: slices 2 and 3 shown again");
    for (i, s) in got.iter().enumerate() {
        assert_eq!((s.width, s.height), (512, 512));
        assert_eq!(s.instance, Some(i as i32 + 1));
        assert!(s.series.0.starts_with("capture-"), "{}", s.series.0);
        let d: Vec<f64> = slices.iter().map(|t| mad(gray(s), t)).collect();
        let best = d.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).map(|(k, _)| k);
        assert_eq!(best, Some(i), "{pixel}: capture {i} looks most like slice {best:?}: {d:?}");
        assert!(d[i] < max_mad, "{pixel}: capture {i} differs from its slice by {:.2} on average", d[i]);
    }
}

#[test]
fn every_slice_change_in_yuyv_frames_is_detected_exactly_once() {
    check_detection(PixelFormat::Yuyv, 10, 2.0);
}

#[test]
fn every_slice_change_in_mjpeg_frames_is_detected_exactly_once() {
    check_detection(PixelFormat::Mjpeg, 6, 3.0);
}

#[test]
fn the_finder_puts_the_viewport_on_the_rendered_image_within_a_pixel() {
    let slices = console::phantom_slices(5, 1, 4, false);
    let mut sim = ConsoleSim::new(slices, vec![0, 1, 2, 3]);
    for n in 0..4 {
        let g = sim.render_gray(n).clone();
        let v = find_viewport(&g).expect("a viewport");
        for (a, b) in
            [(v.x, VIEWPORT.x), (v.y, VIEWPORT.y), (v.right(), VIEWPORT.right()), (v.bottom(), VIEWPORT.bottom())]
        {
            assert!(a.abs_diff(b) <= 1, "frame {n}: found {v}, rendered {VIEWPORT}");
        }
    }
}

#[test]
fn an_unplugged_or_stalled_device_is_a_fault_that_recovers_with_backoff() {
    let slices = console::phantom_slices(9, 0, 8, true);
    let mut attempt = 0u32;
    let open = Box::new(move || -> Result<Box<dyn FrameSource>, CaptureError> {
        attempt += 1;
        let (from, to, end) = match attempt {
            // Slices 0..3, then the cable is pulled.
            1 => (0usize, 4usize, CaptureError::Gone { device: "sim".into(), reason: "ENODEV".into() }),
            2 | 3 => {
                return Err(CaptureError::Open { device: "sim".into(), reason: "No such file or directory".into() })
            }
            // Back: slices 4..5, then the stream stalls.
            4 => (4, 6, CaptureError::Stalled { device: "sim".into(), waited_ms: 2000 }),
            _ => (6, 8, CaptureError::Ended { device: "sim".into() }),
        };
        let sched: Vec<usize> = (from..to).flat_map(|k| [k, k, k]).collect();
        let mut sim = ConsoleSim::new(slices.clone(), sched.clone());
        let mut end = Some(end);
        let format = console::stream_format(PixelFormat::Yuyv);
        let render: RenderFn = Box::new(move |n, buf| {
            if n as usize >= sched.len() {
                return Err(end.take().unwrap_or(CaptureError::Ended { device: "sim".into() }));
            }
            sim.encode(n, PixelFormat::Yuyv, buf).map_err(|reason| CaptureError::Decode { sequence: n, reason })?;
            Ok(true)
        });
        Ok(Box::new(ReplaySource::new("sim", format, render)))
    });
    let cfg = runner_config();
    let runner = CaptureRunner::start(cfg, open).expect("thread");
    let mut got = Vec::new();
    let t = Instant::now();
    while runner.state() != CaptureState::Ended && t.elapsed() < Duration::from_secs(120) {
        // Taken at once: nothing is skipped here.
        if let Some(s) = runner.next(Duration::from_millis(5)) {
            got.push(s);
        }
    }
    while let Some(s) = runner.next(Duration::from_millis(50)) {
        got.push(s);
    }
    let events = runner.take_events();
    assert_eq!(
        events,
        vec![
            CaptureEvent::Fault { reason: "capture device sim: lost (ENODEV); unplugged? retrying".into() },
            CaptureEvent::Resumed { after_retries: 3 },
            CaptureEvent::Fault {
                reason: "capture device sim: no frame for 2000 ms (stream stalled); the console may be off or the cable loose — retrying".into()
            },
            CaptureEvent::Resumed { after_retries: 1 },
            CaptureEvent::Ended,
        ]
    );
    let st = runner.stats();
    assert_eq!((st.faults, st.skipped), (2, 0), "{st:?}");
    // Every slice once, across the reconnects (the detector state survives them).
    let instances: Vec<i32> = got.iter().filter_map(|s| s.instance).collect();
    assert_eq!(instances, (1..=8).collect::<Vec<_>>());
}

#[test]
fn scrolling_faster_than_the_budget_keeps_the_latest_slice_and_counts_the_skipped() {
    let slices = console::phantom_slices(11, 0, 24, false);
    // 24 slices, each shown 3 frames at 30 fps: 10 slices a second.
    let sched: Vec<usize> = (0..24).flat_map(|k| [k, k, k]).collect();
    let open_once =
        std::sync::Mutex::new(Some(ConsoleSim::new(slices, sched).into_source(PixelFormat::Grey).realtime(true)));
    let open = Box::new(move || -> Result<Box<dyn FrameSource>, CaptureError> {
        match open_once.lock().ok().and_then(|mut g| g.take()) {
            Some(s) => Ok(Box::new(s)),
            None => Err(CaptureError::Open { device: "sim".into(), reason: "gone".into() }),
        }
    });
    let cfg = runner_config();
    let runner = CaptureRunner::start(cfg, open).expect("thread");
    let mut got = Vec::new();
    let t = Instant::now();
    while runner.state() != CaptureState::Ended && t.elapsed() < Duration::from_secs(120) {
        if let Some(s) = runner.next(Duration::from_millis(10)) {
            got.push(s.instance.unwrap_or(0));
            // A 300 ms analysis budget: three times slower than the scrolling.
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    while let Some(s) = runner.next(Duration::from_millis(50)) {
        got.push(s.instance.unwrap_or(0));
    }
    let st = runner.stats();
    assert_eq!(st.detect.new_slices, 24, "{st:?}");
    assert_eq!(st.taken + st.skipped, 24, "{st:?}");
    assert!(st.skipped >= 10, "a 300 ms budget against 100 ms per slice must skip: {st:?}");
    assert_eq!(got.last(), Some(&24), "the latest slice wins: {got:?}");
    assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
}

/// Captured slices through the real pipeline and the series rule give the phantom's truth.
#[test]
fn verdicts_on_captured_slices_match_the_truth() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let models = ModelSet::load(&root.join("models/classifier-fp32.toml"), &root.join("models/detector-fp32.toml"))
        .expect("models");
    let mut pipeline = Pipeline::new(&models, 2).expect("pipeline");
    let cfg = pe_sentinel::config::Resolved::load(&root.join("board/x86-cpu.toml"), None, None).expect("profile");
    // As the daemon does: the profile's cascade gate and detector threshold live in the pipeline.
    pipeline.apply_profile(&cfg);
    let fusion = cfg.verdict().fusion_config();
    let mut tracker = SeriesTracker::new(cfg.verdict().series_config());
    let mut scores = SliceScores::default();
    let n = 32u32;
    // The demo study's seed; series 0 and 1 of it, one with emboli and one without.
    let positives = pe_sentinel::phantom::positive_series(7, 3, 0.67);
    let pick: Vec<u32> =
        [true, false].iter().filter_map(|&p| positives.iter().position(|&x| x == p).map(|i| i as u32)).collect();
    assert_eq!(pick.len(), 2, "{positives:?}");
    for &index in &pick {
        let slices = console::phantom_slices(7, index, n, positives[index as usize]);
        let sched: Vec<usize> = (0..n as usize).flat_map(|k| [k, k, k]).collect();
        let mut maker = SliceMaker::new(detect_config(), 60_000);
        let mut src = ConsoleSim::new(slices, sched).into_source(PixelFormat::Yuyv);
        let got = capture_all(&mut src, &mut maker);
        assert_eq!(got.len(), n as usize);
        let label = format!("series-{index}");
        for s in &got {
            pipeline.run(s, &mut scores).expect("pipeline");
            let fs = scores.fusion_scores();
            let v = fuse(&fusion, &fs);
            let obs = SliceObservation {
                instance: s.instance.unwrap_or(0),
                suspicious: v.suspicious,
                p: fs.p,
                boxes: fs.boxes,
                max_confidence: fs.max_confidence,
            };
            let _ = tracker.observe(&label, obs, 0);
        }
        let _ = tracker.close_quiet(u64::MAX / 2);
        let verdict = tracker.summary(&label).expect("summary").verdict;
        let want = if positives[index as usize] { SeriesVerdict::Positive } else { SeriesVerdict::Negative };
        assert_eq!(verdict, want, "series {index} (positive {})", positives[index as usize]);
    }
}

/// The daemon with `[capture]` pointing at an MJPEG recording made by the recorder: every slice
/// of the recording reaches the journal once, under one capture-<time> series.
#[test]
fn the_daemon_analyses_a_recorded_capture_stream() {
    let t = tempfile::tempdir().expect("tempdir");
    let n = 6usize;
    let slices = console::phantom_slices(13, 0, n as u32, false);
    let sched: Vec<usize> = (0..n).flat_map(|k| [k, k, k, k]).collect();
    let frames = sched.len() as u64;
    let mut sim = ConsoleSim::new(slices, sched);
    let mut rec = Vec::new();
    let mut buf = Vec::new();
    for f in 0..frames {
        sim.encode(f, PixelFormat::Mjpeg, &mut buf).expect("encode");
        rec.extend_from_slice(&buf);
    }
    let rec_path = t.path().join("rec.mjpeg");
    std::fs::write(&rec_path, rec).expect("write recording");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("board/x86-cpu.toml")).expect("profile");
    let text = text.replace("dir = \"../models\"", &format!("dir = \"{}\"", root.join("models").display()))
        + &format!(
            "\n[capture]\ndevice = \"replay:{}\"\nviewport = {{ x = {}, y = {}, width = {}, height = {} }}\nmasks = [{{ x = {}, y = {}, width = {}, height = {} }}]\n",
            rec_path.display(),
            VIEWPORT.x,
            VIEWPORT.y,
            VIEWPORT.width,
            VIEWPORT.height,
            READOUT.x,
            READOUT.y,
            READOUT.width,
            READOUT.height
        );
    let cfg = t.path().join("profile.toml");
    std::fs::write(&cfg, text).expect("profile");
    let state = t.path().join("state");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pe-sentinel"))
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--drop")
        .arg(t.path().join("drop"))
        .arg("--state")
        .arg(&state)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let count = |sql: &str| -> Option<i64> {
        let c = rusqlite::Connection::open_with_flags(
            state.join("journal.sqlite3"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .ok()?;
        c.query_row(sql, [], |r| r.get(0)).ok()
    };
    let t0 = Instant::now();
    while count("SELECT COUNT(*) FROM slices") != Some(n as i64) && t0.elapsed() < Duration::from_secs(180) {
        std::thread::sleep(Duration::from_millis(200));
    }
    // Give it time to (wrongly) record more before stopping.
    std::thread::sleep(Duration::from_millis(500));
    let _ = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
    assert_eq!(count("SELECT COUNT(*) FROM slices"), Some(n as i64));
    assert_eq!(count("SELECT COUNT(DISTINCT series) FROM slices WHERE series LIKE 'capture-%'"), Some(1));
    // `check --capture`: one frame with the viewport drawn, and the finder's proposal.
    let png = t.path().join("check.png");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pe-sentinel"))
        .args(["check", "--capture", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&png)
        .output()
        .expect("check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("automatic finder proposes viewport {VIEWPORT}")), "{stdout}");
    let img = image::open(&png).expect("png").to_rgb8();
    assert_eq!(img.dimensions(), (1920, 1080));
    // Green just outside the viewport's top-left corner, the image's own gray inside.
    assert_eq!(img.get_pixel(VIEWPORT.x - 1, VIEWPORT.y - 1).0, [0, 230, 0]);
    let inside = img.get_pixel(VIEWPORT.x + 2, VIEWPORT.y + 40).0;
    assert!(inside[0] == inside[1] && inside[1] == inside[2], "{inside:?}");
}
