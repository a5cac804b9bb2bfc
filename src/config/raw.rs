//! The board profile's TOML schema as typed values. Every table denies unknown keys; every choice
//! is an enum; numbers are range-checked after parsing with the key named. Touches nothing but the
//! text it is given (and the one file `BoardProfile::load` reads).

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {err}; check the path given with --config")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}: key `{key}` = {found} is out of range; allowed: {allowed}")]
    Range { path: PathBuf, key: &'static str, found: String, allowed: &'static str },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Pure-Rust CPU engine, always built.
    Tract,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    Int8,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Int8 => "int8",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardProfile {
    pub board: Board,
    pub engine: Engine,
    pub models: Models,
    pub paths: Paths,
    #[serde(default)]
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    pub name: String,
    #[serde(default)]
    pub notes: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Engine {
    pub kind: EngineKind,
    pub precision: Precision,
    /// Threads for the engine's matrix kernels (tract's multithread-mm).
    pub threads: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Models {
    /// Folder holding `classifier-<precision>.toml` and `detector-<precision>.toml` manifests.
    pub dir: PathBuf,
    /// Explicit manifest paths (bring your own model); override `dir`.
    pub classifier: Option<PathBuf>,
    pub detector: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paths {
    pub drop_dir: PathBuf,
    pub state_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Verdict {
    /// How the two models' answers make one slice suspicious.
    pub fusion: crate::verdict::fusion::FusionPolicy,
    /// P(positive) at or above which the classifier calls a slice suspicious.
    pub classifier_threshold: f32,
    /// k: suspicious slices needed within a window of `window_slices` adjacent slices.
    pub suspicious_min: u16,
    /// n: the window, in adjacent slices.
    pub window_slices: u16,
    /// A series with no new slice for this many seconds is closed (negative unless it alerted).
    pub quiet_s: f64,
}

impl Default for Verdict {
    fn default() -> Self {
        let s = crate::verdict::series::SeriesConfig::default();
        Self {
            fusion: crate::verdict::fusion::FusionPolicy::default(),
            classifier_threshold: 0.5,
            suspicious_min: s.suspicious_min,
            window_slices: s.window_slices,
            quiet_s: s.quiet_ms as f64 / 1000.0,
        }
    }
}

impl Verdict {
    pub fn fusion_config(&self) -> crate::verdict::fusion::FusionConfig {
        crate::verdict::fusion::FusionConfig::new(self.fusion, self.classifier_threshold)
    }

    pub fn series_config(&self) -> crate::verdict::series::SeriesConfig {
        crate::verdict::series::SeriesConfig {
            suspicious_min: self.suspicious_min,
            window_slices: self.window_slices,
            quiet_ms: (self.quiet_s * 1000.0) as u64,
            ..Default::default()
        }
    }
}

impl BoardProfile {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read { path: path.to_path_buf(), err })?;
        Self::parse(&text, path)
    }

    /// Parses and range-checks a profile; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let profile: BoardProfile = toml::from_str(text).map_err(|e| {
            let key = e.span().and_then(|s| key_at(text, s.start));
            let message = match key {
                Some(k) => format!("key `{k}`: {e}"),
                None => e.to_string(),
            };
            ConfigError::Parse { path: path.to_path_buf(), message }
        })?;
        profile.check(path)?;
        Ok(profile)
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let range = |key: &'static str, found: String, allowed: &'static str| ConfigError::Range {
            path: path.to_path_buf(),
            key,
            found,
            allowed,
        };
        if !(1..=64).contains(&self.engine.threads) {
            return Err(range("engine.threads", self.engine.threads.to_string(), "1 to 64"));
        }
        let t = self.verdict.classifier_threshold;
        if !(0.0..=1.0).contains(&t) || t.is_nan() {
            return Err(range("verdict.classifier_threshold", t.to_string(), "0.0 to 1.0"));
        }
        let v = &self.verdict;
        if !(1..=64).contains(&v.window_slices) {
            return Err(range("verdict.window_slices", v.window_slices.to_string(), "1 to 64"));
        }
        if v.suspicious_min < 1 || v.suspicious_min > v.window_slices {
            return Err(range("verdict.suspicious_min", v.suspicious_min.to_string(), "1 to verdict.window_slices"));
        }
        if !(0.5..=3600.0).contains(&v.quiet_s) {
            return Err(range("verdict.quiet_s", v.quiet_s.to_string(), "0.5 to 3600 seconds"));
        }
        Ok(())
    }
}

/// The dotted key (`engine.threads`) on the line holding byte `offset`, for error messages: the
/// TOML error shows the line, this names the key as the documentation does.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset.min(text.len()))?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    let table = |l: &str| l.strip_prefix('[').and_then(|l| l.strip_suffix(']')).map(|t| t.trim().to_string());
    if let Some(t) = table(line) {
        return Some(t);
    }
    let name = line.split('=').next()?.trim();
    if name.is_empty() || name.starts_with('#') {
        return None;
    }
    let header = text[..line_start].lines().rev().find_map(|l| table(l.trim()));
    Some(match header {
        Some(h) => format!("{h}.{name}"),
        None => name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[board]
name = "test"
[engine]
kind = "tract"
precision = "fp32"
threads = 2
[models]
dir = "../models"
[paths]
drop_dir = "/tmp/drop"
state_dir = "/tmp/state"
"#;

    fn err(text: &str) -> String {
        match BoardProfile::parse(text, Path::new("p.toml")) {
            Ok(_) => panic!("must fail:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_shipped_profiles_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("board");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).expect("board/") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "toml") {
                BoardProfile::load(&p).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 1);
        assert!(BoardProfile::parse(GOOD, Path::new("p.toml")).is_ok());
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key_the_line_and_what_is_allowed() {
        let e = err(&GOOD.replace("threads = 2", "threads = 2\nthreds = 3"));
        assert!(e.contains("threds") && e.contains("line 8") && e.contains("expected one of"), "{e}");
        let e = err(&GOOD.replace("kind = \"tract\"", "kind = \"cuda\""));
        assert!(e.contains("cuda") && e.contains("tract") && e.contains("line 5"), "{e}");
        let e = err(&GOOD.replace("threads = 2", "threads = 0"));
        assert!(e.contains("engine.threads") && e.contains("1 to 64"), "{e}");
        let e = err(&GOOD.replace("threads = 2", "threads = \"two\""));
        assert!(e.contains("key `engine.threads`") && e.contains("line 7"), "{e}");
        let e = err(&GOOD.replace("threads = 2", "threads = 2\nthreds = 3"));
        assert!(e.contains("key `engine.threds`"), "{e}");
        let e = err(&GOOD.replace("[paths]", "[pathz]"));
        assert!(e.contains("pathz"), "{e}");
        let e = err(&format!("{GOOD}\n[verdict]\nclassifier_threshold = 1.5\n"));
        assert!(e.contains("verdict.classifier_threshold") && e.contains("0.0 to 1.0"), "{e}");
        let e = err(&format!("{GOOD}\n[verdict]\nfusion = \"majority\"\n"));
        assert!(e.contains("majority") && e.contains("either") && e.contains("line 15"), "{e}");
        let e = err(&format!("{GOOD}\n[verdict]\nsuspicious_min = 9\nwindow_slices = 5\n"));
        assert!(e.contains("verdict.suspicious_min"), "{e}");
    }
}
