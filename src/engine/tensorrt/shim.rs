//! The binding to the TensorRT shim (`libpe_trt.so`, C ABI in `pe_trt.h`), loaded at run time
//! with libloading (cargo feature `tensorrt`). [`TrtLibrary::open`] resolves every symbol, checks
//! the ABI version, has the shim open the TensorRT library (full or lean) and asks CUDA for a
//! usable device before any TensorRT object exists; [`TrtEngine::load`] deserializes a plan, matches its tensors to the
//! manifest by name and shape, and binds host buffers allocated once; [`ensure_plan`] applies the
//! engine cache (reuse, or build and store). Tested against the C stand-in in tests/tensorrt/,
//! and with the real shim and NVIDIA's lean runtime on a machine without a GPU in
//! tests/tensorrt_real.rs. Touches: the shim and TensorRT libraries, `<state>/engines/`, the ONNX
//! file through its manifest.
//!
//! `unsafe` is allowed here for the FFI calls only; every pointer handed to the shim is either a
//! NUL-terminated string we own or a buffer owned by the engine for the engine's lifetime.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{decide, BuildPrecision, CacheDecision, CacheKey, TrtError};
use crate::engine::{Engine, EngineError, Outputs};
use crate::model::{Manifest, OutputSpec};

/// The ABI version this binding speaks (`PE_TRT_ABI_VERSION`).
pub const ABI_VERSION: c_int = 2;
/// Library name asked of the system loader when nothing else names one.
pub const SYSTEM_NAME: &str = "libpe_trt.so";

type Opaque = c_void;

struct Fns {
    open: unsafe extern "C" fn(*const c_char) -> c_int,
    version: unsafe extern "C" fn() -> *const c_char,
    header_version: unsafe extern "C" fn() -> *const c_char,
    library: unsafe extern "C" fn() -> *const c_char,
    has_builder: unsafe extern "C" fn() -> c_int,
    cuda_check: unsafe extern "C" fn(*mut c_int) -> c_int,
    gpu_name: unsafe extern "C" fn() -> *const c_char,
    last_error: unsafe extern "C" fn() -> *const c_char,
    build: unsafe extern "C" fn(*const c_void, usize, c_int, *const c_char, *mut *mut c_void, *mut usize) -> c_int,
    free: unsafe extern "C" fn(*mut c_void),
    load: unsafe extern "C" fn(*const c_void, usize, *mut *mut Opaque) -> c_int,
    destroy: unsafe extern "C" fn(*mut Opaque),
    num_tensors: unsafe extern "C" fn(*const Opaque) -> c_int,
    tensor_name: unsafe extern "C" fn(*const Opaque, c_int) -> *const c_char,
    tensor_is_input: unsafe extern "C" fn(*const Opaque, c_int) -> c_int,
    tensor_shape: unsafe extern "C" fn(*const Opaque, c_int, *mut i64, c_int) -> c_int,
    set_host_buffer: unsafe extern "C" fn(*mut Opaque, *const c_char, *mut f32, usize) -> c_int,
    infer: unsafe extern "C" fn(*mut Opaque) -> c_int,
}

/// The shim library, loaded, with its TensorRT version and GPU name.
pub struct TrtLibrary {
    path: PathBuf,
    fns: Fns,
    /// The loaded TensorRT library's own version (its getInferLibVersion), e.g. "10.3.0".
    pub tensorrt_version: String,
    /// The TensorRT headers the shim was compiled with, e.g. "11.1.0.106".
    pub header_version: String,
    /// The TensorRT library the shim loaded (full path when the loader resolved one).
    pub tensorrt_library: String,
    /// Whether that library can build plans (full TensorRT); false for the lean runtime.
    pub has_builder: bool,
    /// The GPU's name and compute capability; empty when CUDA has no usable device.
    pub gpu_name: String,
    /// Why CUDA has no usable device (CUDA's error code and message), when it has none.
    pub cuda_unusable: Option<CudaUnusable>,
    // Dropped last: the function pointers above point into it.
    _lib: libloading::Library,
}

/// CUDA's answer when the shim asked it for a device: its own error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaUnusable {
    /// `cudaError_t`, e.g. 35 (cudaErrorInsufficientDriver) or 100 (cudaErrorNoDevice).
    pub code: i32,
    pub message: String,
}

fn cstr(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the ABI returns NUL-terminated strings owned by the library, valid until the next
    // call on this thread; we copy them at once.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

impl TrtLibrary {
    /// Loads the shim at `path` (a bare name goes to the system loader), checks its ABI, has it
    /// open the TensorRT library (`tensorrt`, else the shim's default names) and asks CUDA for a
    /// device. A missing TensorRT library is an error; a missing device is recorded in
    /// [`TrtLibrary::cuda_unusable`] (`check` reports the library either way).
    pub fn open(path: &Path, tensorrt: Option<&Path>) -> Result<Arc<TrtLibrary>, String> {
        if path.components().count() > 1 && !path.exists() {
            return Err(format!(
                "TensorRT shim {}: no such file; build it on the Jetson with board/jetson/shim/build.sh",
                path.display()
            ));
        }
        // SAFETY: loading the shim runs its (and TensorRT's) initialisers; it is the library the
        // profile names for exactly this purpose.
        let lib = unsafe { libloading::Library::new(path) }
            .map_err(|e| format!("TensorRT shim {}: cannot load it ({e}); build it on the Jetson with board/jetson/shim/build.sh, check that TensorRT and CUDA libraries are installed", path.display()))?;
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the symbol's type is the one declared in pe_trt.h for this name.
                *unsafe { lib.get(concat!($name, "\0").as_bytes()) }.map_err(|_| {
                    format!(
                        "TensorRT shim {}: missing symbol `{}`; rebuild the shim from this version's pe_trt.h",
                        path.display(),
                        $name
                    )
                })?
            };
        }
        let abi: unsafe extern "C" fn() -> c_int = sym!("pe_trt_abi_version");
        // SAFETY: takes nothing, returns an int.
        let found = unsafe { abi() };
        if found != ABI_VERSION {
            return Err(format!(
                "TensorRT shim {}: ABI version {found}, this pe-sentinel speaks {ABI_VERSION}; rebuild the shim from this version's board/jetson/shim",
                path.display()
            ));
        }
        let fns = Fns {
            open: sym!("pe_trt_open"),
            version: sym!("pe_trt_version"),
            header_version: sym!("pe_trt_header_version"),
            library: sym!("pe_trt_library"),
            has_builder: sym!("pe_trt_has_builder"),
            cuda_check: sym!("pe_trt_cuda_check"),
            gpu_name: sym!("pe_trt_gpu_name"),
            last_error: sym!("pe_trt_last_error"),
            build: sym!("pe_trt_build"),
            free: sym!("pe_trt_free"),
            load: sym!("pe_trt_load"),
            destroy: sym!("pe_trt_destroy"),
            num_tensors: sym!("pe_trt_num_tensors"),
            tensor_name: sym!("pe_trt_tensor_name"),
            tensor_is_input: sym!("pe_trt_tensor_is_input"),
            tensor_shape: sym!("pe_trt_tensor_shape"),
            set_host_buffer: sym!("pe_trt_set_host_buffer"),
            infer: sym!("pe_trt_infer"),
        };
        // SAFETY: returns a static string (see pe_trt.h).
        let header_version = cstr(unsafe { (fns.header_version)() });
        let wanted = match tensorrt {
            Some(p) => Some(
                CString::new(p.as_os_str().as_encoded_bytes())
                    .map_err(|_| format!("[tensorrt] library {} has a NUL byte in its path", p.display()))?,
            ),
            None => None,
        };
        // SAFETY: `wanted` is NUL-terminated or null; the shim copies what it needs. No CUDA call.
        let code = unsafe { (fns.open)(wanted.as_ref().map_or(std::ptr::null(), |c| c.as_ptr())) };
        if code < 0 {
            // SAFETY: the thread's last message (or null).
            let why = cstr(unsafe { (fns.last_error)() });
            return Err(format!(
                "TensorRT shim {} (built with TensorRT {header_version} headers): {why}",
                path.display()
            ));
        }
        // SAFETY: static strings and ints once pe_trt_open succeeded (see pe_trt.h).
        let (tensorrt_version, tensorrt_library, has_builder) =
            unsafe { (cstr((fns.version)()), cstr((fns.library)()), (fns.has_builder)() == 1) };
        let mut cuda_error: c_int = 0;
        // SAFETY: the out pointer is ours; this is CUDA's first call in the process.
        let cuda = unsafe { (fns.cuda_check)(&mut cuda_error) };
        let (gpu_name, cuda_unusable) = if cuda >= 0 {
            // SAFETY: a static string once the check succeeded.
            (cstr(unsafe { (fns.gpu_name)() }), None)
        } else {
            // SAFETY: the thread's last message (or null).
            (String::new(), Some(CudaUnusable { code: cuda_error, message: cstr(unsafe { (fns.last_error)() }) }))
        };
        Ok(Arc::new(TrtLibrary {
            path: path.to_path_buf(),
            fns,
            tensorrt_version,
            header_version,
            tensorrt_library,
            has_builder,
            gpu_name,
            cuda_unusable,
            _lib: lib,
        }))
    }

    /// One line for the log and `check`: which TensorRT, from where, through which shim.
    pub fn describe(&self) -> String {
        format!(
            "TensorRT {} ({}) from {} via shim {} built with TensorRT {} headers",
            self.tensorrt_version,
            if self.has_builder { "full: builder and runtime" } else { "runtime only, no builder" },
            self.tensorrt_library,
            self.path.display(),
            self.header_version
        )
    }

    /// The GPU's name, or CUDA's reason for having no usable device.
    pub fn gpu(&self) -> Result<&str, TrtError> {
        match &self.cuda_unusable {
            None => Ok(&self.gpu_name),
            Some(c) => Err(TrtError::Cuda(c.message.clone())),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check(&self, code: c_int) -> Result<(), TrtError> {
        if code >= 0 {
            return Ok(());
        }
        // SAFETY: returns the thread's last message (or null).
        Err(TrtError::from_code(code, cstr(unsafe { (self.fns.last_error)() })))
    }

    /// Builds a plan from ONNX bytes (see `pe_trt_build`).
    pub fn build(&self, onnx: &[u8], precision: BuildPrecision, timing_cache: &Path) -> Result<Vec<u8>, TrtError> {
        let cache = CString::new(timing_cache.as_os_str().as_encoded_bytes())
            .map_err(|_| TrtError::Argument(format!("timing cache path {} has a NUL byte", timing_cache.display())))?;
        let mut plan: *mut c_void = std::ptr::null_mut();
        let mut len = 0usize;
        // SAFETY: `onnx` is valid for `onnx.len()` bytes, `cache` is NUL-terminated, and the out
        // pointers are ours.
        let code = unsafe {
            (self.fns.build)(onnx.as_ptr().cast(), onnx.len(), precision.abi(), cache.as_ptr(), &mut plan, &mut len)
        };
        self.check(code)?;
        if plan.is_null() {
            return Err(TrtError::Build("the shim returned no plan".into()));
        }
        // SAFETY: on success the shim hands over `len` bytes at `plan`, released with pe_trt_free.
        let bytes = unsafe { std::slice::from_raw_parts(plan.cast::<u8>(), len) }.to_vec();
        // SAFETY: `plan` came from pe_trt_build and is released exactly once.
        unsafe { (self.fns.free)(plan) };
        Ok(bytes)
    }
}

/// One model on TensorRT; implements [`Engine`].
pub struct TrtEngine {
    lib: Arc<TrtLibrary>,
    handle: *mut Opaque,
    model: PathBuf,
    input: Box<[f32]>,
    /// Host buffers bound to the outputs, manifest order.
    outputs: Vec<Box<[f32]>>,
    specs: Vec<OutputSpec>,
}

// SAFETY: the handle is used from one thread at a time (`&mut self` for runs); the shim's engine
// owns its own CUDA stream and context state.
unsafe impl Send for TrtEngine {}

impl Drop for TrtEngine {
    fn drop(&mut self) {
        // SAFETY: `handle` came from pe_trt_load and is destroyed exactly once.
        unsafe { (self.lib.fns.destroy)(self.handle) };
    }
}

fn err<'a>(model: &'a Path, stage: &'static str) -> impl Fn(TrtError) -> EngineError + 'a {
    move |e| EngineError::Load { model: model.to_owned(), stage, detail: e.to_string() }
}

/// A tensor of a loaded plan: name, input or output, shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub is_input: bool,
    pub shape: Vec<usize>,
}

impl TrtEngine {
    /// Deserializes `plan` and matches it to `manifest`: one input named and shaped as the
    /// manifest says, every manifest output present with its shape; host buffers bound by name.
    pub fn load(lib: &Arc<TrtLibrary>, plan: &[u8], manifest: &Manifest) -> Result<TrtEngine, EngineError> {
        let path = manifest.onnx_path();
        let mut handle: *mut Opaque = std::ptr::null_mut();
        // SAFETY: `plan` is valid for its length; `handle` is our out pointer.
        let code = unsafe { (lib.fns.load)(plan.as_ptr().cast(), plan.len(), &mut handle) };
        lib.check(code).map_err(err(path, "loading the TensorRT plan"))?;
        let specs = manifest.expected_outputs();
        let input_len = manifest.input().shape.iter().product();
        let mut e = TrtEngine {
            lib: lib.clone(),
            handle,
            model: path.to_owned(),
            input: vec![0.0; input_len].into_boxed_slice(),
            outputs: specs.iter().map(|s| vec![0.0; s.shape.iter().product()].into_boxed_slice()).collect(),
            specs,
        };
        let tensors = e.tensors().map_err(err(path, "listing the plan's tensors"))?;
        let spec = manifest.input();
        let inputs: Vec<&TensorInfo> = tensors.iter().filter(|t| t.is_input).collect();
        if inputs.len() != 1 || inputs[0].name != spec.name {
            return Err(EngineError::InputName {
                model: path.to_owned(),
                expected: spec.name.clone(),
                found: inputs.iter().map(|t| t.name.clone()).collect(),
            });
        }
        if inputs[0].shape != spec.shape {
            return Err(EngineError::Load {
                model: path.to_owned(),
                stage: "matching the plan's input",
                detail: format!(
                    "input `{}` has shape {:?}, the manifest says {:?}",
                    spec.name, inputs[0].shape, spec.shape
                ),
            });
        }
        for out in &e.specs {
            let Some(t) = tensors.iter().find(|t| !t.is_input && t.name == out.name) else {
                return Err(EngineError::OutputMissing {
                    model: path.to_owned(),
                    name: out.name.clone(),
                    available: tensors.iter().filter(|t| !t.is_input).map(|t| t.name.clone()).collect(),
                });
            };
            if t.shape != out.shape {
                return Err(EngineError::OutputShape {
                    model: path.to_owned(),
                    name: out.name.clone(),
                    expected: out.shape.clone(),
                    found: format!("{:?}", t.shape),
                });
            }
        }
        e.bind(&spec.name).map_err(err(path, "binding host buffers"))?;
        Ok(e)
    }

    /// The plan's tensors as the shim reports them.
    pub fn tensors(&self) -> Result<Vec<TensorInfo>, TrtError> {
        let f = &self.lib.fns;
        // SAFETY: `handle` is a live engine.
        let n = unsafe { (f.num_tensors)(self.handle) };
        self.lib.check(n)?;
        let mut out = Vec::with_capacity(n as usize);
        for i in 0..n {
            // SAFETY: `i` is in range; the name is copied at once.
            let name = cstr(unsafe { (f.tensor_name)(self.handle, i) });
            // SAFETY: as above.
            let is_input = unsafe { (f.tensor_is_input)(self.handle, i) };
            self.lib.check(is_input)?;
            let mut dims = [0i64; 8];
            // SAFETY: `dims` holds 8 values, the max passed.
            let rank = unsafe { (f.tensor_shape)(self.handle, i, dims.as_mut_ptr(), 8) };
            self.lib.check(rank)?;
            let dims = &dims[..(rank as usize).min(8)];
            if dims.iter().any(|&d| d < 0) {
                return Err(TrtError::Unsupported(format!(
                    "tensor `{name}` has dynamic shape {dims:?}; build the plan with fixed shapes"
                )));
            }
            out.push(TensorInfo { name, is_input: is_input != 0, shape: dims.iter().map(|&d| d as usize).collect() });
        }
        Ok(out)
    }

    fn bind(&mut self, input_name: &str) -> Result<(), TrtError> {
        let name =
            |s: &str| CString::new(s).map_err(|_| TrtError::Argument(format!("tensor name `{s}` has a NUL byte")));
        let f = &self.lib.fns;
        let n = name(input_name)?;
        // SAFETY: the buffer lives as long as the engine (boxed, never reallocated).
        let code = unsafe { (f.set_host_buffer)(self.handle, n.as_ptr(), self.input.as_mut_ptr(), self.input.len()) };
        self.lib.check(code)?;
        for (spec, buf) in self.specs.iter().zip(self.outputs.iter_mut()) {
            let n = name(&spec.name)?;
            // SAFETY: as above.
            let code = unsafe { (f.set_host_buffer)(self.handle, n.as_ptr(), buf.as_mut_ptr(), buf.len()) };
            self.lib.check(code)?;
        }
        Ok(())
    }
}

impl Engine for TrtEngine {
    fn name(&self) -> &'static str {
        "tensorrt"
    }

    fn input_len(&self) -> usize {
        self.input.len()
    }

    fn output_specs(&self) -> &[OutputSpec] {
        &self.specs
    }

    fn run(&mut self, input: &[f32], outputs: &mut Outputs) -> Result<(), EngineError> {
        if input.len() != self.input.len() {
            return Err(EngineError::InputLen {
                model: self.model.clone(),
                expected: self.input.len(),
                found: input.len(),
            });
        }
        if !outputs.matches(&self.specs) {
            return Err(EngineError::OutputBuffers { model: self.model.clone() });
        }
        self.input.copy_from_slice(input);
        // SAFETY: `handle` is live and its bound buffers are ours.
        let code = unsafe { (self.lib.fns.infer)(self.handle) };
        self.lib.check(code).map_err(|e| EngineError::Run { model: self.model.clone(), detail: e.to_string() })?;
        for (src, dst) in self.outputs.iter().zip(outputs.tensors_mut()) {
            dst.data.copy_from_slice(src);
        }
        Ok(())
    }
}

/// What [`ensure_plan`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanReport {
    pub path: PathBuf,
    /// `None`: reused; `Some(reason)`: built, and why.
    pub built: Option<String>,
}

/// The cache key of `manifest` on this library.
pub fn key_for(lib: &TrtLibrary, manifest: &Manifest, precision: BuildPrecision) -> CacheKey {
    CacheKey {
        model_sha256: manifest.model().sha256.clone(),
        tensorrt_version: lib.tensorrt_version.clone(),
        gpu_name: lib.gpu_name.clone(),
        precision,
    }
}

/// Reuses the cached plan of `manifest` or builds and stores it (`force`: always build).
pub fn ensure_plan(
    lib: &TrtLibrary,
    manifest: &Manifest,
    precision: BuildPrecision,
    engines_dir: &Path,
    force: bool,
) -> Result<PlanReport, EngineError> {
    let path = manifest.onnx_path();
    let key = key_for(lib, manifest, precision);
    let io = |stage: &'static str| {
        move |e: std::io::Error| EngineError::Load { model: path.to_owned(), stage, detail: e.to_string() }
    };
    std::fs::create_dir_all(engines_dir).map_err(io("creating the engine cache folder"))?;
    let (plan_path, reason) = match decide(engines_dir, &key) {
        CacheDecision::Reuse(p) if !force => return Ok(PlanReport { path: p, built: None }),
        CacheDecision::Reuse(p) => (p, "rebuild asked for".to_string()),
        CacheDecision::Build { path, reason } => (path, reason),
    };
    let onnx = manifest.read_verified_onnx()?;
    let plan = lib
        .build(&onnx, precision, &engines_dir.join(key.timing_cache_name()))
        .map_err(err(path, "building the TensorRT engine"))?;
    let tmp = plan_path.with_extension("plan.tmp");
    std::fs::write(&tmp, &plan).map_err(io("writing the plan"))?;
    std::fs::rename(&tmp, &plan_path).map_err(io("storing the plan"))?;
    Ok(PlanReport { path: plan_path, built: Some(reason) })
}

/// Loads `manifest` on TensorRT through the cache; a plan TensorRT refuses to deserialize is
/// rebuilt once. Returns the engine and what was done with the cache.
pub fn load_cached(
    lib: &Arc<TrtLibrary>,
    manifest: &Manifest,
    precision: BuildPrecision,
    engines_dir: &Path,
) -> Result<(TrtEngine, PlanReport), EngineError> {
    let report = ensure_plan(lib, manifest, precision, engines_dir, false)?;
    let path = manifest.onnx_path();
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| EngineError::Load {
            model: path.to_owned(),
            stage: "reading the plan",
            detail: format!("{}: {e}", p.display()),
        })
    };
    let plan = read(&report.path)?;
    match TrtEngine::load(lib, &plan, manifest) {
        Ok(e) => Ok((e, report)),
        Err(EngineError::Load { detail, .. }) if report.built.is_none() && detail.contains("deserialize") => {
            let report = ensure_plan(lib, manifest, precision, engines_dir, true)?;
            let plan = read(&report.path)?;
            Ok((TrtEngine::load(lib, &plan, manifest)?, report))
        }
        Err(e) => Err(e),
    }
}
