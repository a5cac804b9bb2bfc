//! What the daemon knows about a model beyond its ONNX file.
//!
//! In: a manifest TOML beside an ONNX file. Out: a validated [`Manifest`] (label order, input spec,
//! preprocessing, head description, thresholds) and the ONNX bytes, checked against the manifest's
//! sha256 before anyone uses them. Touches: the manifest file and the ONNX file it names, read only.
pub mod manifest;

pub use manifest::{
    ClassifierOutput, DType, DetectorHead, DetectorSpec, Head, InputSpec, Labels, Layout, Manifest, ManifestError,
    ManifestWarning, ModelInfo, ModelKind, OutputKind, OutputSpec, Precision, PreprocessSpec, Provenance, ResizeFilter,
    ResizeMode, TrainingDomain,
};
