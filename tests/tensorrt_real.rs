//! The TensorRT shim with NVIDIA's real TensorRT, on a machine without a GPU (issue 24).
//! scripts/trt-compile.sh builds board/jetson/shim/pe_trt.cpp against the TensorRT 11.1 headers
//! and unpacks the lean TensorRT 11.1 runtime (PyPI tensorrt-lean-cu12-libs) and the CUDA 12.9
//! runtime into `PE_SENTINEL_TRT_DIR` (scripts/test.sh runs it first). Every run here is the real
//! `pe-sentinel` binary in a child process, so a crash inside TensorRT or CUDA shows as an exit by
//! signal: each test asserts an exit code and the messages. Nothing here builds or runs a plan:
//! that needs a GPU and the full TensorRT (docs/engines.md). Feature `tensorrt` only.
#![cfg(feature = "tensorrt")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What scripts/trt-compile.sh wrote: the 11.1 shim and the lean runtime.
fn trt() -> (PathBuf, PathBuf) {
    let dir = match std::env::var_os("PE_SENTINEL_TRT_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/pe-sentinel/tensorrt"),
    };
    let shim = dir.join("build/trt-11.1/libpe_trt.so");
    let lean = dir.join("lean/libnvinfer_lean.so.11");
    for p in [&shim, &lean] {
        assert!(p.exists(), "{} not found: run scripts/trt-compile.sh (or set PE_SENTINEL_TRT_DIR)", p.display());
    }
    (shim, lean)
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pe-sentinel"));
    c.env_remove("ORT_DYLIB_PATH").env_remove("LD_LIBRARY_PATH");
    c
}

/// The shipped x86 profile on the shipped models, asking for TensorRT with `tensorrt` lines.
fn profile(dir: &Path, name: &str, tensorrt: &str) -> PathBuf {
    let text = std::fs::read_to_string(root().join("board/x86-cpu.toml")).expect("shipped profile");
    let text = text
        .replace("dir = \"../models\"", &format!("dir = \"{}\"", root().join("models").display()))
        .replace("kind = \"auto\" ", "kind = \"tensorrt\" ")
        .replace("/var/lib/pe-sentinel/drop", &dir.join("drop").display().to_string())
        .replace("\"/var/lib/pe-sentinel\"", &format!("\"{}\"", dir.join("state").display()));
    assert!(text.contains("kind = \"tensorrt\""), "the shipped profile's engine line changed");
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, format!("{text}\n[tensorrt]\n{tensorrt}\n")).expect("profile");
    p
}

/// Exit code (None: killed by a signal, i.e. a crash) and all output.
fn output(cmd: &mut Command) -> (Option<i32>, String) {
    let o = cmd.output().expect("run pe-sentinel");
    (o.status.code(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

/// What `check` and the daemon must say about the lean library on this machine.
fn says_lean_library_and_no_device(text: &str, shim: &Path, lean: &Path) {
    for want in [
        "TensorRT 11.1.0 (runtime only, no builder)",
        &format!("from {}", lean.display()),
        &format!("via shim {} built with TensorRT 11.1.0.106 headers", shim.display()),
        "no usable CUDA device",
        // CUDA's own code, name and message: no driver on this machine.
        "CUDA error 35 cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version",
    ] {
        assert!(text.contains(want), "missing `{want}` in:\n{text}");
    }
}

#[test]
fn check_names_the_lean_library_and_cudas_reason_then_applies_the_fallback_policy() {
    let (shim, lean) = trt();
    let dir = tempfile::tempdir().unwrap();
    let lines = |fallback: &str| format!("shim = \"{}\"\nlibrary = \"{}\"\n{fallback}", shim.display(), lean.display());

    let tract = profile(dir.path(), "tract", &lines("fallback = \"tract\""));
    let (code, text) = output(bin().args(["check", "--config"]).arg(&tract));
    assert_eq!(code, Some(0), "{text}");
    // Shown in CI's log (scripts/test.sh runs this file with --nocapture): what `check` says.
    println!("== pe-sentinel check, real lean TensorRT, fallback tract:\n{text}");
    says_lean_library_and_no_device(&text, &shim, &lean);
    assert!(text.contains("engine tract (asked: tensorrt): falling back to tract"), "{text}");
    assert!(text.contains("engine tract loaded and warmed up"), "{text}");

    let refuse = profile(dir.path(), "refuse", &lines("fallback = \"refuse\""));
    let (code, text) = output(bin().args(["check", "--config"]).arg(&refuse));
    assert_eq!(code, Some(1), "{text}");
    says_lean_library_and_no_device(&text, &shim, &lean);
    assert!(text.contains("PROBLEM") && text.contains("refusing to start"), "{text}");

    // The daemon itself refuses the same way, with an exit code, not a crash.
    let (code, text) = output(bin().args(["run", "--config"]).arg(&refuse));
    assert_eq!(code, Some(1), "{text}");
    says_lean_library_and_no_device(&text, &shim, &lean);
    assert!(text.contains("refusing to start"), "{text}");
}

#[test]
fn building_engines_with_the_lean_runtime_says_it_needs_the_full_builder() {
    let (shim, lean) = trt();
    let dir = tempfile::tempdir().unwrap();
    let p = profile(dir.path(), "lean", &format!("shim = \"{}\"\nlibrary = \"{}\"", shim.display(), lean.display()));
    let (code, text) = output(bin().args(["build-engines", "--config"]).arg(&p));
    assert_eq!(code, Some(1), "{text}");
    println!("== pe-sentinel build-engines, real lean TensorRT:\n{text}");
    assert!(text.contains("TensorRT 11.1.0 (runtime only, no builder)"), "{text}");
    assert!(text.contains("it cannot build engines, building needs the full TensorRT builder"), "{text}");
    assert!(!dir.path().join("state/engines").exists(), "nothing may be written for a build that cannot happen");
}

#[test]
fn without_a_tensorrt_library_the_shim_says_which_names_it_tried() {
    let (shim, _) = trt();
    let dir = tempfile::tempdir().unwrap();
    // No `library`: the shim asks the system loader, which has no TensorRT on this machine.
    let p = profile(dir.path(), "none", &format!("shim = \"{}\"\nfallback = \"tract\"", shim.display()));
    let (code, text) = output(bin().args(["check", "--config"]).arg(&p));
    assert_eq!(code, Some(0), "{text}");
    for want in [
        "falling back to tract",
        "no TensorRT library could be loaded",
        "libnvinfer.so.11: cannot open shared object file",
        "libnvinfer_lean.so.11: cannot open shared object file",
        "built with TensorRT 11.1.0.106 headers",
    ] {
        assert!(text.contains(want), "missing `{want}` in:\n{text}");
    }
}

#[test]
fn the_daemon_falls_back_to_tract_and_analyses_a_slice() {
    let (shim, lean) = trt();
    let dir = tempfile::tempdir().unwrap();
    let p = profile(
        dir.path(),
        "daemon",
        &format!("shim = \"{}\"\nlibrary = \"{}\"\nfallback = \"tract\"", shim.display(), lean.display()),
    );
    let slices = dir.path().join("phantom");
    let (code, text) = output(
        bin()
            .args(["phantom", "--series", "1", "--slices", "1", "--seed", "3", "--format", "png", "--out"])
            .arg(&slices),
    );
    assert_eq!(code, Some(0), "{text}");
    let png = walk(&slices).into_iter().find(|f| f.extension().is_some_and(|e| e == "png")).expect("a phantom PNG");
    let drop = dir.path().join("drop");
    std::fs::create_dir_all(&drop).unwrap();
    let log = dir.path().join("daemon.log");
    let mut child = bin()
        .args(["run", "--config"])
        .arg(&p)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("daemon");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let watching = wait(|| read().contains("watching drop folder"), Duration::from_secs(120));
    if watching {
        // Written elsewhere, then renamed in: the drop folder's contract.
        let tmp = dir.path().join("slice.png.part");
        std::fs::copy(&png, &tmp).unwrap();
        std::fs::rename(&tmp, drop.join("slice.png")).unwrap();
    }
    let done = watching && wait(|| drop.join("done/slice.png").exists(), Duration::from_secs(120));
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let status = child.wait().expect("daemon exit");
    let text = read();
    assert!(watching && done, "the daemon did not analyse the slice:\n{text}");
    assert_eq!(status.code(), Some(0), "{text}");
    says_lean_library_and_no_device(&text, &shim, &lean);
    assert!(text.contains("engine tract (asked: tensorrt): falling back to tract"), "{text}");
}

/// The binding itself, in a child process (this test binary run again for this one test): the
/// shim refuses to deserialize without a device instead of creating a TensorRT runtime, which
/// the TensorRT 11 lean runtime returns as a non-null pointer that crashes the next call.
#[test]
fn loading_a_plan_without_a_device_is_an_error_in_the_binding_not_a_crash() {
    const NAME: &str = "loading_a_plan_without_a_device_is_an_error_in_the_binding_not_a_crash";
    if std::env::var_os("PE_TRT_REAL_CHILD").is_some() {
        return load_in_this_process();
    }
    let exe = std::env::current_exe().expect("test binary");
    let o = Command::new(exe)
        .args(["--exact", NAME, "--nocapture", "--test-threads", "1"])
        .env("PE_TRT_REAL_CHILD", "1")
        .output()
        .expect("run the child");
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "the child crashed or failed:\n{text}");
    assert!(text.contains("child: loading the TensorRT plan failed: CUDA: no usable CUDA device"), "{text}");
}

fn load_in_this_process() {
    use pe_sentinel::engine::tensorrt::shim::{TrtEngine, TrtLibrary};
    let (shim, lean) = trt();
    let lib = TrtLibrary::open(&shim, Some(&lean)).expect("the shim opens the lean runtime");
    assert_eq!(lib.tensorrt_version, "11.1.0");
    assert!(!lib.has_builder);
    assert_eq!(lib.cuda_unusable.as_ref().map(|c| c.code), Some(35), "{:?}", lib.cuda_unusable);
    let m = pe_sentinel::model::Manifest::load(root().join("models/classifier-fp32.toml")).expect("manifest");
    // Bytes that are no plan: without the shim's own CUDA check TensorRT would be asked to read them.
    let e = TrtEngine::load(&lib, b"not a plan", &m).map(|_| ()).expect_err("no device, no plan");
    let e = e.to_string();
    assert!(e.contains("cudaErrorInsufficientDriver"), "{e}");
    let at = e.find("loading the TensorRT plan").unwrap_or(0);
    println!("child: {}", &e[at..]);
}

fn wait(mut f: impl FnMut() -> bool, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}
