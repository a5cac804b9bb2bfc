//! The onnxruntime engine: the fast CPU path on x86 (and CUDA/TensorRT execution providers where
//! the installed onnxruntime has them), through the `ort` crate with its `load-dynamic` feature.
//!
//! The shared library is never linked: [`OrtLibrary::find`] looks for it where the board profile,
//! the environment and the install layout say, probes each candidate itself (dlopen, the
//! `OrtGetApiBase` symbol, the version string) and records what it looked for where, so a missing
//! or wrong library is a clear message and never ort's panic. [`OrtPlan::load`] builds one session
//! per model (intra-op threads from the profile, spinning only while a run lasts, full graph
//! optimization) and binds the input and
//! every output to tensors allocated once; [`Engine::run`] copies the slice into the bound input
//! and the bound outputs into the caller's [`Outputs`].
//! Touches: the library file(s) it probes and loads, the ONNX file (through its manifest) at load.
//!
//! `unsafe` is allowed here only for [`probe`]: dlopen and one call through the C API's
//! `OrtGetApiBase` to read the version before ort is given the library.
#![allow(unsafe_code)]
use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::memory::Allocator;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{IoBinding, Session};
use ort::value::Tensor;

use super::{Engine, EngineError, Outputs};
use crate::model::{Manifest, OutputSpec};

/// Oldest onnxruntime this build can use (`ort`'s `api-17` feature: the C API of 1.17).
pub const MIN_MINOR_VERSION: u32 = ort::MINOR_VERSION;

/// File name the system loader is asked for when nothing else names a library.
pub const SYSTEM_NAME: &str = "libonnxruntime.so";

/// Environment variable naming the library (ort's own convention).
pub const ENV_VAR: &str = "ORT_DYLIB_PATH";

/// One place looked at for the library, and what was found there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Where this candidate came from ("profile engine.onnxruntime_lib", "ORT_DYLIB_PATH", ...).
    pub source: String,
    /// The path (or bare name for the system loader) tried.
    pub path: PathBuf,
    /// `Ok(version)` or why it was refused.
    pub result: Result<String, String>,
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.result {
            Ok(v) => write!(f, "{} {}: onnxruntime {v}", self.source, self.path.display()),
            Err(e) => write!(f, "{} {}: {e}", self.source, self.path.display()),
        }
    }
}

/// No usable onnxruntime library: every place looked at, and why each was refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no usable onnxruntime library (need version 1.{min}.0 or newer); looked at: {}; install it with scripts/get-onnxruntime.sh and set [engine] onnxruntime_lib, or set {ENV_VAR}", list(.attempts))]
pub struct LibraryNotFound {
    pub min: u32,
    pub attempts: Vec<Attempt>,
}

fn list(attempts: &[Attempt]) -> String {
    attempts.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// The candidates, in the order they are tried: the profile's path alone when it names one;
/// otherwise `ORT_DYLIB_PATH`, the package's own lib folder, then the system loader.
pub fn candidates(configured: Option<&Path>) -> Vec<(String, PathBuf)> {
    if let Some(p) = configured {
        return vec![("profile engine.onnxruntime_lib".into(), p.to_path_buf())];
    }
    let mut out = Vec::new();
    if let Some(v) = std::env::var_os(ENV_VAR).filter(|v| !v.is_empty()) {
        out.push((ENV_VAR.to_string(), PathBuf::from(v)));
    }
    if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        out.push(("package lib folder".into(), dir.join("../lib/pe-sentinel").join(SYSTEM_NAME)));
    }
    out.push(("system loader".into(), PathBuf::from(SYSTEM_NAME)));
    out
}

type ApiBaseFn = unsafe extern "C" fn() -> *const ort::sys::OrtApiBase;

/// Opens `path` and asks it for its version, without handing it to ort.
pub fn probe(path: &Path) -> Result<String, String> {
    if path.components().count() > 1 && !path.exists() {
        return Err("no such file".into());
    }
    // SAFETY: loading a shared library runs its initialisers; the candidates are the library the
    // operator configured or the onnxruntime of the install, which is what we are asked to load.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| format!("cannot load it ({e})"))?;
    // SAFETY: the symbol's type is the C API's `const OrtApiBase* OrtGetApiBase(void)`.
    let get: libloading::Symbol<ApiBaseFn> = unsafe { lib.get(b"OrtGetApiBase\0") }
        .map_err(|_| "it loads but does not export OrtGetApiBase: not an onnxruntime library".to_string())?;
    // SAFETY: OrtGetApiBase takes nothing and returns a pointer to a static struct (or null).
    let base = unsafe { get() };
    if base.is_null() {
        return Err("OrtGetApiBase returned null".into());
    }
    // SAFETY: `base` is non-null and points to the library's static OrtApiBase; GetVersionString
    // returns a static NUL-terminated string.
    let version = unsafe { CStr::from_ptr(((*base).GetVersionString)()) }.to_string_lossy().into_owned();
    check_version(&version)?;
    Ok(version)
}

/// Accepts onnxruntime 1.x with x >= [`MIN_MINOR_VERSION`].
pub fn check_version(version: &str) -> Result<(), String> {
    let minor = version.strip_prefix("1.").and_then(|r| r.split('.').next()).and_then(|m| m.parse::<u32>().ok());
    match minor {
        Some(m) if m >= MIN_MINOR_VERSION => Ok(()),
        _ => Err(format!("version `{version}` is too old or unknown; need 1.{MIN_MINOR_VERSION}.0 or newer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_older_than_the_api_are_refused() {
        assert!(check_version("1.32.0").is_ok());
        assert!(check_version(&format!("1.{MIN_MINOR_VERSION}.1")).is_ok());
        let e = check_version(&format!("1.{}.2", MIN_MINOR_VERSION - 1)).unwrap_err();
        assert!(e.contains("too old") && e.contains(&format!("1.{MIN_MINOR_VERSION}.0")), "{e}");
        assert!(check_version("2.0.0").is_err());
        assert!(check_version("garbage").is_err());
    }

    #[test]
    fn a_configured_library_is_the_only_candidate() {
        let c = candidates(Some(Path::new("/opt/ort/libonnxruntime.so")));
        assert_eq!(c.len(), 1);
        assert!(c[0].0.contains("onnxruntime_lib"));
        let c = candidates(None);
        assert_eq!(c.last().map(|x| x.1.as_path()), Some(Path::new(SYSTEM_NAME)));
        assert!(c.iter().any(|x| x.1.ends_with("lib/pe-sentinel/libonnxruntime.so")));
    }
}

/// The library ort was initialised with in this process (ort keeps one for the process's life).
static LOADED: Mutex<Option<(PathBuf, String)>> = Mutex::new(None);

/// An onnxruntime library found, probed and handed to ort.
#[derive(Debug, Clone)]
pub struct OrtLibrary {
    pub path: PathBuf,
    pub version: String,
    /// Everything looked at, including refused candidates before the one used.
    pub attempts: Vec<Attempt>,
    /// Execution providers this build of onnxruntime offers ("CPUExecutionProvider", ...).
    pub providers: Vec<String>,
}

impl OrtLibrary {
    /// Finds and loads the library (see [`candidates`]); the first candidate that passes
    /// [`probe`] is used.
    pub fn find(configured: Option<&Path>) -> Result<OrtLibrary, LibraryNotFound> {
        let mut attempts = Vec::new();
        for (source, path) in candidates(configured) {
            let result = probe(&path).and_then(|v| init(&path).map(|()| v));
            let ok = result.clone().ok();
            attempts.push(Attempt { source, path: path.clone(), result });
            if let Some(version) = ok {
                return Ok(OrtLibrary { path, version, attempts, providers: available_providers() });
            }
        }
        Err(LibraryNotFound { min: MIN_MINOR_VERSION, attempts })
    }
}

fn init(path: &Path) -> Result<(), String> {
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((p, _)) = loaded.as_ref() {
        if p == path {
            return Ok(());
        }
        return Err(format!("this process already uses onnxruntime from {}; one library per process", p.display()));
    }
    let _builder = ort::init_from(path).map_err(|e| format!("ort refused it: {e}"))?;
    *loaded = Some((path.to_path_buf(), String::new()));
    Ok(())
}

/// onnxruntime allows one environment per process: made on first use, shared by every session.
static ENVIRONMENT: Mutex<Option<ort::environment::Environment>> = Mutex::new(None);

fn environment() -> Result<ort::environment::Environment, String> {
    let mut env = ENVIRONMENT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(e) = env.as_ref() {
        return Ok(e.clone());
    }
    let e = ort::init().with_name("pe-sentinel").build().map_err(|e| e.to_string())?;
    *env = Some(e.clone());
    Ok(e)
}

fn available_providers() -> Vec<String> {
    let mut out = Vec::new();
    for (name, ok) in [
        ("CPUExecutionProvider", true),
        ("CUDAExecutionProvider", <ort::ep::CUDA as ort::ep::ExecutionProvider>::is_available().unwrap_or(false)),
        (
            "TensorrtExecutionProvider",
            <ort::ep::TensorRT as ort::ep::ExecutionProvider>::is_available().unwrap_or(false),
        ),
    ] {
        if ok {
            out.push(name.to_string());
        }
    }
    out
}

/// Execution providers a profile may ask for, in order of preference; the CPU one is always
/// last. CUDA and TensorRT need an onnxruntime built with them (NVIDIA's Jetson builds are).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Cpu,
    Cuda,
    Tensorrt,
}

/// Options for [`OrtPlan::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OrtOptions {
    /// Intra-op threads.
    pub threads: usize,
    /// Execution providers to register before the CPU one.
    pub providers: Vec<Provider>,
}

impl Default for OrtOptions {
    fn default() -> Self {
        OrtOptions { threads: 1, providers: Vec::new() }
    }
}

impl OrtOptions {
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    pub fn providers(mut self, providers: Vec<Provider>) -> Self {
        self.providers = providers;
        self
    }
}

/// One model on onnxruntime: session, binding and the tensors bound to it, all made once.
pub struct OrtEngine {
    model: PathBuf,
    session: Session,
    binding: IoBinding,
    input_name: String,
    input: Tensor<f32>,
    /// Bound outputs, manifest order.
    bound: Vec<Tensor<f32>>,
    specs: Vec<OutputSpec>,
    input_len: usize,
    /// Rebind the input each run: a GPU provider copies it at bind time.
    rebind: bool,
}

fn load_err<'a>(model: &'a Path, stage: &'static str) -> impl Fn(String) -> EngineError + 'a {
    move |detail| EngineError::Load { model: model.to_owned(), stage, detail }
}

/// The graph optimization level for a model of `precision` on this CPU. onnxruntime's fused
/// integer kernels (QDQ to QLinearConv, level 2 and up) multiply u8 by s8 with AVX2's VPMADDUBSW,
/// whose 16-bit sums saturate on CPUs without VNNI: on such a CPU (AMD EPYC, AVX2 only, 2026-12-07)
/// the shipped INT8 classifier's P differed from FP32's by up to 0.998 and agreed on the verdict for
/// 48% of phantom slices, while the unfused graph (basic level) agreed with tract within 1e-4
/// (tests/onnxruntime.rs, tests/py/test_models.py). INT8 models therefore get the basic level there.
fn optimization_level(precision: crate::model::manifest::Precision) -> GraphOptimizationLevel {
    if precision == crate::model::manifest::Precision::Int8 && !cpu_has_vnni() {
        GraphOptimizationLevel::Level1
    } else {
        GraphOptimizationLevel::Level3
    }
}

/// Whether the CPU has VNNI (AVX512-VNNI or AVX-VNNI), where onnxruntime's integer kernels do not
/// saturate. Not x86-64: true (the saturation is an x86 AVX2 matter).
fn cpu_has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512vnni") || std::arch::is_x86_feature_detected!("avxvnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        true
    }
}

/// Loads models on onnxruntime; `lib` proves the library is loaded.
pub struct OrtPlan;

impl OrtPlan {
    /// Builds the session for `manifest`, checks its input and outputs against the manifest, binds
    /// the buffers and runs one warm-up on zeros.
    pub fn load(_lib: &OrtLibrary, manifest: &Manifest, options: &OrtOptions) -> Result<OrtEngine, EngineError> {
        let path = manifest.onnx_path();
        let bytes = manifest.read_verified_onnx()?;
        let env = environment().map_err(load_err(path, "creating the onnxruntime environment"))?;
        let s = |e: ort::Error<ort::session::builder::SessionBuilder>| e.to_string();
        let mut eps = Vec::new();
        for p in &options.providers {
            match p {
                Provider::Cuda => eps.push(ort::ep::CUDA::default().build().error_on_failure()),
                Provider::Tensorrt => eps.push(ort::ep::TensorRT::default().build().error_on_failure()),
                Provider::Cpu => {}
            }
        }
        let builder = Session::builder(&env)
            .map_err(|e| e.to_string())
            .map_err(load_err(path, "creating the session builder"))?;
        let opt = load_err(path, "setting session options");
        let level = optimization_level(manifest.model().precision);
        if level != GraphOptimizationLevel::Level3 {
            log::warn!(
                "onnxruntime: {}: INT8 model on an x86-64 CPU without VNNI: the fused integer kernels are \
                 off (basic graph optimizations only), because there they saturate and gave wrong \
                 probabilities (docs/engines.md)",
                path.display()
            );
        }
        let builder = builder.with_optimization_level(level).map_err(s).map_err(&opt)?;
        let builder = builder.with_intra_threads(options.threads.max(1)).map_err(s).map_err(&opt)?;
        let builder = builder.with_inter_threads(1).map_err(s).map_err(&opt)?;
        // Threads spin between the operators of a run (without spinning, each of the classifier's
        // small operators waited for a sleeping thread: 2.7 ms instead of 1.5 ms) and stop
        // spinning when the run returns, so one model's idle pool never steals the cores from the
        // other model or from the next slice's decode (with spinning left on after a run, the
        // two pools fought over the 2 cores: end to end 25.6 ms instead of 11.5 ms).
        let builder = builder.with_intra_op_spinning(true).map_err(s).map_err(&opt)?;
        let mut builder = builder.with_config_entry("session.force_spinning_stop", "1").map_err(s).map_err(&opt)?;
        if !eps.is_empty() {
            builder = builder
                .with_execution_providers(eps)
                .map_err(s)
                .map_err(load_err(path, "registering execution providers (does this onnxruntime have them?)"))?;
        }
        let session = builder
            .commit_from_memory(&bytes)
            .map_err(|e| e.to_string())
            .map_err(load_err(path, "building the session"))?;

        let spec = manifest.input();
        let inputs: Vec<String> = session.inputs().iter().map(|o| o.name().to_string()).collect();
        if inputs.len() != 1 || inputs[0] != spec.name {
            return Err(EngineError::InputName { model: path.to_owned(), expected: spec.name.clone(), found: inputs });
        }
        let expected = manifest.expected_outputs();
        let available: Vec<String> = session.outputs().iter().map(|o| o.name().to_string()).collect();
        for out in &expected {
            let Some(o) = session.outputs().iter().find(|o| o.name() == out.name) else {
                return Err(EngineError::OutputMissing { model: path.to_owned(), name: out.name.clone(), available });
            };
            // Dynamic dimensions (-1) are settled by the bound buffer; fixed ones must agree.
            let ok = o.dtype().tensor_type() == Some(ort::value::TensorElementType::Float32)
                && o.dtype().tensor_shape().is_some_and(|s| {
                    s.len() == out.shape.len() && s.iter().zip(&out.shape).all(|(&d, &e)| d < 0 || d as usize == e)
                });
            if !ok {
                return Err(EngineError::OutputShape {
                    model: path.to_owned(),
                    name: out.name.clone(),
                    expected: out.shape.clone(),
                    found: format!("{}", o.dtype()),
                });
            }
        }

        let alloc = Allocator::default();
        let rerr = |e: ort::Error| e.to_string();
        let input = Tensor::<f32>::new(&alloc, spec.shape.map(|d| d as i64).to_vec())
            .map_err(rerr)
            .map_err(load_err(path, "allocating the input tensor"))?;
        let mut binding = session.create_binding().map_err(rerr).map_err(load_err(path, "creating the I/O binding"))?;
        binding.bind_input(spec.name.as_str(), &input).map_err(rerr).map_err(load_err(path, "binding the input"))?;
        let mut bound = Vec::with_capacity(expected.len());
        for out in &expected {
            let mut t = Tensor::<f32>::new(&alloc, out.shape.iter().map(|&d| d as i64).collect::<Vec<_>>())
                .map_err(rerr)
                .map_err(load_err(path, "allocating an output tensor"))?;
            binding
                .bind_output(out.name.as_str(), &mut t)
                .map_err(rerr)
                .map_err(load_err(path, "binding an output"))?;
            bound.push(t);
        }
        let mut engine = OrtEngine {
            model: path.to_owned(),
            session,
            binding,
            input_name: spec.name.clone(),
            input,
            bound,
            input_len: spec.shape.iter().product(),
            specs: expected,
            rebind: options.providers.iter().any(|p| *p != Provider::Cpu),
        };
        let mut outputs = Outputs::new(&engine.specs);
        let zeros = vec![0.0; engine.input_len];
        engine.run(&zeros, &mut outputs).map_err(|e| EngineError::Load {
            model: engine.model.clone(),
            stage: "warm-up run",
            detail: e.to_string(),
        })?;
        Ok(engine)
    }
}

impl Engine for OrtEngine {
    fn name(&self) -> &'static str {
        "onnxruntime"
    }

    fn input_len(&self) -> usize {
        self.input_len
    }

    fn output_specs(&self) -> &[OutputSpec] {
        &self.specs
    }

    fn run(&mut self, input: &[f32], outputs: &mut Outputs) -> Result<(), EngineError> {
        if input.len() != self.input_len {
            return Err(EngineError::InputLen {
                model: self.model.clone(),
                expected: self.input_len,
                found: input.len(),
            });
        }
        if !outputs.matches(&self.specs) {
            return Err(EngineError::OutputBuffers { model: self.model.clone() });
        }
        let model = &self.model;
        let err = |e: ort::Error| EngineError::Run { model: model.clone(), detail: e.to_string() };
        let (_, dst) = self.input.try_extract_tensor_mut().map_err(err)?;
        dst.copy_from_slice(input);
        if self.rebind {
            self.binding.bind_input(self.input_name.as_str(), &self.input).map_err(err)?;
        }
        drop(self.session.run_binding(&self.binding).map_err(err)?);
        for (src, dst) in self.bound.iter().zip(outputs.tensors_mut()) {
            let (_, values) = src.try_extract_tensor().map_err(err)?;
            if values.len() != dst.data.len() {
                return Err(EngineError::Run {
                    model: model.clone(),
                    detail: format!(
                        "output `{}` has {} values, expected {}",
                        dst.spec.name,
                        values.len(),
                        dst.data.len()
                    ),
                });
            }
            dst.data.copy_from_slice(values);
        }
        Ok(())
    }
}
