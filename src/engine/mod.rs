//! Inference engines: one model input tensor in, named output tensors out.
//!
//! In: a preprocessed input (`&[f32]`, the manifest's input shape) and caller-owned [`Outputs`],
//! sized once from the manifest. Out: every output the manifest names, copied into those buffers,
//! shapes checked at load time. Each engine splits an immutable plan (loaded, sha256-checked,
//! optimized once) from per-thread state (`spawn`), as tract's `SimplePlan`/`SimpleState` do.
//! Touches: the ONNX file (through its manifest) at load time only.
//!
//! Implementations: [`tract`] (CPU, always built), [`onnxruntime`] (always built, its library
//! loaded at run time). [`choice::open`] picks one from the board profile. TensorRT plugs in here
//! too, and every `cfg` for it stays in this folder.
use std::path::PathBuf;

use crate::model::{ManifestError, OutputSpec};

pub mod choice;
pub mod onnxruntime;
pub mod tensorrt;
pub mod tract;

pub use self::choice::{open, EngineChoice};

pub use self::tract::{TractEngine, TractOptions, TractPlan};

/// A model ready to run on this thread.
pub trait Engine: Send {
    /// Which engine, for logs and reports ("tract", ...).
    fn name(&self) -> &'static str;

    /// Number of f32 values [`Engine::run`] expects.
    fn input_len(&self) -> usize;

    /// The outputs [`Engine::run`] fills, in manifest order, with their shapes.
    fn output_specs(&self) -> &[OutputSpec];

    /// Runs one input and copies every output into `outputs` (built by [`Outputs::new`] from
    /// [`Engine::output_specs`]).
    fn run(&mut self, input: &[f32], outputs: &mut Outputs) -> Result<(), EngineError>;
}

/// One output tensor's name, shape and values.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputTensor {
    pub spec: OutputSpec,
    pub data: Vec<f32>,
}

/// Output buffers, allocated once and reused for every slice.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    tensors: Vec<OutputTensor>,
}

impl Outputs {
    /// Zeroed buffers for `specs` (manifest order).
    pub fn new(specs: &[OutputSpec]) -> Outputs {
        Outputs {
            tensors: specs
                .iter()
                .map(|s| OutputTensor { spec: s.clone(), data: vec![0.0; s.shape.iter().product()] })
                .collect(),
        }
    }

    /// The values of the output called `name`.
    pub fn get(&self, name: &str) -> Option<&[f32]> {
        self.tensors.iter().find(|t| t.spec.name == name).map(|t| t.data.as_slice())
    }

    /// All outputs, manifest order.
    pub fn tensors(&self) -> &[OutputTensor] {
        &self.tensors
    }

    /// The values of every output, manifest order (what the heads take).
    pub fn data(&self) -> impl Iterator<Item = &[f32]> {
        self.tensors.iter().map(|t| t.data.as_slice())
    }

    /// Whether these buffers were built for exactly `specs`.
    pub fn matches(&self, specs: &[OutputSpec]) -> bool {
        self.tensors.len() == specs.len()
            && self
                .tensors
                .iter()
                .zip(specs)
                .all(|(t, s)| t.spec == *s && t.data.len() == s.shape.iter().product::<usize>())
    }

    pub(crate) fn tensors_mut(&mut self) -> &mut [OutputTensor] {
        &mut self.tensors
    }
}

/// Errors loading or running a model. Load errors stop start-up; run errors fail one slice.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("model {}: {stage} failed: {detail}; check that the file is a valid ONNX model for this manifest", model.display())]
    Load { model: PathBuf, stage: &'static str, detail: String },
    #[error("model {} has inputs {found:?}, the manifest expects exactly one called `{expected}`; fix `[input] name`", model.display())]
    InputName { model: PathBuf, expected: String, found: Vec<String> },
    #[error("model {} has no output `{name}` (outputs: {available:?}); fix the output name in the manifest", model.display())]
    OutputMissing { model: PathBuf, name: String, available: Vec<String> },
    #[error("model {} output `{name}` has shape {found}, the manifest implies {expected:?}; check labels, input shape, anchors mask and strides", model.display())]
    OutputShape { model: PathBuf, name: String, expected: Vec<usize>, found: String },
    #[error("cannot start {threads} inference threads for model {}: {detail}; lower the thread count in the board profile", model.display())]
    Threads { model: PathBuf, threads: usize, detail: String },
    #[error("model {} takes {expected} input values, got {found}; size the input buffer from the engine", model.display())]
    InputLen { model: PathBuf, expected: usize, found: usize },
    #[error("output buffers do not match model {}; build them with Outputs::new(engine.output_specs())", model.display())]
    OutputBuffers { model: PathBuf },
    #[error("model {}: inference failed: {detail}", model.display())]
    Run { model: PathBuf, detail: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_lookup_by_name() {
        let specs = [
            OutputSpec { name: "a".into(), shape: vec![1, 2] },
            OutputSpec { name: "b".into(), shape: vec![1, 3, 2, 2] },
        ];
        let o = Outputs::new(&specs);
        assert_eq!(o.get("b").map(<[f32]>::len), Some(12));
        assert_eq!(o.get("c"), None);
        assert!(o.matches(&specs));
        assert!(!o.matches(&specs[..1]));
        assert_eq!(o.data().count(), 2);
    }
}
