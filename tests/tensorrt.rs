//! TensorRT (issue 10) where TensorRT cannot exist. Always: a profile asking for TensorRT on this
//! machine gets the documented behaviour through the real binary (refuse with a clear message, or
//! fall back to tract and say so). With `--features tensorrt`: the binding to the shim's C ABI
//! (load, tensor names and shapes, host buffers by name, error mapping, engine cache) against a
//! stand-in library written in C (tests/tensorrt/stand_in.c, compiled here with the cc crate).
//! None of this runs TensorRT.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pe-sentinel"));
    c.env_remove("ORT_DYLIB_PATH");
    c
}

fn profile(dir: &Path, name: &str, tensorrt: &str) -> PathBuf {
    let p = dir.join(format!("{name}.toml"));
    let text = format!(
        "[board]\nname = \"jetson-test\"\n[engine]\nkind = \"tensorrt\"\nprecision = \"fp32\"\nthreads = 1\n\
         [models]\ndir = \"{m}\"\nclassifier = \"{c}\"\ndetector = \"{d}\"\n\
         [paths]\ndrop_dir = \"{dir}/drop\"\nstate_dir = \"{dir}/state\"\n[tensorrt]\n{tensorrt}\n",
        m = root().join("tests/data").display(),
        c = root().join("tests/data/tiny-classifier.toml").display(),
        d = root().join("tests/data/tiny-detector.toml").display(),
        dir = dir.display()
    );
    std::fs::write(&p, text).expect("profile");
    p
}

fn output(cmd: &mut Command) -> (bool, String) {
    let o = cmd.output().expect("run pe-sentinel");
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

#[test]
fn tensorrt_on_a_machine_without_it_refuses_or_falls_back_as_the_profile_says() {
    let dir = tempfile::tempdir().unwrap();
    let shim = dir.path().join("no/libpe_trt.so");
    // Why TensorRT is unusable differs by build: no shim file (feature on) or no support (off).
    let why = if cfg!(feature = "tensorrt") { shim.display().to_string() } else { "without TensorRT support".into() };

    let fall = profile(dir.path(), "fall", &format!("shim = \"{}\"\nfallback = \"tract\"", shim.display()));
    let (ok, text) = output(bin().args(["check", "--config"]).arg(&fall));
    assert!(ok, "{text}");
    assert!(
        text.contains("engine tract (asked: tensorrt): falling back to tract ([tensorrt] fallback = \"tract\")"),
        "{text}"
    );
    assert!(text.contains(&why), "{text}");

    let refuse = profile(dir.path(), "refuse", &format!("shim = \"{}\"", shim.display()));
    let (ok, text) = output(bin().args(["check", "--config"]).arg(&refuse));
    assert!(!ok, "{text}");
    assert!(text.contains("PROBLEM") && text.contains("refusing to start") && text.contains(&why), "{text}");
    let (ok, text) = output(bin().args(["run", "--config"]).arg(&refuse));
    assert!(!ok, "{text}");
    assert!(text.contains("kind = \"tensorrt\"") && text.contains("refusing to start"), "{text}");

    let (ok, text) = output(bin().args(["build-engines", "--config"]).arg(&refuse));
    assert!(!ok, "{text}");
    assert!(text.contains(&why), "{text}");

    let bad = profile(dir.path(), "bad", "int8_max_loss = 1.5");
    let (ok, text) = output(bin().args(["check", "--config"]).arg(&bad));
    assert!(!ok && text.contains("tensorrt.int8_max_loss"), "{text}");
}

#[cfg(feature = "tensorrt")]
mod shim {
    use super::*;
    use pe_sentinel::engine::tensorrt::shim::{ensure_plan, load_cached, TrtEngine, TrtLibrary};
    use pe_sentinel::engine::tensorrt::{BuildPrecision, TrtError};
    use pe_sentinel::engine::{Engine, EngineError, Outputs};
    use pe_sentinel::model::Manifest;
    use std::sync::{Mutex, MutexGuard, OnceLock};

    /// The stand-in, compiled once per test run into cargo's target tmp folder, and kept loaded
    /// (so the knobs set through [`handle`] stay set while the binding opens it again).
    fn stand_in() -> &'static Path {
        &loaded().0
    }

    fn handle() -> &'static libloading::Library {
        &loaded().1
    }

    fn loaded() -> &'static (PathBuf, libloading::Library) {
        static LIB: OnceLock<(PathBuf, libloading::Library)> = OnceLock::new();
        LIB.get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("pe-trt-standin-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
            let compiler = cc::Build::new()
                .target(&target)
                .host(&target)
                .opt_level(0)
                .out_dir(&dir)
                .cargo_metadata(false)
                .try_get_compiler()
                .expect("a C compiler (cc)");
            let so = dir.join("libpe_trt_standin.so");
            let status = compiler
                .to_command()
                .args(["-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", "-o"])
                .arg(&so)
                .arg(root().join("tests/tensorrt/stand_in.c"))
                .status()
                .expect("run the C compiler");
            assert!(status.success(), "compiling the stand-in failed");
            let lib = unsafe { libloading::Library::new(&so) }.expect("load the stand-in");
            (so, lib)
        })
    }

    /// The stand-in's test-only knobs are process-wide: tests that turn them take this lock.
    fn knobs() -> MutexGuard<'static, ()> {
        static L: Mutex<()> = Mutex::new(());
        L.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(name: &[u8], value: &str) {
        let lib = handle();
        let f: libloading::Symbol<unsafe extern "C" fn(*const std::ffi::c_char)> = unsafe { lib.get(name) }.unwrap();
        let v = std::ffi::CString::new(value).unwrap();
        unsafe { f(v.as_ptr()) };
    }

    fn builds() -> i32 {
        let lib = handle();
        let f: libloading::Symbol<unsafe extern "C" fn() -> i32> =
            unsafe { lib.get(b"pe_trt_standin_builds\0") }.unwrap();
        unsafe { f() }
    }

    fn manifest(name: &str) -> Manifest {
        Manifest::load(root().join(name)).unwrap()
    }

    /// The detector's heads as a plan lists them: the graph's order (head_s16 first).
    const DETECTOR: &str = "in input 1,1,416,416\nout head_s16 1,18,26,26\nout head_s32 1,18,13,13\n";

    #[test]
    fn outputs_are_bound_by_name_and_the_cache_is_reused() {
        let _k = knobs();
        set(b"pe_trt_standin_set_version\0", "10.3.0");
        set(b"pe_trt_standin_set_plan\0", DETECTOR);
        let lib = TrtLibrary::open(stand_in(), None).unwrap();
        assert_eq!(lib.tensorrt_version, "10.3.0");
        let m = manifest("tests/data/tiny-detector.toml");
        let dir = tempfile::tempdir().unwrap();
        let before = builds();
        let r = ensure_plan(&lib, &m, BuildPrecision::Fp32, dir.path(), false).unwrap();
        assert!(r.built.as_deref().is_some_and(|w| w.contains("no plan")), "{r:?}");
        let name = r.path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(&m.model().sha256) && name.contains("-10.3.0-stand_in__no_GPU_-fp32"), "{name}");
        assert!(dir.path().join("timing-10.3.0-stand_in__no_GPU_.cache").is_file());
        let again = ensure_plan(&lib, &m, BuildPrecision::Fp32, dir.path(), false).unwrap();
        assert_eq!(again.built, None);
        assert_eq!(builds(), before + 1);

        let (mut e, _) = load_cached(&lib, &m, BuildPrecision::Fp32, dir.path()).unwrap();
        assert_eq!(e.name(), "tensorrt");
        let mut out = Outputs::new(e.output_specs());
        let input: Vec<f32> = (0..e.input_len()).map(|i| (i % 3) as f32 * 0.5).collect();
        let sum: f64 = input.iter().map(|&v| v as f64).sum();
        for _ in 0..2 {
            e.run(&input, &mut out).unwrap();
            // head_s16 is the plan's output 0, head_s32 its output 1, whatever the manifest order.
            for (name, k) in [("head_s16", 1.0), ("head_s32", 2.0)] {
                let got = out.get(name).unwrap();
                for (i, g) in got.iter().enumerate().step_by(97) {
                    assert_eq!(*g, (sum + 1000.0 * k + i as f64) as f32, "{name}[{i}]");
                }
            }
        }
        assert_eq!(out.tensors()[0].spec.name, "head_s32");
        assert!(matches!(e.run(&[0.0; 3], &mut out), Err(EngineError::InputLen { .. })));
    }

    #[test]
    fn plan_tensors_are_checked_against_the_manifest() {
        let _k = knobs();
        set(b"pe_trt_standin_set_version\0", "10.3.0");
        let lib = TrtLibrary::open(stand_in(), None).unwrap();
        let m = manifest("tests/data/tiny-detector.toml");
        let plan = |d: &str| format!("PE-TRT-STANDIN 1\n{d}").into_bytes();
        let load = |d: &str| TrtEngine::load(&lib, &plan(d), &m).map(|_| ()).unwrap_err();
        let e = load(&DETECTOR.replace("head_s32 1,18,13,13", "head_s32 1,18,13,14"));
        assert!(matches!(e, EngineError::OutputShape { .. }) && e.to_string().contains("head_s32"), "{e}");
        let e = load(&DETECTOR.replace("head_s32", "head_big"));
        assert!(matches!(e, EngineError::OutputMissing { .. }) && e.to_string().contains("head_big"), "{e}");
        let e = load(&DETECTOR.replace("in input", "in image"));
        assert!(matches!(e, EngineError::InputName { .. }), "{e}");
        let e = load(&DETECTOR.replace("1,1,416,416", "1,1,-1,416"));
        assert!(e.to_string().contains("dynamic shape"), "{e}");
        let e = load(&DETECTOR.replace("1,1,416,416", "1,1,320,320"));
        assert!(e.to_string().contains("[1, 1, 416, 416]"), "{e}");
        // Not a plan at all: the shim's code -2 maps to the "rebuild it" message.
        let e = TrtEngine::load(&lib, b"garbage", &m).map(|_| ()).unwrap_err();
        assert!(e.to_string().contains("cannot deserialize") && e.to_string().contains("build-engines"), "{e}");
    }

    #[test]
    fn a_new_tensorrt_version_or_a_corrupt_plan_means_a_rebuild() {
        let _k = knobs();
        set(b"pe_trt_standin_set_plan\0", "in input 1,1,224,224\nout probs 1,2\n");
        set(b"pe_trt_standin_set_version\0", "8.5.2");
        let m = manifest("tests/data/tiny-classifier.toml");
        let dir = tempfile::tempdir().unwrap();
        let lib = TrtLibrary::open(stand_in(), None).unwrap();
        let old = ensure_plan(&lib, &m, BuildPrecision::Fp32, dir.path(), false).unwrap();
        set(b"pe_trt_standin_set_version\0", "10.3.0");
        let lib = TrtLibrary::open(stand_in(), None).unwrap();
        let new = ensure_plan(&lib, &m, BuildPrecision::Fp32, dir.path(), false).unwrap();
        let why = new.built.unwrap();
        assert!(why.contains("8.5.2") && why.contains("10.3.0"), "{why}");
        assert_ne!(old.path, new.path);
        // A plan TensorRT cannot read (here: overwritten) is rebuilt once, then used.
        std::fs::write(&new.path, b"truncated").unwrap();
        let (mut e, report) = load_cached(&lib, &m, BuildPrecision::Fp32, dir.path()).unwrap();
        assert!(report.built.is_some(), "{report:?}");
        let mut out = Outputs::new(e.output_specs());
        e.run(&vec![0.0; e.input_len()], &mut out).unwrap();
        assert_eq!(out.get("probs").unwrap(), &[1000.0, 1001.0]);
    }

    #[test]
    fn int8_needs_explicit_quantization_and_errors_are_mapped() {
        let _k = knobs();
        set(b"pe_trt_standin_set_plan\0", "in input 1,1,224,224\nout probs 1,2\n");
        let lib = TrtLibrary::open(stand_in(), None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        // The shipped INT8 classifier has Q/DQ nodes; the FP32 one has none.
        let q = manifest("models/classifier-int8.toml");
        let r = ensure_plan(&lib, &q, BuildPrecision::Int8Qdq, dir.path(), false).unwrap();
        assert!(r.path.to_string_lossy().ends_with("-int8.plan"));
        let f = manifest("models/classifier-fp32.toml");
        let e = ensure_plan(&lib, &f, BuildPrecision::Int8Qdq, dir.path(), false).unwrap_err();
        assert!(e.to_string().contains("does not support") && e.to_string().contains("Q/DQ"), "{e}");
    }

    #[test]
    fn no_cuda_device_and_a_runtime_only_library_are_reported_before_any_build() {
        let _k = knobs();
        set(b"pe_trt_standin_set_plan\0", "in input 1,1,224,224\nout probs 1,2\n");
        set(b"pe_trt_standin_set_cuda\0", "35 no usable CUDA device: CUDA error 35 cudaErrorInsufficientDriver");
        let lib = TrtLibrary::open(stand_in(), Some(Path::new("/opt/trt/libnvinfer_lean.so.11")));
        set(b"pe_trt_standin_set_cuda\0", "");
        let lib = lib.unwrap();
        assert_eq!(lib.tensorrt_library, "/opt/trt/libnvinfer_lean.so.11");
        assert_eq!(lib.header_version, "0.0.0.0-standin");
        let cuda = lib.cuda_unusable.clone().expect("CUDA reported unusable");
        assert_eq!(cuda.code, 35);
        assert!(cuda.message.contains("cudaErrorInsufficientDriver"), "{cuda:?}");
        assert_eq!(lib.gpu_name, "");
        let e = lib.gpu().unwrap_err();
        assert!(matches!(e, TrtError::Cuda(_)) && e.to_string().contains("cudaErrorInsufficientDriver"), "{e}");

        set(b"pe_trt_standin_set_builder\0", "0");
        let lib = TrtLibrary::open(stand_in(), None);
        set(b"pe_trt_standin_set_builder\0", "1");
        let lib = lib.unwrap();
        assert!(!lib.has_builder && lib.describe().contains("runtime only, no builder"), "{}", lib.describe());
        set(b"pe_trt_standin_set_builder\0", "0");
        let dir = tempfile::tempdir().unwrap();
        let e =
            ensure_plan(&lib, &manifest("tests/data/tiny-classifier.toml"), BuildPrecision::Fp32, dir.path(), false);
        set(b"pe_trt_standin_set_builder\0", "1");
        let e = e.unwrap_err().to_string();
        assert!(e.contains("full TensorRT builder") && e.contains("[tensorrt] library"), "{e}");
    }

    #[test]
    fn a_library_that_is_not_the_shim_is_refused_by_name() {
        let libc = ["/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("libc.so.6");
        let e = TrtLibrary::open(&libc, None).map(|_| ()).unwrap_err();
        assert!(e.contains("missing symbol `pe_trt_abi_version`"), "{e}");
        let e = TrtLibrary::open(Path::new("/nonexistent/libpe_trt.so"), None).map(|_| ()).unwrap_err();
        assert!(e.contains("no such file") && e.contains("board/jetson/shim/build.sh"), "{e}");
    }

    #[test]
    fn the_daemon_runs_on_the_stand_in_through_the_profile() {
        // The binary is another process: its stand-in has the default plan, so a profile on the
        // tiny classifier builds and loads a plan whose tensors do not match the detector's.
        let dir = tempfile::tempdir().unwrap();
        let p = profile(dir.path(), "standin", &format!("shim = \"{}\"", stand_in().display()));
        let (ok, text) = output(bin().args(["build-engines", "--config"]).arg(&p));
        assert!(ok, "{text}");
        assert!(
            text.contains("TensorRT 0.0.0-standin (full: builder and runtime) from libnvinfer_standin.so via shim")
                && text.contains("built with TensorRT 0.0.0.0-standin headers on stand-in (no GPU)")
                && text.contains("built fp32 plan"),
            "{text}"
        );
        let (ok, text) = output(bin().args(["build-engines", "--config"]).arg(&p));
        assert!(ok && text.contains("is current"), "{text}");
        // Its default plan (input 1,1,4,4) does not fit the tiny models: refused, by name.
        let (ok, text) = output(bin().args(["check", "--config"]).arg(&p));
        assert!(!ok && text.contains("refusing to start") && text.contains("[1, 1, 224, 224]"), "{text}");
    }
}

/// `[tensorrt] int8_max_loss` applied by `eval --int8-baseline` on a phantom eval set.
#[test]
fn eval_refuses_int8_that_loses_more_than_the_margin() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("eval");
    let (ok, text) = output(
        bin()
            .args([
                "phantom",
                "--series",
                "2",
                "--slices",
                "6",
                "--format",
                "png",
                "--seed",
                "5",
                "--pe-fraction",
                "0.5",
                "--out",
            ])
            .arg(&data),
    );
    assert!(ok, "{text}");
    let p = dir.path().join("x86.toml");
    let text = std::fs::read_to_string(root().join("board/x86-cpu.toml"))
        .unwrap()
        .replace("dir = \"../models\"", &format!("dir = \"{}\"", root().join("models").display()));
    std::fs::write(&p, format!("{text}\n[tensorrt]\nint8_max_loss = 0.05\n")).unwrap();
    let int8 = dir.path().join("int8.json");
    let (ok, text) = output(
        bin()
            .args(["eval", "--precision", "int8", "--data"])
            .arg(&data)
            .arg("--config")
            .arg(&p)
            .arg("--json")
            .arg(&int8),
    );
    assert!(ok, "{text}");
    // A baseline equal to the INT8 figures loses nothing.
    let (ok, text) = output(
        bin()
            .args(["eval", "--precision", "int8", "--data"])
            .arg(&data)
            .arg("--config")
            .arg(&p)
            .arg("--int8-baseline")
            .arg(&int8),
    );
    assert!(ok && text.contains("INT8 within int8_max_loss = 0.05"), "{text}");
    // A baseline 0.1 better on series sensitivity than INT8: refused, naming the figure.
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&int8).unwrap()).unwrap();
    let s = v["series_sensitivity"].as_f64().expect("series sensitivity");
    v["series_sensitivity"] = serde_json::json!(s + 0.1);
    let better = dir.path().join("better.json");
    std::fs::write(&better, v.to_string()).unwrap();
    let (ok, text) = output(
        bin()
            .args(["eval", "--precision", "int8", "--data"])
            .arg(&data)
            .arg("--config")
            .arg(&p)
            .arg("--int8-baseline")
            .arg(&better),
    );
    assert!(!ok && text.contains("series sensitivity") && text.contains("int8_max_loss = 0.05"), "{text}");
}
