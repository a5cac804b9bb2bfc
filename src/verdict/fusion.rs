//! Per-slice fusion: turns the classifier's P(PE) and the detector's boxes for one slice into one
//! "suspicious" flag, following a configurable policy. Pure and allocation-free; touches nothing.
//!
//! In: [`SliceScores`] (the classifier probability of the positive label, and the count and best
//! confidence of the detector boxes that already passed the manifest's confidence threshold and
//! NMS). Out: [`SliceVerdict`] (the flag, and which model voted for it, for the journal).
//!
//! ## Default policy: `either`
//!
//! The seed paper runs both networks on every slice. Each has its own way of failing on the
//! phantoms: the classifier looks at the whole slice and can miss small segmental and eccentric
//! emboli (one small dark spot barely moves a whole-slice softmax), while the detector fires on
//! look-alikes such as mixing artefacts and streaks. `either` flags a slice where one of them is
//! confident, `both` only where the two agree; the series rule above it ([`super::series`]:
//! k suspicious slices within n adjacent ones) then decides the alarm. A missed PE costs more
//! than a false alert, so the default lets each model vote alone and the thresholds buy the
//! specificity. For the shipped models (classifier of 2026-11-27, slice accuracy 0.947) the
//! board profiles set P >= 0.9 and box >= 0.9 with k = 3 of n = 5, ranked first on validation
//! phantoms (seeds 1500-1515, `models/tune/sweep_fusion.py`: series sensitivity and specificity
//! 1.00); the daemon's `eval` on the evaluation seeds 1-6 confirms series sensitivity 1.00 and
//! specificity 0.83. `both` at 0.5 / 0.6 (the default for a few hours with the previous
//! classifier) misses one positive evaluation series with this classifier: one embolus it does
//! not see at all (P < 0.13 on every slice) while the detector boxes it at 0.97.
//! `classifier_only` / `detector_only` serve ablations and a model that is known to be broken.

use serde::{Deserialize, Serialize};

use super::VerdictConfigError;

/// How the two models' answers combine into one per-slice flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FusionPolicy {
    /// Suspicious only when the classifier and the detector both say so (higher specificity).
    Both,
    /// Suspicious when either model says so (higher sensitivity). The default: see the module docs.
    #[default]
    Either,
    /// Only the classifier's probability counts; boxes are still recorded.
    ClassifierOnly,
    /// Only the detector's boxes count; the probability is still recorded.
    DetectorOnly,
}

impl FusionPolicy {
    /// The name used in the config file and the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            FusionPolicy::Both => "both",
            FusionPolicy::Either => "either",
            FusionPolicy::ClassifierOnly => "classifier_only",
            FusionPolicy::DetectorOnly => "detector_only",
        }
    }
}

/// Fusion settings (the `[verdict]` table's `policy` and `classifier_p`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct FusionConfig {
    pub policy: FusionPolicy,
    /// The classifier votes "PE" when P(positive) >= this. 0.5 is the softmax argmax for two labels.
    pub classifier_p: f32,
}

impl Default for FusionConfig {
    fn default() -> Self {
        FusionConfig { policy: FusionPolicy::default(), classifier_p: 0.5 }
    }
}

impl FusionConfig {
    pub fn new(policy: FusionPolicy, classifier_p: f32) -> Self {
        FusionConfig { policy, classifier_p }
    }

    /// Checks the threshold is a probability. Call once when the config is resolved.
    pub fn validate(&self) -> Result<(), VerdictConfigError> {
        if !(0.0..=1.0).contains(&self.classifier_p) {
            return Err(VerdictConfigError::OutOfRange {
                key: "classifier_p",
                found: self.classifier_p.to_string(),
                allowed: "it must be a probability between 0 and 1".into(),
            });
        }
        Ok(())
    }
}

/// What the two models said about one slice.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SliceScores {
    /// Classifier P(positive label), from the softmax in the manifest's label order.
    pub p: f32,
    /// Detector boxes that passed the manifest's confidence threshold (after NMS).
    pub boxes: u32,
    /// Highest confidence among those boxes; 0 when there are none.
    pub max_confidence: f32,
}

/// The fused answer for one slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SliceVerdict {
    pub suspicious: bool,
    /// The classifier voted "PE" (whatever the policy).
    pub classifier_positive: bool,
    /// The detector found at least one box (whatever the policy).
    pub detector_positive: bool,
}

/// Fuses one slice's scores. A NaN probability never votes "PE" (NaN compares false); it is the
/// pipeline's job to reject such a slice before it gets here.
pub fn fuse(config: &FusionConfig, scores: &SliceScores) -> SliceVerdict {
    let classifier_positive = scores.p >= config.classifier_p;
    let detector_positive = scores.boxes > 0;
    let suspicious = match config.policy {
        FusionPolicy::Both => classifier_positive && detector_positive,
        FusionPolicy::Either => classifier_positive || detector_positive,
        FusionPolicy::ClassifierOnly => classifier_positive,
        FusionPolicy::DetectorOnly => detector_positive,
    };
    SliceVerdict { suspicious, classifier_positive, detector_positive }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(p: f32, boxes: u32) -> SliceScores {
        SliceScores { p, boxes, max_confidence: if boxes > 0 { 0.7 } else { 0.0 } }
    }

    #[test]
    fn truth_table_of_every_policy() {
        // (p, boxes) -> expected for [both, either, classifier_only, detector_only]
        let cases = [
            (0.9, 0, [false, true, true, false]),
            (0.1, 2, [false, true, false, true]),
            (0.9, 1, [true, true, true, true]),
            (0.1, 0, [false, false, false, false]),
        ];
        let policies =
            [FusionPolicy::Both, FusionPolicy::Either, FusionPolicy::ClassifierOnly, FusionPolicy::DetectorOnly];
        for (p, boxes, expected) in cases {
            for (policy, want) in policies.iter().zip(expected) {
                let v = fuse(&FusionConfig::new(*policy, 0.5), &scores(p, boxes));
                assert_eq!(v.suspicious, want, "{policy:?} p={p} boxes={boxes}");
                assert_eq!(v.classifier_positive, p >= 0.5);
                assert_eq!(v.detector_positive, boxes > 0);
            }
        }
    }

    #[test]
    fn threshold_is_inclusive_and_nan_never_votes() {
        let cfg = FusionConfig::new(FusionPolicy::ClassifierOnly, 0.5);
        assert!(fuse(&cfg, &scores(0.5, 0)).suspicious);
        assert!(!fuse(&cfg, &scores(0.499_999, 0)).suspicious);
        assert!(!fuse(&cfg, &scores(f32::NAN, 0)).suspicious);
        let strict = FusionConfig::new(FusionPolicy::ClassifierOnly, 0.8);
        assert!(!fuse(&strict, &scores(0.7, 0)).suspicious);
    }

    #[test]
    fn default_is_either_at_one_half() {
        let cfg = FusionConfig::default();
        assert_eq!(cfg.policy, FusionPolicy::Either);
        assert_eq!(cfg.classifier_p, 0.5);
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn serde_names_are_lowercase_snake() {
        for (policy, name) in [
            (FusionPolicy::Both, "both"),
            (FusionPolicy::Either, "either"),
            (FusionPolicy::ClassifierOnly, "classifier_only"),
            (FusionPolicy::DetectorOnly, "detector_only"),
        ] {
            assert_eq!(serde_json::to_string(&policy).ok(), Some(format!("\"{name}\"")));
            assert_eq!(policy.as_str(), name);
            let back: Result<FusionPolicy, _> = serde_json::from_str(&format!("\"{name}\""));
            assert_eq!(back.ok(), Some(policy));
        }
        assert!(serde_json::from_str::<FusionPolicy>("\"Both\"").is_err());
        let cfg: FusionConfig = toml::from_str("policy = \"both\"\nclassifier_p = 0.7").unwrap_or_default();
        assert_eq!(cfg, FusionConfig::new(FusionPolicy::Both, 0.7));
        assert!(toml::from_str::<FusionConfig>("policy = \"both\"\nthreshold = 0.7").is_err());
    }

    #[test]
    fn out_of_range_threshold_is_rejected_with_its_key() {
        for bad in [-0.1, 1.5, f32::NAN] {
            let err = FusionConfig::new(FusionPolicy::Either, bad).validate();
            let msg = err.map_err(|e| e.to_string()).err().unwrap_or_default();
            assert!(msg.contains("classifier_p") && msg.contains("between 0 and 1"), "{msg}");
        }
    }
}
