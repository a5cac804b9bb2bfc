//! `pe-sentinel ack` without a network: the running daemon listens on a Unix socket in its state
//! folder (`<state>/display.sock`, mode from the umask, so only users who may write the state
//! folder can reach it); the CLI connects, sends `ACK\n` and prints the one-line answer. Touches
//! that socket file only (created at start, removed at stop; a stale one from a killed daemon is
//! replaced).
//!
//! Protocol: one request line, one answer line. `ACK` -> `cleared <series>; next <series>` or
//! `cleared <series>; none waiting` or `nothing latched`. Anything else -> `unknown request`.

use super::alert::Cleared;
use super::Shared;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The socket's name inside the state folder.
pub const SOCKET_NAME: &str = "display.sock";
const ACCEPT_POLL: Duration = Duration::from_millis(100);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{path}: another pe-sentinel daemon is answering on this socket; stop it or give this one another --state folder")]
    InUse { path: PathBuf },
    #[error("{path}: cannot listen for `pe-sentinel ack`: {err}; check that the state folder is writable (and its path shorter than 100 bytes)")]
    Bind { path: PathBuf, err: std::io::Error },
    #[error("no running daemon with a display answers at {path} ({err}); is `pe-sentinel run` running with a [display] section and this --state folder?")]
    Connect { path: PathBuf, err: std::io::Error },
    #[error("{path}: the daemon did not answer ({err}); see its log")]
    Exchange { path: PathBuf, err: std::io::Error },
}

pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

/// Sends `ACK` to the daemon using `state_dir`; returns its answer line.
pub fn send_ack(state_dir: &Path) -> Result<String, ControlError> {
    let path = socket_path(state_dir);
    let mut s = UnixStream::connect(&path).map_err(|err| ControlError::Connect { path: path.clone(), err })?;
    let exchange = |err| ControlError::Exchange { path: path.clone(), err };
    s.set_read_timeout(Some(IO_TIMEOUT)).map_err(exchange)?;
    s.set_write_timeout(Some(IO_TIMEOUT)).map_err(exchange)?;
    s.write_all(b"ACK\n").map_err(exchange)?;
    let mut line = String::new();
    BufReader::new(&s).take_line(&mut line).map_err(exchange)?;
    Ok(line.trim_end().to_string())
}

trait TakeLine {
    fn take_line(&mut self, line: &mut String) -> std::io::Result<()>;
}

impl<R: BufRead> TakeLine for R {
    /// One line of at most 256 bytes.
    fn take_line(&mut self, line: &mut String) -> std::io::Result<()> {
        use std::io::Read;
        self.take(256).read_line(line).map(|_| ())
    }
}

pub(crate) struct Listener {
    path: PathBuf,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Listener {
    pub(crate) fn start(state_dir: &Path, shared: Arc<Shared>) -> Result<Self, ControlError> {
        let path = socket_path(state_dir);
        if path.exists() {
            if UnixStream::connect(&path).is_ok() {
                return Err(ControlError::InUse { path });
            }
            // Left by a daemon that was killed: nobody answers on it.
            let _ = std::fs::remove_file(&path);
        }
        let bind = |err| ControlError::Bind { path: path.clone(), err };
        let listener = UnixListener::bind(&path).map_err(bind)?;
        // Non-blocking accept, polled, so the thread sees the stop flag without a wake-up trick.
        listener.set_nonblocking(true).map_err(bind)?;
        let sh = Arc::clone(&shared);
        let thread =
            std::thread::Builder::new().name("display-ack".into()).spawn(move || serve(listener, sh)).map_err(bind)?;
        Ok(Self { path, thread: Some(thread), shared })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(listener: UnixListener, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = answer(stream, &shared) {
                    log::warn!("display: a `pe-sentinel ack` request failed: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
            Err(e) => {
                log::warn!("display: accepting `pe-sentinel ack` failed: {e}; retrying");
                std::thread::sleep(ACCEPT_POLL);
            }
        }
    }
}

fn answer(stream: UnixStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new(&stream).take_line(&mut line)?;
    let reply = if line.trim().eq_ignore_ascii_case("ACK") {
        match shared.ack("pe-sentinel ack") {
            Cleared::Nothing => "nothing latched".to_string(),
            Cleared::Alert { alert, next: Some(n), .. } => format!("cleared {}; next {n}", alert.series),
            Cleared::Alert { alert, next: None, .. } => format!("cleared {}; none waiting", alert.series),
        }
    } else {
        "unknown request".to_string()
    };
    (&stream).write_all(format!("{reply}\n").as_bytes())
}
