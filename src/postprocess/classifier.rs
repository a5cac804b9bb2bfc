//! Classifier head: the output vector -> P(positive label), by the manifest's label order.
//!
//! In: the `[1, labels]` output as a flat slice. Out: one probability. Logits go through a
//! max-subtracted softmax; probabilities are read as they are. Touches nothing else.
use super::HeadError;
use crate::model::{Head, Manifest, ModelKind, OutputKind};

/// How to read P(positive) from one classifier's output.
#[derive(Debug, Clone)]
pub struct ClassifierHead {
    name: String,
    kind: OutputKind,
    classes: usize,
    positive: usize,
}

impl ClassifierHead {
    /// Refuses a detector manifest, and one without a positive label.
    pub fn new(manifest: &Manifest) -> Result<ClassifierHead, HeadError> {
        let Head::Classifier(out) = manifest.head() else {
            return Err(HeadError::WrongKind {
                manifest: manifest.path().to_owned(),
                expected: "classifier",
                found: kind_name(manifest.model().kind),
            });
        };
        let positive = manifest
            .positive_index()
            .ok_or_else(|| HeadError::NoPositiveLabel { manifest: manifest.path().to_owned() })?;
        Ok(ClassifierHead { name: out.name.clone(), kind: out.kind, classes: manifest.labels().names.len(), positive })
    }

    /// Index of the positive label in the output.
    pub fn positive_index(&self) -> usize {
        self.positive
    }

    /// P(positive) from the raw output.
    pub fn p_positive(&self, output: &[f32]) -> Result<f32, HeadError> {
        if output.len() != self.classes {
            return Err(HeadError::OutputLen { name: self.name.clone(), expected: self.classes, found: output.len() });
        }
        if output.iter().any(|v| !v.is_finite()) {
            return Err(HeadError::NonFinite { name: self.name.clone() });
        }
        let p = match self.kind {
            OutputKind::Probabilities => output[self.positive],
            OutputKind::Logits => {
                let max = output.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let sum: f32 = output.iter().map(|&l| (l - max).exp()).sum();
                (output[self.positive] - max).exp() / sum
            }
        };
        Ok(p.clamp(0.0, 1.0))
    }
}

pub(crate) fn kind_name(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Classifier => "classifier",
        ModelKind::Detector => "detector",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::manifest::tests::{CLASSIFIER, DETECTOR};

    fn head(text: &str) -> Result<ClassifierHead, HeadError> {
        ClassifierHead::new(&Manifest::parse(text, "m.toml").unwrap())
    }

    #[test]
    fn probabilities_follow_label_order() {
        let h = head(CLASSIFIER).unwrap();
        assert_eq!(h.p_positive(&[0.2, 0.8]).unwrap(), 0.8);
        let swapped = CLASSIFIER.replace("[\"negative\", \"positive\"]", "[\"positive\", \"negative\"]");
        assert_eq!(head(&swapped).unwrap().p_positive(&[0.2, 0.8]).unwrap(), 0.2);
    }

    #[test]
    fn logits_softmax_is_stable() {
        let h = head(&CLASSIFIER.replace("\"probabilities\"", "\"logits\"")).unwrap();
        let p = h.p_positive(&[0.0, 2.0f32.ln()]).unwrap();
        assert!((p - 2.0 / 3.0).abs() < 1e-6);
        let p = h.p_positive(&[1000.0, 1001.0]).unwrap();
        let want = 1.0 / (1.0 + (-1.0f32).exp());
        assert!((p - want).abs() < 1e-6, "{p}");
    }

    #[test]
    fn refuses_wrong_inputs() {
        assert!(matches!(head(DETECTOR), Err(HeadError::WrongKind { .. })));
        let no_pos = CLASSIFIER.replace("positive = \"positive\"\n", "");
        let err = head(&no_pos).unwrap_err();
        assert!(err.to_string().contains("m.toml"));
        let h = head(CLASSIFIER).unwrap();
        assert!(matches!(h.p_positive(&[0.1]), Err(HeadError::OutputLen { .. })));
        assert!(matches!(h.p_positive(&[f32::NAN, 0.1]), Err(HeadError::NonFinite { .. })));
    }
}
