//! The board profile's engine choice: which [`Engine`] runs both models, why, and what was looked
//! for where. `kind = "tract"` always works; `"onnxruntime"` refuses to start without a usable
//! library; `"auto"` takes onnxruntime when its library loads (and both models load on it), else
//! tract, and says why. Touches what the engines touch (library files, model files).
use std::path::PathBuf;

use super::onnxruntime::{Attempt, LibraryNotFound, OrtLibrary, OrtOptions, OrtPlan};
use super::{Engine, EngineError, TractOptions, TractPlan};
use crate::config::{EngineKind, Resolved};
use crate::pipeline::ModelSet;

/// What [`open`] chose and why: logged at start, printed by `check`, kept for benchmark summaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineChoice {
    /// The engine that runs the models ("tract", "onnxruntime", ...).
    pub engine: &'static str,
    /// What the profile asked for.
    pub requested: EngineKind,
    /// Why this engine, in a sentence.
    pub reason: String,
    /// Every place an engine library was looked for, and what was found there.
    pub looked: Vec<Attempt>,
}

impl std::fmt::Display for EngineChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "engine {} (asked: {}): {}", self.engine, self.requested.as_str(), self.reason)
    }
}

impl EngineChoice {
    /// One line for a benchmark summary.
    pub fn summary(&self) -> String {
        self.to_string()
    }
}

/// Why no engine could be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    #[error("board profile {}: [engine] kind = \"onnxruntime\", but {err}; or set kind = \"auto\" to run on tract when onnxruntime is missing", profile.display())]
    NoOnnxruntime { profile: PathBuf, err: LibraryNotFound },
    #[error("board profile {}: [engine] kind = \"tensorrt\": {detail}", profile.display())]
    Tensorrt { profile: PathBuf, detail: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Two engines, classifier then detector.
pub type EnginePair = (Box<dyn Engine>, Box<dyn Engine>);

/// What [`open`] gives: the classifier's engine, the detector's, and the choice.
pub type Opened = (Box<dyn Engine>, Box<dyn Engine>, EngineChoice);

fn tract(cfg: &Resolved, models: &ModelSet) -> Result<EnginePair, EngineError> {
    let opts = TractOptions::default().threads(cfg.engine().threads);
    let cls = TractPlan::load(&models.classifier, &opts)?.spawn()?;
    let det = TractPlan::load(&models.detector, &opts)?.spawn()?;
    Ok((Box::new(cls), Box::new(det)))
}

fn onnxruntime(cfg: &Resolved, models: &ModelSet, lib: &OrtLibrary) -> Result<EnginePair, EngineError> {
    let e = cfg.engine();
    let opts = OrtOptions::default().threads(e.threads).providers(e.providers.clone());
    let cls = OrtPlan::load(lib, &models.classifier, &opts)?;
    let det = OrtPlan::load(lib, &models.detector, &opts)?;
    Ok((Box::new(cls), Box::new(det)))
}

fn ort_reason(lib: &OrtLibrary) -> String {
    format!("onnxruntime {} from {} (providers offered: {})", lib.version, lib.path.display(), lib.providers.join(", "))
}

/// Loads both models on the engine the profile asks for (see the module doc).
pub fn open(cfg: &Resolved, models: &ModelSet) -> Result<Opened, OpenError> {
    let requested = cfg.engine().kind;
    let choice = |engine, reason: String, looked| EngineChoice { engine, requested, reason, looked };
    match requested {
        EngineKind::Tract => {
            let (c, d) = tract(cfg, models)?;
            Ok((c, d, choice("tract", "the profile asks for tract".into(), Vec::new())))
        }
        EngineKind::Onnxruntime => {
            let lib = OrtLibrary::find(cfg.onnxruntime_lib())
                .map_err(|err| OpenError::NoOnnxruntime { profile: cfg.profile_path().to_path_buf(), err })?;
            let (c, d) = onnxruntime(cfg, models, &lib)?;
            Ok((c, d, choice("onnxruntime", ort_reason(&lib), lib.attempts)))
        }
        EngineKind::Auto => match OrtLibrary::find(cfg.onnxruntime_lib()) {
            Ok(lib) => match onnxruntime(cfg, models, &lib) {
                Ok((c, d)) => Ok((c, d, choice("onnxruntime", ort_reason(&lib), lib.attempts))),
                Err(e) => {
                    let (c, d) = tract(cfg, models)?;
                    let why = format!("falling back to tract: the models did not load on {}: {e}", ort_reason(&lib));
                    Ok((c, d, choice("tract", why, lib.attempts)))
                }
            },
            Err(err) => {
                let (c, d) = tract(cfg, models)?;
                let why = format!("falling back to tract: {err}");
                Ok((c, d, choice("tract", why, err.attempts)))
            }
        },
        EngineKind::Tensorrt => match open_tensorrt(cfg, models) {
            Ok((c, d, reason)) => Ok((c, d, choice("tensorrt", reason, Vec::new()))),
            Err(failure) => match super::tensorrt::apply_fallback(cfg.tensorrt().fallback, &failure) {
                Ok(why) => {
                    let (c, d) = tract(cfg, models)?;
                    Ok((c, d, choice("tract", why, Vec::new())))
                }
                Err(detail) => Err(OpenError::Tensorrt { profile: cfg.profile_path().to_path_buf(), detail }),
            },
        },
    }
}

/// A path from the profile: absolute, or relative to the profile's folder.
fn profile_relative(cfg: &Resolved, p: &std::path::Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        cfg.profile_path().parent().unwrap_or(std::path::Path::new(".")).join(p)
    }
}

/// The TensorRT library the profile names (`[tensorrt] library`), if any: a bare file name
/// (`libnvinfer.so.10`) goes to the system loader, a path is relative to the profile.
pub fn tensorrt_library_path(cfg: &Resolved) -> Option<PathBuf> {
    let p = cfg.tensorrt().library.as_deref()?;
    Some(if p.components().count() == 1 { p.to_path_buf() } else { profile_relative(cfg, p) })
}

/// The shim library the profile points at: `[tensorrt] shim`, else the package's lib folder if
/// it has one, else the system loader's `libpe_trt.so`.
pub fn tensorrt_shim_path(cfg: &Resolved) -> PathBuf {
    if let Some(p) = &cfg.tensorrt().shim {
        return profile_relative(cfg, p);
    }
    let own = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("../lib/pe-sentinel/libpe_trt.so")))
        .filter(|p| p.exists());
    own.unwrap_or_else(|| PathBuf::from("libpe_trt.so"))
}

/// Both TensorRT engines and what was done to get them.
type TrtOpened = (Box<dyn Engine>, Box<dyn Engine>, String);

/// The build precision the profile implies.
pub fn tensorrt_precision(cfg: &Resolved) -> super::tensorrt::BuildPrecision {
    use super::tensorrt::BuildPrecision;
    match (cfg.engine().precision, cfg.tensorrt().fp16) {
        (crate::config::Precision::Int8, _) => BuildPrecision::Int8Qdq,
        (crate::config::Precision::Fp32, true) => BuildPrecision::Fp16,
        (crate::config::Precision::Fp32, false) => BuildPrecision::Fp32,
    }
}

#[cfg(not(feature = "tensorrt"))]
fn open_tensorrt(_cfg: &Resolved, _models: &ModelSet) -> Result<TrtOpened, String> {
    Err("this pe-sentinel was built without TensorRT support (cargo feature `tensorrt`, see docs/engines.md)".into())
}

#[cfg(feature = "tensorrt")]
fn open_tensorrt(cfg: &Resolved, models: &ModelSet) -> Result<TrtOpened, String> {
    use super::tensorrt::{engines_dir, shim};
    let path = tensorrt_shim_path(cfg);
    let lib = shim::TrtLibrary::open(&path, tensorrt_library_path(cfg).as_deref())?;
    // No TensorRT object before CUDA has a device (see board/jetson/shim/pe_trt.cpp).
    lib.gpu().map_err(|e| format!("{}, but {e}", lib.describe()))?;
    let precision = tensorrt_precision(cfg);
    let dir = engines_dir(cfg.state_dir());
    let (c, rc) = shim::load_cached(&lib, &models.classifier, precision, &dir).map_err(|e| e.to_string())?;
    let (d, rd) = shim::load_cached(&lib, &models.detector, precision, &dir).map_err(|e| e.to_string())?;
    let said = |r: &shim::PlanReport| match &r.built {
        None => format!("{} (cached)", r.path.display()),
        Some(why) => format!("{} (built: {why})", r.path.display()),
    };
    let reason =
        format!("{} on {}, {} plans {} and {}", lib.describe(), lib.gpu_name, precision.as_str(), said(&rc), said(&rd));
    Ok((Box::new(c), Box::new(d), reason))
}

/// `pe-sentinel build-engines`: builds (or, unless `force`, reuses) the TensorRT plans of both
/// models in `<state>/engines`; one line per model saying what was done.
#[cfg(feature = "tensorrt")]
pub fn build_tensorrt_engines(cfg: &Resolved, models: &ModelSet, force: bool) -> Result<Vec<String>, String> {
    use super::tensorrt::{engines_dir, shim};
    let lib = shim::TrtLibrary::open(&tensorrt_shim_path(cfg), tensorrt_library_path(cfg).as_deref())?;
    // Say first what no GPU would cure: a runtime-only library never builds.
    if !lib.has_builder {
        return Err(format!(
            "{}: it cannot build engines, building needs the full TensorRT builder (libnvinfer and libnvonnxparser, JetPack's TensorRT packages); point [tensorrt] library at it or leave it unset",
            lib.describe()
        ));
    }
    lib.gpu().map_err(|e| format!("{}, but {e}", lib.describe()))?;
    let precision = tensorrt_precision(cfg);
    let dir = engines_dir(cfg.state_dir());
    let mut lines = vec![format!("{} on {}", lib.describe(), lib.gpu_name)];
    for m in [&models.classifier, &models.detector] {
        let r = shim::ensure_plan(&lib, m, precision, &dir, force).map_err(|e| e.to_string())?;
        lines.push(match r.built {
            None => format!("{}: {} plan {} is current", m.model().name, precision.as_str(), r.path.display()),
            Some(why) => format!("{}: built {} plan {} ({why})", m.model().name, precision.as_str(), r.path.display()),
        });
    }
    Ok(lines)
}

/// Without the `tensorrt` feature there is nothing to build: says so.
#[cfg(not(feature = "tensorrt"))]
pub fn build_tensorrt_engines(_cfg: &Resolved, _models: &ModelSet, _force: bool) -> Result<Vec<String>, String> {
    Err("this pe-sentinel was built without TensorRT support; rebuild it with `cargo build --release --features tensorrt` on the Jetson (docs/engines.md)".into())
}
