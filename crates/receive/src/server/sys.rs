//! The few system calls std does not offer: free space of a file system (statvfs), a rename that
//! never replaces (renameat2 RENAME_NOREPLACE), TCP_QUICKACK, and the listening socket systemd
//! passes (sd_listen_fds). The only module allowed `unsafe`; each call is checked and its errors
//! returned as `io::Error`.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

/// Bytes available to an unprivileged user on the file system holding `path`.
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    let c = cpath(path)?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a valid NUL-terminated path; `st` is writable memory of the right type,
    // read only after statvfs reported success.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    // fsblkcnt_t and c_ulong are 32-bit on 32-bit targets.
    #[allow(clippy::unnecessary_cast)]
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Renames `from` to `to` unless `to` exists (then `ErrorKind::AlreadyExists`).
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let (f, t) = (cpath(from)?, cpath(to)?);
    // SAFETY: both are valid NUL-terminated paths; AT_FDCWD makes them relative to the cwd.
    let rc = unsafe { libc::renameat2(libc::AT_FDCWD, f.as_ptr(), libc::AT_FDCWD, t.as_ptr(), libc::RENAME_NOREPLACE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Asks the kernel to acknowledge received segments at once (Linux re-arms delayed ACKs, so this is
/// called again after each read burst). Failure is harmless and ignored by callers.
pub fn quickack(s: &TcpStream) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: the fd is an open TCP socket owned by `s`; the option value is a c_int of the
    // size given.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The listening socket systemd passed (socket activation: `LISTEN_PID` is us, `LISTEN_FDS` >= 1,
/// the first at fd 3), or None when started without one.
pub fn systemd_listener() -> io::Result<Option<TcpListener>> {
    let pid = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok());
    let fds = std::env::var("LISTEN_FDS").ok().and_then(|n| n.parse::<u32>().ok()).unwrap_or(0);
    if pid != Some(std::process::id()) || fds == 0 {
        return Ok(None);
    }
    const SD_LISTEN_FDS_START: libc::c_int = 3;
    // SAFETY: fstat on an fd number only reads its status; a closed fd gives EBADF.
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    if unsafe { libc::fstat(SD_LISTEN_FDS_START, st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded and filled `st`.
    let st = unsafe { st.assume_init() };
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "fd 3 from systemd is not a socket"));
    }
    // SAFETY: systemd hands fd 3 to this process (LISTEN_PID is ours) and nothing else owns it;
    // the TcpListener takes ownership and closes it on drop.
    let l = unsafe { TcpListener::from_raw_fd(SD_LISTEN_FDS_START) };
    // The environment is not passed on to anything we start.
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    Ok(Some(l))
}
