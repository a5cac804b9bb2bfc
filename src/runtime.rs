//! Optional scheduling of the calling (inference) thread from the board profile's `[runtime]`:
//! CPU affinity, SCHED_FIFO real-time priority, and mlockall. Each is asked of the kernel once at
//! start; a refusal (no CAP_SYS_NICE, a CPU that does not exist, RLIMIT_MEMLOCK) is logged with
//! what to do and the daemon runs on without it. Touches only the process's own scheduling state.
//! Also [`lower_this_thread`], for background threads (the sink) that must yield to inference.
//! The crate denies `unsafe`; this module allows it for its libc calls, each with its reason.
#![allow(unsafe_code)]

use crate::config::raw::Runtime;

/// Raises the calling thread's nice value by `by` (at most to 19): it then gets the CPU after
/// the threads at the process's own priority. Linux nice values are per thread
/// (`setpriority(PRIO_PROCESS, 0, ..)` acts on the calling thread only); lowering needs no privilege.
/// Returns the thread's new nice value.
pub fn lower_this_thread(by: i32) -> Result<i32, String> {
    // SAFETY: getpriority/setpriority on the calling thread, plain integers; errno is cleared
    // first because -1 is a valid getpriority result.
    let (target, r) = unsafe {
        *libc::__errno_location() = 0;
        let target = (libc::getpriority(libc::PRIO_PROCESS, 0) + by).min(19);
        (target, libc::setpriority(libc::PRIO_PROCESS, 0, target))
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!("cannot lower this thread's priority to nice {target}: {e}"));
    }
    Ok(target)
}

/// What one setting came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied(String),
    Refused(String),
}

/// Applies every configured setting to the calling thread; returns one outcome per setting asked
/// for (nothing when `[runtime]` asks for nothing). Each outcome is also logged.
pub fn apply(rt: &Runtime) -> Vec<Outcome> {
    let mut out = Vec::new();
    if !rt.cpu_affinity.is_empty() {
        out.push(set_affinity(&rt.cpu_affinity));
    }
    if let Some(p) = rt.realtime_priority {
        out.push(set_fifo(p));
    }
    if rt.mlockall {
        out.push(lock_memory());
    }
    for o in &out {
        match o {
            Outcome::Applied(m) => log::info!("runtime: {m}"),
            Outcome::Refused(m) => log::warn!("runtime: {m}"),
        }
    }
    out
}

fn os_err() -> std::io::Error {
    std::io::Error::last_os_error()
}

fn set_affinity(cpus: &[usize]) -> Outcome {
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    for &c in cpus {
        if c >= max {
            return Outcome::Refused(format!("cpu_affinity {cpus:?}: CPU {c} is beyond the {max} the kernel interface takes; fix runtime.cpu_affinity"));
        }
        // SAFETY: c < CPU_SETSIZE, checked above.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: pid 0 = the calling thread; `set` is a valid cpu_set_t of the size passed.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r == 0 {
        Outcome::Applied(format!("inference thread pinned to CPU(s) {cpus:?}"))
    } else {
        Outcome::Refused(format!(
            "cannot pin the inference thread to CPU(s) {cpus:?}: {}; check the CPU numbers exist (nproc) and are allowed to this service (systemd CPUAffinity=/AllowedCPUs=); running unpinned",
            os_err()
        ))
    }
}

fn set_fifo(priority: u8) -> Outcome {
    let param = libc::sched_param { sched_priority: i32::from(priority) };
    // SAFETY: pid 0 = the calling thread; `param` is a valid sched_param.
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if r == 0 {
        Outcome::Applied(format!("inference thread runs SCHED_FIFO at priority {priority}"))
    } else {
        Outcome::Refused(format!(
            "cannot set SCHED_FIFO priority {priority}: {}; the service needs CAP_SYS_NICE (AmbientCapabilities=CAP_SYS_NICE) or an rtprio limit (LimitRTPRIO={priority}); running at normal priority",
            os_err()
        ))
    }
}

fn lock_memory() -> Outcome {
    // SAFETY: plain syscall with constant flags.
    let r = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) };
    if r == 0 {
        Outcome::Applied("all memory locked in RAM (mlockall)".into())
    } else {
        Outcome::Refused(format!(
            "cannot lock memory (mlockall): {}; raise the locked-memory limit (systemd LimitMEMLOCK=infinity) or give CAP_IPC_LOCK; running without it",
            os_err()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_asked_nothing_done() {
        assert!(apply(&Runtime::default()).is_empty());
    }

    #[test]
    fn affinity_to_an_existing_cpu_applies_and_to_a_missing_one_is_refused_with_advice() {
        // Run on a thread of its own so the test runner's thread keeps its affinity.
        let (ok, bad) = std::thread::spawn(|| {
            let ok = apply(&Runtime { cpu_affinity: vec![0], ..Default::default() });
            let bad = apply(&Runtime { cpu_affinity: vec![1000], ..Default::default() });
            (ok, bad)
        })
        .join()
        .expect("thread");
        assert!(matches!(&ok[0], Outcome::Applied(m) if m.contains("[0]")), "{ok:?}");
        assert!(matches!(&bad[0], Outcome::Refused(m) if m.contains("1000") && m.contains("nproc")), "{bad:?}");
    }

    #[test]
    fn realtime_priority_is_applied_or_refused_with_the_capability_named() {
        let out = std::thread::spawn(|| apply(&Runtime { realtime_priority: Some(1), ..Default::default() }))
            .join()
            .expect("thread");
        match &out[0] {
            Outcome::Applied(m) => assert!(m.contains("SCHED_FIFO")),
            Outcome::Refused(m) => assert!(m.contains("CAP_SYS_NICE"), "{m}"),
        }
    }
}
