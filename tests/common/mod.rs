//! Helpers shared by the daemon's integration tests (tests/daemon.rs, tests/service.rs,
//! tests/faults.rs): start the real binary on a temp drop and state folder with the tiny models,
//! wait on its journal, write small distinct PNG slices.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pe-sentinel"))
}

pub fn data(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(p)
}

/// A board profile on the given model manifests, with a short quiet time.
pub fn profile_with(dir: &Path, classifier: &Path, detector: &Path) -> PathBuf {
    let p = dir.join("profile.toml");
    let text = format!(
        "[board]\nname = \"test\"\n[engine]\nkind = \"tract\"\nprecision = \"fp32\"\nthreads = 1\n\
         [models]\ndir = \"{m}\"\nclassifier = \"{c}\"\ndetector = \"{d}\"\n\
         [paths]\ndrop_dir = \"{dir}/unused-drop\"\nstate_dir = \"{dir}/unused-state\"\n[verdict]\nquiet_s = 1.0\n",
        m = data("").display(),
        c = classifier.display(),
        d = detector.display(),
        dir = dir.display()
    );
    std::fs::write(&p, text).expect("profile");
    p
}

/// A board profile on the tiny untrained models of tests/data.
pub fn profile(dir: &Path) -> PathBuf {
    profile_with(dir, &data("tiny-classifier.toml"), &data("tiny-detector.toml"))
}

pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(cfg: &Path, drop: &Path, state: &Path) -> Daemon {
        Self::start_with_env(cfg, drop, state, &[])
    }

    pub fn start_with_env(cfg: &Path, drop: &Path, state: &Path, env: &[(&str, &str)]) -> Daemon {
        Self::start_command(bin(), cfg, drop, state, env)
    }

    /// `cmd` (the binary, or a wrapper such as strace followed by the binary's path) with the
    /// arguments of `run` on these folders; its log is `state` with extension `log`.
    pub fn start_command(mut cmd: Command, cfg: &Path, drop: &Path, state: &Path, env: &[(&str, &str)]) -> Daemon {
        let log = state.with_extension("log");
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("log");
        cmd.args(["run", "--config"])
            .arg(cfg)
            .arg("--drop")
            .arg(drop)
            .arg("--state")
            .arg(state)
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdout(Stdio::null())
            .stderr(out);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start daemon");
        Daemon { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no chance to finish the slice in hand.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        self.child.wait().expect("wait")
    }
}

/// Waits until `cond` holds; panics with the log after `limit` or if the daemon dies.
pub fn wait_for(d: &mut Daemon, limit: Duration, what: &str, mut cond: impl FnMut(&Daemon) -> bool) {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond(d) {
            return;
        }
        assert!(d.alive(), "daemon died while waiting for {what}:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}:\n{}", d.log());
}

/// A count from the journal, read-only; `None` while the journal or its tables do not exist yet.
pub fn try_count(state: &Path, sql: &str) -> Option<i64> {
    let c = rusqlite::Connection::open_with_flags(
        state.join("journal.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .ok()?;
    c.query_row(sql, [], |r| r.get(0)).ok()
}

/// Files directly in `dir` (not in subfolders).
pub fn files_directly_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// A 64x64 8-bit gray PNG whose pixels encode `n`, so every `n` gives different content (the
/// daemon does not analyse the same content twice).
pub fn png_bytes(n: u32) -> Vec<u8> {
    let mut img = image::GrayImage::new(64, 64);
    for (i, p) in img.pixels_mut().enumerate() {
        let i = i as u32;
        p.0[0] = ((i * 7 + n) % 251) as u8;
    }
    for (k, b) in n.to_le_bytes().iter().enumerate() {
        img.put_pixel(k as u32, 0, image::Luma([*b]));
    }
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("encode png");
    out.into_inner()
}

/// Writes a file atomically into the drop folder (a dotfile first, then renamed in), as a router does.
pub fn drop_file(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.part"));
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, dir.join(name)).expect("rename");
}
