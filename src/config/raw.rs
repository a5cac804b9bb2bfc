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
    /// onnxruntime, its shared library loaded at run time; refuses to start without it.
    Onnxruntime,
    /// onnxruntime when its library loads, else tract (the choice and why are logged).
    Auto,
    /// TensorRT through the project's shim (cargo feature `tensorrt`; see docs/engines.md).
    Tensorrt,
}

impl EngineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Tract => "tract",
            EngineKind::Onnxruntime => "onnxruntime",
            EngineKind::Auto => "auto",
            EngineKind::Tensorrt => "tensorrt",
        }
    }
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
    /// Capture-card source (issue 8); absent: none.
    pub capture: Option<super::capture::Capture>,
    /// The scanner-room status display; absent: no display.
    pub display: Option<Display>,
    #[serde(default)]
    pub budget: Budget,
    #[serde(default)]
    pub runtime: Runtime,
    #[serde(default)]
    pub tensorrt: Tensorrt,
    /// `[dicom]`: `[dicom.send]` results to a PACS (issue 22); absent: none.
    pub dicom: Option<super::dicom_send::DicomTable>,
}

/// `[tensorrt]`: used when `[engine] kind = "tensorrt"` (docs/engines.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tensorrt {
    /// The shim library (relative to the profile); unset: <exe>/../lib/pe-sentinel/libpe_trt.so, then the system.
    pub shim: Option<PathBuf>,
    /// The TensorRT library the shim opens (relative to the profile), e.g. a lean runtime's
    /// libnvinfer_lean.so.11; unset: libnvinfer.so.<major>, then libnvinfer_lean.so.<major>, from the system.
    pub library: Option<PathBuf>,
    /// When TensorRT cannot be used: "refuse" to start, or run on "tract" (the log says so).
    pub fallback: crate::engine::tensorrt::Fallback,
    /// Build FP16 engines from the FP32 models (precision = "fp32" only).
    pub fp16: bool,
    /// 0..1: the largest loss of any eval figure INT8 may have against FP32 (see `engine::tensorrt::check_int8_margin`).
    pub int8_max_loss: f64,
}

impl Default for Tensorrt {
    fn default() -> Self {
        Tensorrt { shim: None, library: None, fallback: Default::default(), fp16: false, int8_max_loss: 0.02 }
    }
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
    /// Threads for the engine's matrix kernels (tract's multithread-mm, onnxruntime's intra-op pool).
    pub threads: usize,
    /// The onnxruntime shared library (relative to the profile); when set, the only one tried.
    #[serde(default)]
    pub onnxruntime_lib: Option<PathBuf>,
    /// onnxruntime execution providers to ask for before the CPU one ("cuda", "tensorrt").
    #[serde(default)]
    pub providers: Vec<crate::engine::onnxruntime::Provider>,
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
    /// Detector box confidence at or above which a box counts (absent: the manifest's).
    pub detector_threshold: Option<f32>,
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
            detector_threshold: None,
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

/// `[budget]`: the per-slice latency budget and what keeps it (see `crate::budget`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Budget {
    /// Arrival-to-verdict budget per slice, milliseconds.
    pub budget_ms: u32,
    /// Cascade: run the detector only when the classifier's P is at least this (absent: always).
    pub cascade_gate: Option<f32>,
    /// SLOW is judged over this many most recent slices.
    pub slow_window: u16,
    /// SLOW when more than this share of the window missed the budget.
    pub slow_miss_fraction: f32,
}

impl Default for Budget {
    fn default() -> Self {
        let b = crate::budget::BudgetConfig::default();
        Budget {
            budget_ms: b.budget_ms,
            cascade_gate: None,
            slow_window: b.slow_window,
            slow_miss_fraction: b.slow_miss_fraction,
        }
    }
}

impl Budget {
    pub fn config(&self) -> crate::budget::BudgetConfig {
        crate::budget::BudgetConfig {
            budget_ms: self.budget_ms,
            slow_window: self.slow_window,
            slow_miss_fraction: self.slow_miss_fraction,
        }
    }
}

/// `[runtime]`: optional scheduling of the inference thread (see `crate::runtime`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Runtime {
    /// CPU numbers the inference thread may run on (empty: any).
    pub cpu_affinity: Vec<usize>,
    /// SCHED_FIFO priority 1..99 for the inference thread (absent: normal scheduling).
    pub realtime_priority: Option<u8>,
    /// Lock all current and future memory in RAM (no paging of models or buffers).
    pub mlockall: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DisplayProtocol {
    Line,
    Lcd,
    Nextion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum DisplayGeometry {
    #[serde(rename = "16x2")]
    Cols16Rows2,
    #[serde(rename = "20x4")]
    Cols20Rows4,
}

/// The `[display]` table. See docs/display.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Display {
    /// Serial device, e.g. /dev/ttyACM0 or a /dev/serial/by-id/ link.
    pub port: PathBuf,
    #[serde(default = "Display::default_baud")]
    pub baud: u32,
    pub protocol: DisplayProtocol,
    #[serde(default = "Display::default_geometry")]
    pub geometry: DisplayGeometry,
    /// Nextion: the text components, one per row.
    pub fields: Option<Vec<String>>,
    /// Nextion: the text component of the heartbeat mark.
    #[serde(default = "Display::default_heartbeat_field")]
    pub heartbeat_field: String,
    #[serde(default = "Display::default_refresh_ms")]
    pub refresh_ms: u64,
    #[serde(default = "Display::default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// 0: an ALERT stays until acknowledged.
    #[serde(default)]
    pub alert_timeout_s: u64,
}

/// Baud rates a serial LCD, a Nextion panel or a USB CDC microcontroller accepts.
const BAUD_RATES: [u32; 9] = [2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 921600];

impl Display {
    fn default_baud() -> u32 {
        9600
    }
    fn default_geometry() -> DisplayGeometry {
        DisplayGeometry::Cols20Rows4
    }
    fn default_heartbeat_field() -> String {
        "hb".into()
    }
    fn default_refresh_ms() -> u64 {
        250
    }
    fn default_heartbeat_ms() -> u64 {
        1000
    }

    /// The resolved display settings.
    pub fn config(&self) -> crate::display::DisplayConfig {
        use crate::display::{screen::Geometry, ProtocolKind};
        let geometry = match self.geometry {
            DisplayGeometry::Cols16Rows2 => Geometry::Cols16Rows2,
            DisplayGeometry::Cols20Rows4 => Geometry::Cols20Rows4,
        };
        let protocol = match self.protocol {
            DisplayProtocol::Line => ProtocolKind::Line,
            DisplayProtocol::Lcd => ProtocolKind::Lcd,
            DisplayProtocol::Nextion => ProtocolKind::Nextion,
        };
        let mut c = crate::display::DisplayConfig::new(&self.port, protocol);
        c.baud = self.baud;
        c.geometry = geometry;
        c.fields = match &self.fields {
            Some(f) => f.clone(),
            None => (0..geometry.rows()).map(|i| format!("t{i}")).collect(),
        };
        c.heartbeat_field = self.heartbeat_field.clone();
        c.refresh_ms = self.refresh_ms;
        c.heartbeat_ms = self.heartbeat_ms;
        c.alert_timeout_ms = (self.alert_timeout_s > 0).then_some(self.alert_timeout_s * 1000);
        c
    }
}

/// A Nextion component name: letters, digits, `_` and `.` (page.component), 1 to 32 long.
fn is_component_name(s: &str) -> bool {
    (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
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
        if let Some(d) = v.detector_threshold {
            if !(0.0..=1.0).contains(&d) || d.is_nan() {
                return Err(range(
                    "verdict.detector_threshold",
                    d.to_string(),
                    "0.0 to 1.0, or leave it out for the manifest's",
                ));
            }
        }
        if !(1..=64).contains(&v.window_slices) {
            return Err(range("verdict.window_slices", v.window_slices.to_string(), "1 to 64"));
        }
        if v.suspicious_min < 1 || v.suspicious_min > v.window_slices {
            return Err(range("verdict.suspicious_min", v.suspicious_min.to_string(), "1 to verdict.window_slices"));
        }
        let m = self.tensorrt.int8_max_loss;
        if !(0.0..=1.0).contains(&m) || m.is_nan() {
            return Err(range("tensorrt.int8_max_loss", m.to_string(), "0.0 to 1.0"));
        }
        if !(0.5..=3600.0).contains(&v.quiet_s) {
            return Err(range("verdict.quiet_s", v.quiet_s.to_string(), "0.5 to 3600 seconds"));
        }
        let b = &self.budget;
        if !(1..=600_000).contains(&b.budget_ms) {
            return Err(range("budget.budget_ms", b.budget_ms.to_string(), "1 to 600000 milliseconds"));
        }
        if let Some(g) = b.cascade_gate {
            if !(0.0..=1.0).contains(&g) || g.is_nan() {
                return Err(range("budget.cascade_gate", g.to_string(), "0.0 to 1.0, or leave it out"));
            }
        }
        if !(1..=crate::budget::MAX_WINDOW as u16).contains(&b.slow_window) {
            return Err(range("budget.slow_window", b.slow_window.to_string(), "1 to 1024 slices"));
        }
        if !(0.0..1.0).contains(&b.slow_miss_fraction) || b.slow_miss_fraction.is_nan() {
            return Err(range(
                "budget.slow_miss_fraction",
                b.slow_miss_fraction.to_string(),
                "0.0 up to (not including) 1.0",
            ));
        }
        if let Some(d) = &self.dicom {
            d.receive.check().map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })?;
        }
        let r = &self.runtime;
        if let Some(p) = r.realtime_priority {
            if !(1..=99).contains(&p) {
                return Err(range("runtime.realtime_priority", p.to_string(), "1 to 99 (SCHED_FIFO), or leave it out"));
            }
        }
        if let Some(c) = r.cpu_affinity.iter().find(|&&c| c >= 1024) {
            return Err(range("runtime.cpu_affinity", c.to_string(), "CPU numbers 0 to 1023"));
        }
        if let Some(d) = &self.display {
            if !BAUD_RATES.contains(&d.baud) {
                return Err(range(
                    "display.baud",
                    d.baud.to_string(),
                    "2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400 or 921600",
                ));
            }
            if d.port.as_os_str().is_empty() {
                return Err(range("display.port", "\"\"".into(), "a serial device path such as /dev/ttyACM0"));
            }
            if !(20..=10_000).contains(&d.refresh_ms) {
                return Err(range("display.refresh_ms", d.refresh_ms.to_string(), "20 to 10000 ms"));
            }
            if !(200..=10_000).contains(&d.heartbeat_ms) {
                return Err(range("display.heartbeat_ms", d.heartbeat_ms.to_string(), "200 to 10000 ms"));
            }
            if d.alert_timeout_s > 86_400 {
                return Err(range(
                    "display.alert_timeout_s",
                    d.alert_timeout_s.to_string(),
                    "0 (latched until acknowledged) to 86400 seconds",
                ));
            }
            let rows = match d.geometry {
                DisplayGeometry::Cols16Rows2 => 2,
                DisplayGeometry::Cols20Rows4 => 4,
            };
            if let Some(f) = &d.fields {
                if f.len() != rows || !f.iter().all(|n| is_component_name(n)) {
                    return Err(range(
                        "display.fields",
                        format!("{f:?}"),
                        "one Nextion component name per row of display.geometry (letters, digits, _ or ., up to 32)",
                    ));
                }
            }
            if !is_component_name(&d.heartbeat_field) {
                return Err(range(
                    "display.heartbeat_field",
                    format!("{:?}", d.heartbeat_field),
                    "a Nextion component name (letters, digits, _ or ., up to 32)",
                ));
            }
        }
        if let Some(c) = &self.capture {
            c.check(path)?;
        }
        if let Some(send) = self.dicom.as_ref().and_then(|d| d.send.as_ref()) {
            send.validate().map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })?;
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
        let e = err(&format!("{GOOD}\n[budget]\nbudget_ms = 0\n"));
        assert!(e.contains("budget.budget_ms") && e.contains("1 to 600000"), "{e}");
        let e = err(&format!("{GOOD}\n[budget]\ncascade_gate = 2.0\n"));
        assert!(e.contains("budget.cascade_gate"), "{e}");
        let e = err(&format!("{GOOD}\n[budget]\nbudget_mss = 5\n"));
        assert!(e.contains("budget_mss") && e.contains("line 15"), "{e}");
        let e = err(&format!("{GOOD}\n[runtime]\nrealtime_priority = 0\n"));
        assert!(e.contains("runtime.realtime_priority") && e.contains("1 to 99"), "{e}");
    }

    #[test]
    fn the_display_table_is_optional_checked_and_resolved() {
        let p = BoardProfile::parse(GOOD, Path::new("p.toml")).expect("good");
        assert!(p.display.is_none(), "absent: no display");
        let d = "\n[display]\nport = \"/dev/ttyACM0\"\nprotocol = \"lcd\"\n";
        let p = BoardProfile::parse(&format!("{GOOD}{d}"), Path::new("p.toml")).expect("display");
        let c = p.display.expect("display").config();
        assert_eq!((c.baud, c.refresh_ms, c.heartbeat_ms, c.alert_timeout_ms), (9600, 250, 1000, None));
        assert_eq!(c.fields, ["t0", "t1", "t2", "t3"]);
        let e = err(&format!("{GOOD}{d}baud = 9601\n"));
        assert!(e.contains("display.baud") && e.contains("115200"), "{e}");
        let e = err(&format!("{GOOD}{d}").replace("\"lcd\"", "\"vfd\""));
        assert!(e.contains("vfd") && e.contains("nextion") && e.contains("line 16"), "{e}");
        let e = err(&format!("{GOOD}{d}geometry = \"40x2\"\n"));
        assert!(e.contains("40x2") && e.contains("20x4"), "{e}");
        let e = err(&format!("{GOOD}{d}geometry = \"16x2\"\nfields = [\"a\", \"b\", \"c\"]\n"));
        assert!(e.contains("display.fields") && e.contains("one Nextion component name per row"), "{e}");
        let e = err(&format!("{GOOD}{d}fields = [\"t0\", \"t1\", \"t 2\", \"t3\"]\n"));
        assert!(e.contains("display.fields"), "{e}");
        let e = err(&format!("{GOOD}{d}heartbeat_ms = 50\n"));
        assert!(e.contains("display.heartbeat_ms") && e.contains("200 to 10000"), "{e}");
        let e = err(&format!("{GOOD}{d}alert_timeout_s = 100000\n"));
        assert!(e.contains("display.alert_timeout_s"), "{e}");
        let e = err(&format!("{GOOD}{d}prot = 1\n"));
        assert!(e.contains("prot") && e.contains("line 17"), "{e}");
        // The shipped profile documents every key as a commented-out line: uncommented, they parse.
        let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("board/x86-cpu.toml"))
            .expect("shipped profile");
        let block = shipped.split("# [display]").nth(1).expect("a commented [display] block");
        // Up to the next (commented) table.
        let block = block.split("\n# [").next().unwrap_or(block);
        let keys: String = block
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.contains(" = "))
            .map(|l| format!("{l}\n"))
            .collect();
        let p =
            BoardProfile::parse(&format!("{GOOD}\n[display]\n{keys}"), Path::new("p.toml")).expect("documented keys");
        let c = p.display.expect("display").config();
        assert_eq!(keys.lines().count(), 9, "{keys}");
        assert_eq!(c.port, Path::new("/dev/ttyACM0"));
        let p = BoardProfile::parse(&format!("{GOOD}{d}alert_timeout_s = 600\n"), Path::new("p.toml")).expect("ok");
        assert_eq!(p.display.expect("display").config().alert_timeout_ms, Some(600_000));
    }

    #[test]
    fn the_dicom_table_is_accepted_and_checked_as_the_receiver_reads_it() {
        // The shipped profile's commented [dicom] block, uncommented, parses here too.
        let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("board/x86-cpu.toml"))
            .expect("shipped profile");
        let block = shipped.split("\n# [dicom]\n").nth(1).expect("a commented [dicom] block");
        let text: String = block
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .map(|l| if l.starts_with("[[dicom.allow]]") { "[[dicom.allow]]\n".to_string() } else { format!("{l}\n") })
            .collect();
        let p = BoardProfile::parse(&format!("{GOOD}\n[dicom]\n{text}"), Path::new("p.toml")).expect("documented keys");
        let d = p.dicom.expect("dicom").receive;
        assert_eq!((d.ae_title.as_str(), d.max_associations, d.allow.len()), ("PE-SENTINEL", 4, 1));
        let e = err(&format!("{GOOD}\n[dicom]\nmax_pdu_bytes = 1024\n"));
        assert!(e.contains("dicom.max_pdu_bytes") && e.contains("65536"), "{e}");
        let e = err(&format!("{GOOD}\n[dicom]\nae_titel = \"X\"\n"));
        assert!(e.contains("ae_titel"), "{e}");
        let e = err(&format!("{GOOD}\n[dicom]\n[[dicom.allow]]\nae_title = \"CT\"\naddresses = [\"10.0.0.0/40\"]\n"));
        assert!(e.contains("prefix"), "{e}");
    }

    #[test]
    fn the_capture_table_is_checked_key_by_key() {
        let cap = "\n[capture]\ndevice = \"/dev/video0\"\nviewport = { x = 704, y = 276, width = 512, height = 512 }\n";
        let p = BoardProfile::parse(&format!("{GOOD}{cap}"), Path::new("p.toml")).expect("capture");
        let c = p.capture.expect("capture table");
        assert_eq!((c.width, c.height, c.fps, c.format.as_str()), (1920, 1080, 30, "yuyv"));
        let e = err(&format!("{GOOD}{cap}fsp = 30\n"));
        assert!(e.contains("fsp") && e.contains("line 17"), "{e}");
        let e = err(&format!("{GOOD}{cap}format = \"h264\"\n"));
        assert!(e.contains("h264") && e.contains("mjpeg"), "{e}");
        let e = err(&format!("{GOOD}{cap}width = 1000\n"));
        assert!(e.contains("capture.viewport") && e.contains("inside"), "{e}");
        let e = err(&format!("{GOOD}{cap}masks = [{{ x = 1900, y = 0, width = 40, height = 10 }}]\n"));
        assert!(e.contains("capture.masks"), "{e}");
        let e = err(&format!("{GOOD}{cap}changed_fraction = 0.9\n"));
        assert!(e.contains("capture.changed_fraction") && e.contains("0.5"), "{e}");
    }
}
