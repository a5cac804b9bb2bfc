//! Configuration: a board profile in TOML (`board/*.toml`) parsed into typed values with every
//! unknown key and bad value rejected (key, line and what is allowed), then resolved: paths made
//! absolute relative to the profile, command-line overrides applied. Reads the profile file only.

pub mod capture;
pub mod dicom_send;
pub mod raw;

pub use raw::{BoardProfile, ConfigError, EngineKind, Precision};
use std::path::{Path, PathBuf};

/// The profile used when no `--config` is given: the shipped x86 CPU profile.
pub fn default_profile_path() -> PathBuf {
    // Installed layout first (/etc/pe-sentinel), then the source tree this binary was built from.
    let installed = PathBuf::from("/etc/pe-sentinel/pe-sentinel.toml");
    if installed.exists() {
        return installed;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("board").join("x86-cpu.toml")
}

/// A profile with paths resolved and overrides applied: validated once at load, read through
/// accessors (callers never reach into the raw profile), changed only by methods that return an
/// adjusted copy (`--precision`, bench's engine choice).
#[derive(Debug, Clone)]
pub struct Resolved {
    profile_path: PathBuf,
    profile: BoardProfile,
    drop_dir: PathBuf,
    state_dir: PathBuf,
    classifier_manifest: PathBuf,
    detector_manifest: PathBuf,
    /// The profile's models folder, absolute.
    models_dir: PathBuf,
    /// `[engine] onnxruntime_lib`, absolute (a bare file name is left to the system loader).
    onnxruntime_lib: Option<PathBuf>,
}

impl Resolved {
    pub fn load(path: &Path, drop_override: Option<&Path>, state_override: Option<&Path>) -> Result<Self, ConfigError> {
        let profile = BoardProfile::load(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let abs = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
        let models = abs(&profile.models.dir);
        let precision = profile.engine.precision.as_str();
        let classifier_manifest = match &profile.models.classifier {
            Some(p) => abs(p),
            None => models.join(format!("classifier-{precision}.toml")),
        };
        let detector_manifest = match &profile.models.detector {
            Some(p) => abs(p),
            None => models.join(format!("detector-{precision}.toml")),
        };
        Ok(Self {
            profile_path: path.to_path_buf(),
            drop_dir: drop_override.map(Path::to_path_buf).unwrap_or_else(|| abs(&profile.paths.drop_dir)),
            state_dir: state_override.map(Path::to_path_buf).unwrap_or_else(|| abs(&profile.paths.state_dir)),
            classifier_manifest,
            detector_manifest,
            models_dir: models,
            onnxruntime_lib: profile.engine.onnxruntime_lib.as_deref().map(|p| {
                if p.components().count() > 1 {
                    abs(p)
                } else {
                    p.to_path_buf()
                }
            }),
            profile,
        })
    }

    /// This profile at another precision (`--precision`): the manifests follow unless the
    /// profile names them.
    pub fn with_precision(mut self, precision: Precision) -> Resolved {
        self.profile.engine.precision = precision;
        let p = precision.as_str();
        if self.profile.models.classifier.is_none() {
            self.classifier_manifest = self.models_dir.join(format!("classifier-{p}.toml"));
        }
        if self.profile.models.detector.is_none() {
            self.detector_manifest = self.models_dir.join(format!("detector-{p}.toml"));
        }
        self
    }

    /// A copy of this profile asking for another engine kind (`bench --engine`).
    pub fn with_engine_kind(&self, kind: EngineKind) -> Resolved {
        let mut c = self.clone();
        c.profile.engine.kind = kind;
        c
    }

    /// The profile file this came from.
    pub fn profile_path(&self) -> &Path {
        &self.profile_path
    }
    pub fn drop_dir(&self) -> &Path {
        &self.drop_dir
    }
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }
    pub fn classifier_manifest(&self) -> &Path {
        &self.classifier_manifest
    }
    pub fn detector_manifest(&self) -> &Path {
        &self.detector_manifest
    }
    /// `[engine] onnxruntime_lib`, absolute (a bare file name is left to the system loader).
    pub fn onnxruntime_lib(&self) -> Option<&Path> {
        self.onnxruntime_lib.as_deref()
    }
    pub fn board(&self) -> &raw::Board {
        &self.profile.board
    }
    pub fn engine(&self) -> &raw::Engine {
        &self.profile.engine
    }
    pub fn verdict(&self) -> &raw::Verdict {
        &self.profile.verdict
    }
    pub fn budget(&self) -> &raw::Budget {
        &self.profile.budget
    }
    pub fn runtime(&self) -> &raw::Runtime {
        &self.profile.runtime
    }
    pub fn tensorrt(&self) -> &raw::Tensorrt {
        &self.profile.tensorrt
    }
    pub fn eligibility(&self) -> &crate::eligibility::Rules {
        &self.profile.eligibility
    }
    pub fn capture(&self) -> Option<&capture::Capture> {
        self.profile.capture.as_ref()
    }
    pub fn display(&self) -> Option<&raw::Display> {
        self.profile.display.as_ref()
    }
    pub fn dicom(&self) -> Option<&dicom_send::DicomTable> {
        self.profile.dicom.as_ref()
    }
}
