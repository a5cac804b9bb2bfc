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
    let opts = TractOptions::default().threads(cfg.profile.engine.threads);
    let cls = TractPlan::load(&models.classifier, &opts)?.spawn()?;
    let det = TractPlan::load(&models.detector, &opts)?.spawn()?;
    Ok((Box::new(cls), Box::new(det)))
}

fn onnxruntime(cfg: &Resolved, models: &ModelSet, lib: &OrtLibrary) -> Result<EnginePair, EngineError> {
    let e = &cfg.profile.engine;
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
    let requested = cfg.profile.engine.kind;
    let choice = |engine, reason: String, looked| EngineChoice { engine, requested, reason, looked };
    match requested {
        EngineKind::Tract => {
            let (c, d) = tract(cfg, models)?;
            Ok((c, d, choice("tract", "the profile asks for tract".into(), Vec::new())))
        }
        EngineKind::Onnxruntime => {
            let lib = OrtLibrary::find(cfg.onnxruntime_lib.as_deref())
                .map_err(|err| OpenError::NoOnnxruntime { profile: cfg.profile_path.clone(), err })?;
            let (c, d) = onnxruntime(cfg, models, &lib)?;
            Ok((c, d, choice("onnxruntime", ort_reason(&lib), lib.attempts)))
        }
        EngineKind::Auto => match OrtLibrary::find(cfg.onnxruntime_lib.as_deref()) {
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
        EngineKind::Tensorrt => Err(OpenError::Tensorrt {
            profile: cfg.profile_path.clone(),
            detail:
                "this build has no TensorRT support (cargo feature `tensorrt`, issue 10); use \"auto\" or \"tract\""
                    .into(),
        }),
    }
}
