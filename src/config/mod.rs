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

/// A profile with paths resolved and overrides applied.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub profile_path: PathBuf,
    pub profile: BoardProfile,
    pub drop_dir: PathBuf,
    pub state_dir: PathBuf,
    pub classifier_manifest: PathBuf,
    pub detector_manifest: PathBuf,
    /// The profile's models folder, absolute.
    pub models_dir: PathBuf,
    /// `[engine] onnxruntime_lib`, absolute (a bare file name is left to the system loader).
    pub onnxruntime_lib: Option<PathBuf>,
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

    /// Switches precision (`--precision`): the manifests follow unless the profile names them.
    pub fn set_precision(&mut self, precision: Precision) {
        self.profile.engine.precision = precision;
        let p = precision.as_str();
        if self.profile.models.classifier.is_none() {
            self.classifier_manifest = self.models_dir.join(format!("classifier-{p}.toml"));
        }
        if self.profile.models.detector.is_none() {
            self.detector_manifest = self.models_dir.join(format!("detector-{p}.toml"));
        }
    }
}
