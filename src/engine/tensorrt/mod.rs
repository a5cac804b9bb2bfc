//! TensorRT (issue 10): the engine cache, the rebuild decision, the fallback policy, the INT8
//! accuracy margin and the error mapping of the project's C ABI (`pe_trt.h`) are plain Rust and
//! always built; the binding that loads the shim library (`libpe_trt.so`, board/jetson/shim) at run
//! time is in [`shim`], built with the cargo feature `tensorrt` only. Nothing here links TensorRT.
//! Touches: `<state>/engines/` (plans and the timing cache) and the shim library file.
//!
//! Executed on real TensorRT: the shim built against the 11.1 headers, loaded with NVIDIA's lean
//! 11.1 runtime on a machine without a GPU (tests/tensorrt_real.rs); no plan was ever built or
//! run. See docs/engines.md.
use std::path::{Path, PathBuf};

#[cfg(feature = "tensorrt")]
pub mod shim;

/// What the profile wants when TensorRT cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    /// Refuse to start (the default: a Jetson without its engine should be noticed).
    #[default]
    Refuse,
    /// Run on tract and say so in the log and in `check`.
    Tract,
}

impl Fallback {
    pub fn as_str(self) -> &'static str {
        match self {
            Fallback::Refuse => "refuse",
            Fallback::Tract => "tract",
        }
    }
}

/// Precision of a TensorRT build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildPrecision {
    Fp32,
    Fp16,
    /// Explicit quantization from the model's Q/DQ nodes (the INT8 manifests' models).
    Int8Qdq,
}

impl BuildPrecision {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildPrecision::Fp32 => "fp32",
            BuildPrecision::Fp16 => "fp16",
            BuildPrecision::Int8Qdq => "int8",
        }
    }

    /// The `PE_TRT_*` constant of pe_trt.h.
    pub fn abi(self) -> i32 {
        match self {
            BuildPrecision::Fp32 => 0,
            BuildPrecision::Fp16 => 1,
            BuildPrecision::Int8Qdq => 2,
        }
    }
}

/// Everything a plan depends on: a change of any part means a rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    pub model_sha256: String,
    pub tensorrt_version: String,
    pub gpu_name: String,
    pub precision: BuildPrecision,
}

/// Keeps file names portable: letters, digits, `.` and `_`; everything else becomes `_`.
fn sanitize(s: &str) -> String {
    let out: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '_' { c } else { '_' }).collect();
    if out.is_empty() {
        "unknown".into()
    } else {
        out
    }
}

impl CacheKey {
    /// `<model-sha256>-<tensorrt-version>-<gpu-name>-<precision>.plan`
    pub fn file_name(&self) -> String {
        format!(
            "{}-{}-{}-{}.plan",
            sanitize(&self.model_sha256),
            sanitize(&self.tensorrt_version),
            sanitize(&self.gpu_name),
            self.precision.as_str()
        )
    }

    /// The timing cache shared by every build on this TensorRT version and GPU.
    pub fn timing_cache_name(&self) -> String {
        format!("timing-{}-{}.cache", sanitize(&self.tensorrt_version), sanitize(&self.gpu_name))
    }
}

/// `<state>/engines`
pub fn engines_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("engines")
}

/// What to do about one model's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheDecision {
    /// A plan for exactly this key exists.
    Reuse(PathBuf),
    /// Build one; `reason` says why (for the log).
    Build { path: PathBuf, reason: String },
}

/// Looks in `dir` for the plan of `key`; when absent, names what changed since an older plan
/// of the same model (TensorRT version, GPU, precision) or says there was none.
pub fn decide(dir: &Path, key: &CacheKey) -> CacheDecision {
    let path = dir.join(key.file_name());
    if path.is_file() {
        return CacheDecision::Reuse(path);
    }
    let prefix = format!("{}-", sanitize(&key.model_sha256));
    let mut older: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix) && n.ends_with(".plan"))
        .collect();
    older.sort();
    let reason = match older.first() {
        None => "no plan for this model yet".to_string(),
        Some(old) => {
            let want = key.file_name();
            let parts = |n: &str| n.trim_end_matches(".plan").split_once('-').map(|x| x.1.to_string());
            format!(
                "the plan {old} was built for {}, this box is {}",
                parts(old).unwrap_or_default(),
                parts(&want).unwrap_or_default()
            )
        }
    };
    CacheDecision::Build { path, reason }
}

/// Error codes of pe_trt.h, mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrtError {
    #[error("TensorRT shim: bad argument: {0}")]
    Argument(String),
    #[error("TensorRT could not deserialize the plan ({0}); it was built by another TensorRT version or GPU: delete it or run `pe-sentinel build-engines`")]
    Plan(String),
    #[error("TensorRT engine build failed: {0}")]
    Build(String),
    #[error("TensorRT does not support this: {0}")]
    Unsupported(String),
    #[error("CUDA: {0}")]
    Cuda(String),
    #[error("TensorRT inference failed: {0}")]
    Infer(String),
    #[error("{0}; build the plans where the full TensorRT is installed (JetPack's TensorRT packages), or point [tensorrt] library at libnvinfer")]
    NoBuilder(String),
    #[error("{0}")]
    Library(String),
    #[error("TensorRT shim returned unknown code {code}: {message}")]
    Unknown { code: i32, message: String },
}

impl TrtError {
    /// Maps a negative `PE_TRT_E_*` code and the shim's last error message.
    pub fn from_code(code: i32, message: String) -> TrtError {
        match code {
            -1 => TrtError::Argument(message),
            -2 => TrtError::Plan(message),
            -3 => TrtError::Build(message),
            -4 => TrtError::Unsupported(message),
            -5 => TrtError::Cuda(message),
            -6 => TrtError::Infer(message),
            -7 => TrtError::NoBuilder(message),
            -8 => TrtError::Library(message),
            code => TrtError::Unknown { code, message },
        }
    }

    /// Whether rebuilding the plan may cure it.
    pub fn wants_rebuild(&self) -> bool {
        matches!(self, TrtError::Plan(_))
    }
}

/// The fallback policy applied to a TensorRT failure: `Ok(reason)` to run on tract (the reason
/// goes to the log and `check`), `Err(message)` to refuse to start.
pub fn apply_fallback(policy: Fallback, failure: &str) -> Result<String, String> {
    match policy {
        Fallback::Tract => Ok(format!("falling back to tract ([tensorrt] fallback = \"tract\"): {failure}")),
        Fallback::Refuse => Err(format!(
            "{failure}; refusing to start ([tensorrt] fallback = \"refuse\"); set fallback = \"tract\" to run on the CPU instead"
        )),
    }
}

/// One accuracy figure of `pe-sentinel eval` (higher is better), FP32 and INT8 side by side.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub name: &'static str,
    pub fp32: Option<f64>,
    pub int8: Option<f64>,
}

/// `[tensorrt] int8_max_loss`: refuses an INT8 engine that loses more than `margin` (absolute,
/// 0..1) on any figure of the phantom eval set against FP32. Figures missing on either side are
/// skipped; returns the figures checked.
pub fn check_int8_margin(figures: &[Figure], margin: f64) -> Result<usize, String> {
    let mut checked = 0;
    let mut losses = Vec::new();
    for f in figures {
        if let (Some(a), Some(b)) = (f.fp32, f.int8) {
            checked += 1;
            if a - b > margin {
                losses.push(format!("{} {:.4} -> {:.4} (loss {:.4})", f.name, a, b, a - b));
            }
        }
    }
    if losses.is_empty() {
        Ok(checked)
    } else {
        Err(format!(
            "the INT8 models lose more than [tensorrt] int8_max_loss = {margin} against FP32 on the eval set: {}; use precision = \"fp32\" (or fp16) or raise the margin",
            losses.join(", ")
        ))
    }
}

/// The figures [`check_int8_margin`] compares, read from two `pe-sentinel eval --json` outputs.
pub fn eval_figures(fp32: &serde_json::Value, int8: &serde_json::Value) -> Vec<Figure> {
    const KEYS: [(&str, &str); 7] = [
        ("detector AP50 (VOC)", "/ap50_voc"),
        ("classifier slice accuracy", "/slice_accuracy"),
        ("classifier slice sensitivity", "/slice_sensitivity"),
        ("classifier slice specificity", "/slice_specificity"),
        ("series sensitivity", "/series_sensitivity"),
        ("series specificity", "/series_specificity"),
        ("fused slice accuracy", "/fused_slice_accuracy"),
    ];
    KEYS.iter()
        .map(|&(name, ptr)| Figure {
            name,
            fp32: fp32.pointer(ptr).and_then(serde_json::Value::as_f64),
            int8: int8.pointer(ptr).and_then(serde_json::Value::as_f64),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CacheKey {
        CacheKey {
            model_sha256: "ab12".into(),
            tensorrt_version: "10.3.0".into(),
            gpu_name: "Orin (sm_87)".into(),
            precision: BuildPrecision::Int8Qdq,
        }
    }

    #[test]
    fn cache_key_names_every_part_and_stays_a_plain_file_name() {
        assert_eq!(key().file_name(), "ab12-10.3.0-Orin__sm_87_-int8.plan");
        assert_eq!(key().timing_cache_name(), "timing-10.3.0-Orin__sm_87_.cache");
        let weird = CacheKey { gpu_name: "../../etc/x".into(), ..key() };
        assert!(!weird.file_name().contains('/'), "{}", weird.file_name());
        let empty = CacheKey { gpu_name: String::new(), ..key() };
        assert!(empty.file_name().contains("-unknown-"));
        for other in [
            CacheKey { model_sha256: "cd34".into(), ..key() },
            CacheKey { tensorrt_version: "8.5.2".into(), ..key() },
            CacheKey { gpu_name: "Xavier".into(), ..key() },
            CacheKey { precision: BuildPrecision::Fp16, ..key() },
        ] {
            assert_ne!(other.file_name(), key().file_name());
        }
    }

    #[test]
    fn rebuild_when_any_part_of_the_key_changes() {
        let dir = tempfile::tempdir().unwrap();
        let k = key();
        match decide(dir.path(), &k) {
            CacheDecision::Build { reason, path } => {
                assert!(reason.contains("no plan"), "{reason}");
                assert_eq!(path, dir.path().join(k.file_name()));
            }
            d => panic!("{d:?}"),
        }
        std::fs::write(dir.path().join(k.file_name()), b"plan").unwrap();
        assert_eq!(decide(dir.path(), &k), CacheDecision::Reuse(dir.path().join(k.file_name())));
        let upgraded = CacheKey { tensorrt_version: "10.4.0".into(), ..key() };
        match decide(dir.path(), &upgraded) {
            CacheDecision::Build { reason, .. } => {
                assert!(reason.contains("10.3.0") && reason.contains("10.4.0"), "{reason}")
            }
            d => panic!("{d:?}"),
        }
        let other_model = CacheKey { model_sha256: "ffff".into(), ..key() };
        assert!(
            matches!(decide(dir.path(), &other_model), CacheDecision::Build { reason, .. } if reason.contains("no plan"))
        );
    }

    #[test]
    fn error_codes_map_and_only_plan_errors_ask_for_a_rebuild() {
        let m = || "why".to_string();
        assert_eq!(TrtError::from_code(-1, m()), TrtError::Argument(m()));
        assert!(TrtError::from_code(-2, m()).wants_rebuild());
        assert!(TrtError::from_code(-2, m()).to_string().contains("build-engines"));
        assert!(matches!(TrtError::from_code(-7, m()), TrtError::NoBuilder(_)));
        assert!(TrtError::from_code(-7, m()).to_string().contains("full TensorRT"));
        assert_eq!(TrtError::from_code(-8, m()), TrtError::Library(m()));
        for c in [-1, -3, -4, -5, -6, -7, -8, -99] {
            assert!(!TrtError::from_code(c, m()).wants_rebuild(), "{c}");
        }
        assert!(matches!(TrtError::from_code(-99, m()), TrtError::Unknown { code: -99, .. }));
    }

    #[test]
    fn fallback_policy_says_what_it_does() {
        let ok = apply_fallback(Fallback::Tract, "no libpe_trt.so").unwrap();
        assert!(ok.contains("falling back to tract") && ok.contains("no libpe_trt.so"), "{ok}");
        let e = apply_fallback(Fallback::Refuse, "no libpe_trt.so").unwrap_err();
        assert!(e.contains("refusing to start") && e.contains("fallback = \"tract\""), "{e}");
    }

    #[test]
    fn int8_margin_refuses_a_lossy_engine() {
        let f = |fp32, int8| {
            vec![
                Figure { name: "series sensitivity", fp32: Some(1.0), int8: Some(1.0) },
                Figure { name: "detector AP50", fp32: Some(fp32), int8: Some(int8) },
                Figure { name: "slice accuracy", fp32: None, int8: Some(0.2) },
            ]
        };
        assert_eq!(check_int8_margin(&f(0.80, 0.79), 0.02), Ok(2));
        let e = check_int8_margin(&f(0.80, 0.70), 0.02).unwrap_err();
        assert!(e.contains("detector AP50") && e.contains("int8_max_loss = 0.02"), "{e}");
        // Gains are never a loss.
        assert!(check_int8_margin(&f(0.70, 0.80), 0.0).is_ok());
    }
}
