//! The panic hook of the decoding targets. The decoders contain codec panics (`catch_unwind`: a
//! codec bug costs one file, not the daemon), but libfuzzer-sys's own hook aborts on every panic,
//! caught or not; this one only prints, and a panic that escapes the decoder still reaches
//! libfuzzer-sys's `catch_unwind` around the target, which aborts and records the crash.
//!
//! libFuzzer records only crashes, so a contained panic was known only by its log line. With
//! `FUZZ_CONTAINED_DIR` set, the hook also saves the input that caused it, once per panic site,
//! as `contained-FILE-LINE` (scripts/fuzz.sh campaign sets it to the artifacts folder): such an
//! input reproduces the panic for an upstream report or a check before the codec. Touches only
//! that folder.

use std::cell::RefCell;
use std::path::PathBuf;

thread_local! {
    /// The current input, copied in before each decode (the hook has no other way to reach it).
    static INPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

static HOOK: std::sync::Once = std::sync::Once::new();

/// Installs the hook (once) and keeps `data` for it.
pub fn input(data: &[u8]) {
    HOOK.call_once(|| {
        let dir = std::env::var_os("FUZZ_CONTAINED_DIR").map(PathBuf::from);
        std::panic::set_hook(Box::new(move |info| {
            eprintln!("panic (contained unless the run aborts): {info}");
            let (Some(dir), Some(at)) = (&dir, info.location()) else { return };
            let file = at.file().rsplit('/').next().unwrap_or("unknown");
            let path = dir.join(format!("contained-{file}-{}", at.line()));
            if !path.exists() {
                INPUT.with(|i| match std::fs::write(&path, &*i.borrow()) {
                    Ok(()) => eprintln!("contained panic's input saved: {}", path.display()),
                    Err(e) => eprintln!("contained panic's input not saved to {}: {e}", path.display()),
                });
            }
        }))
    });
    INPUT.with(|i| {
        let mut v = i.borrow_mut();
        v.clear();
        v.extend_from_slice(data);
    });
}
