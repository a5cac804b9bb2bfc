//! The tract engine: pure-Rust CPU inference, always built.
//!
//! [`TractPlan::load`] reads the ONNX bytes through the manifest (sha256 checked first, and the
//! checked bytes are the ones parsed), fixes the input shape, selects the manifest's outputs by
//! name, optimizes, checks every output shape against the manifest, and builds the plan with its
//! own thread pool. [`TractPlan::spawn`] makes the per-thread state and runs one warm-up.
//! Touches: the ONNX file at load time; spawns `threads` pool threads when `threads > 1`.
//!
//! Threads: tract uses more than one core for matrix products only with `tract-linalg`'s
//! `multithread-mm` feature *and* a multi-thread `Executor` in the plan's `RunOptions`; without
//! the executor the feature does nothing. See: tract-linalg 0.23 `src/multithread.rs`.
use std::path::PathBuf;
use std::sync::Arc;

use tract_linalg::multithread::Executor;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::runtime::RunOptions;

use super::{Engine, EngineError, Outputs};
use crate::model::{Manifest, OutputSpec};

/// Options for [`TractPlan::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TractOptions {
    /// Threads for matrix products (1 = the calling thread only).
    pub threads: usize,
}

impl Default for TractOptions {
    fn default() -> Self {
        TractOptions { threads: 1 }
    }
}

impl TractOptions {
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }
}

/// A loaded, optimized model: immutable, shareable between threads.
#[derive(Debug, Clone)]
pub struct TractPlan {
    model: PathBuf,
    plan: Arc<TypedSimplePlan>,
    input_shape: [usize; 4],
    outputs: Vec<OutputSpec>,
    threads: usize,
}

/// Per-thread state over a [`TractPlan`]; implements [`Engine`].
#[derive(Debug)]
pub struct TractEngine {
    plan: TractPlan,
    state: TypedSimpleState,
    input: Arc<Tensor>,
}

fn load_err<'a>(model: &'a std::path::Path, stage: &'static str) -> impl FnOnce(TractError) -> EngineError + 'a {
    move |e| EngineError::Load { model: model.to_owned(), stage, detail: format!("{e:#}") }
}

fn outlet_name<F, O>(g: &Graph<F, O>, o: OutletId) -> String
where
    F: Fact + Clone + 'static,
    O: std::fmt::Debug + std::fmt::Display + AsRef<dyn Op> + AsMut<dyn Op> + Clone + 'static,
{
    g.outlet_label(o).map(str::to_string).unwrap_or_else(|| g.node(o.node).name.clone())
}

impl TractPlan {
    pub fn load(manifest: &Manifest, options: &TractOptions) -> Result<TractPlan, EngineError> {
        let path = manifest.onnx_path();
        let bytes = manifest.read_verified_onnx()?;
        let mut model =
            tract_onnx::onnx().model_for_read(&mut bytes.as_slice()).map_err(load_err(path, "parsing ONNX"))?;

        let spec = manifest.input();
        let inputs = model.input_outlets().map_err(load_err(path, "listing inputs"))?;
        let input_names: Vec<String> = inputs.iter().map(|&o| outlet_name(&model, o)).collect();
        if input_names.len() != 1 || input_names[0] != spec.name {
            return Err(EngineError::InputName {
                model: path.to_owned(),
                expected: spec.name.clone(),
                found: input_names,
            });
        }
        model
            .set_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), spec.shape.to_vec()))
            .map_err(load_err(path, "fixing the input shape"))?;

        let expected = manifest.expected_outputs();
        let available: Vec<String> = model
            .output_outlets()
            .map_err(load_err(path, "listing outputs"))?
            .iter()
            .map(|&o| outlet_name(&model, o))
            .collect();
        for out in &expected {
            if !available.contains(&out.name) {
                return Err(EngineError::OutputMissing { model: path.to_owned(), name: out.name.clone(), available });
            }
        }
        model
            .select_outputs_by_name(expected.iter().map(|o| o.name.as_str()))
            .map_err(load_err(path, "selecting outputs"))?;

        let typed = model.into_optimized().map_err(load_err(path, "optimizing"))?;
        for (ix, out) in expected.iter().enumerate() {
            let fact = typed.output_fact(ix).map_err(load_err(path, "reading output shapes"))?;
            let shape_ok = fact.shape.as_concrete() == Some(out.shape.as_slice());
            if !shape_ok || fact.datum_type != f32::datum_type() {
                return Err(EngineError::OutputShape {
                    model: path.to_owned(),
                    name: out.name.clone(),
                    expected: out.shape.clone(),
                    found: format!("{fact:?}"),
                });
            }
        }

        let threads = options.threads.max(1);
        let executor = if threads == 1 {
            Executor::SingleThread
        } else {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("tract-{i}"))
                .build()
                .map_err(|e| EngineError::Threads { model: path.to_owned(), threads, detail: e.to_string() })?;
            Executor::MultiThread(Arc::new(pool))
        };
        let run_options = RunOptions { executor: Some(executor), ..RunOptions::default() };
        let plan = typed.into_runnable_with_options(&run_options).map_err(load_err(path, "building the plan"))?;
        Ok(TractPlan { model: path.to_owned(), plan, input_shape: spec.shape, outputs: expected, threads })
    }

    /// Threads the plan's matrix products run on.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Per-thread state, warmed up with one run on a zero input.
    pub fn spawn(&self) -> Result<TractEngine, EngineError> {
        let state = TypedSimpleState::new(&self.plan).map_err(run_err(&self.model))?;
        let input = Tensor::zero::<f32>(&self.input_shape).map_err(run_err(&self.model))?;
        let mut engine = TractEngine { plan: self.clone(), state, input: Arc::new(input) };
        let mut outputs = Outputs::new(&self.outputs);
        let zeros = vec![0.0; engine.input_len()];
        engine.run(&zeros, &mut outputs)?;
        Ok(engine)
    }
}

fn run_err(model: &std::path::Path) -> impl Fn(TractError) -> EngineError + '_ {
    move |e| EngineError::Run { model: model.to_owned(), detail: format!("{e:#}") }
}

impl Engine for TractEngine {
    fn name(&self) -> &'static str {
        "tract"
    }

    fn input_len(&self) -> usize {
        self.plan.input_shape.iter().product()
    }

    fn output_specs(&self) -> &[OutputSpec] {
        &self.plan.outputs
    }

    fn run(&mut self, input: &[f32], outputs: &mut Outputs) -> Result<(), EngineError> {
        if input.len() != self.input_len() {
            return Err(EngineError::InputLen {
                model: self.plan.model.clone(),
                expected: self.input_len(),
                found: input.len(),
            });
        }
        if !outputs.matches(&self.plan.outputs) {
            return Err(EngineError::OutputBuffers { model: self.plan.model.clone() });
        }
        let err = run_err(&self.plan.model);
        // Reuse the input tensor when the last run released it; otherwise make a new one.
        match Arc::get_mut(&mut self.input) {
            Some(t) => {
                let mut view = t.try_as_plain_ram_mut().map_err(&err)?;
                view.as_slice_mut::<f32>().map_err(&err)?.copy_from_slice(input);
            }
            None => {
                let t = Tensor::from_shape(&self.plan.input_shape, input).map_err(&err)?;
                self.input = Arc::new(t);
            }
        }
        let results = self.state.run(tvec!(TValue::from_const(self.input.clone()))).map_err(&err)?;
        for (ix, dst) in outputs.tensors_mut().iter_mut().enumerate() {
            let Some(value) = results.get(ix) else {
                return Err(EngineError::Run {
                    model: self.plan.model.clone(),
                    detail: format!("output `{}` was not produced", dst.spec.name),
                });
            };
            let view = value.try_as_plain_ram().map_err(&err)?;
            let src = view.as_slice::<f32>().map_err(&err)?;
            if src.len() != dst.data.len() {
                return Err(EngineError::Run {
                    model: self.plan.model.clone(),
                    detail: format!("output `{}` has {} values, expected {}", dst.spec.name, src.len(), dst.data.len()),
                });
            }
            dst.data.copy_from_slice(src);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ManifestError;
    use crate::postprocess::{ClassifierHead, Detections, YoloDecoder};
    use crate::preprocess::{Pixels, Preprocessor, SliceView};
    use std::path::Path;

    fn data(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
    }

    /// The input `tests/py/make_test_models.py` feeds onnxruntime, bit for bit.
    fn test_input(n: usize) -> Vec<f32> {
        (0..n as u64).map(|i| ((i * 2_654_435_761) % (1 << 32)) as f64 / 4_294_967_296.0).map(|v| v as f32).collect()
    }

    fn read_f32(name: &str) -> Vec<f32> {
        let bytes = std::fs::read(data(name)).unwrap();
        bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    }

    fn engine(manifest: &str, threads: usize) -> (Manifest, TractEngine) {
        let m = Manifest::load(data(manifest)).unwrap();
        let plan = TractPlan::load(&m, &TractOptions::default().threads(threads)).unwrap();
        (m, plan.spawn().unwrap())
    }

    #[test]
    fn classifier_matches_onnxruntime() {
        let (_, mut e) = engine("tiny-classifier.toml", 1);
        let mut out = Outputs::new(e.output_specs());
        e.run(&test_input(e.input_len()), &mut out).unwrap();
        let want = read_f32("tiny-classifier-probs.f32");
        let got = out.get("probs").unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-4, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn detector_heads_match_onnxruntime_by_name_with_two_threads() {
        for threads in [1, 2] {
            let (_, mut e) = engine("tiny-detector.toml", threads);
            let mut out = Outputs::new(e.output_specs());
            let input = test_input(e.input_len());
            // Twice: the second run reuses the input tensor and output buffers.
            for _ in 0..2 {
                e.run(&input, &mut out).unwrap();
                for name in ["head_s32", "head_s16"] {
                    let want = read_f32(&format!("tiny-detector-{name}.f32"));
                    let got = out.get(name).unwrap();
                    assert_eq!(got.len(), want.len(), "{name}");
                    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    for (g, w) in got.iter().zip(&want) {
                        assert!((g - w).abs() <= 1e-3 * scale, "{name}: {g} vs {w} (threads {threads})");
                    }
                }
            }
        }
    }

    #[test]
    fn slice_to_scores_end_to_end() {
        let (m, mut e) = engine("tiny-classifier.toml", 1);
        let mut pre = Preprocessor::new(&m);
        let head = ClassifierHead::new(&m).unwrap();
        let mut input = vec![0.0; pre.input_len()];
        let mut out = Outputs::new(e.output_specs());
        let hu: Vec<f32> = (0..512 * 512).map(|i| (i % 1500) as f32 - 1000.0).collect();
        pre.run(SliceView { width: 512, height: 512, pixels: Pixels::Hu(&hu) }, &mut input).unwrap();
        e.run(&input, &mut out).unwrap();
        let p = head.p_positive(out.get("probs").unwrap()).unwrap();
        assert!((0.0..=1.0).contains(&p));

        let (m, mut e) = engine("tiny-detector.toml", 1);
        let mut pre = Preprocessor::new(&m);
        let mut dec = YoloDecoder::new(&m).unwrap();
        let mut input = vec![0.0; pre.input_len()];
        let mut out = Outputs::new(e.output_specs());
        let lb =
            pre.run(SliceView { width: 512, height: 400, pixels: Pixels::Hu(&hu[..512 * 400]) }, &mut input).unwrap();
        e.run(&input, &mut out).unwrap();
        let mut dets = Detections::default();
        dec.decode(out.data(), &lb, &mut dets).unwrap();
        for d in &dets.boxes {
            assert!(d.bbox.x1 <= 512.0 && d.bbox.y1 <= 400.0);
        }
    }

    /// Copies a fixture manifest and its model to a temp dir, with `edit` applied to the manifest.
    fn edited(manifest: &str, edit: impl Fn(String) -> String) -> (tempfile::TempDir, Manifest) {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(data(manifest)).unwrap();
        let m = Manifest::parse(&text, data(manifest)).unwrap();
        std::fs::copy(m.onnx_path(), dir.path().join(&m.model().file)).unwrap();
        let path = dir.path().join(manifest);
        std::fs::write(&path, edit(text)).unwrap();
        let m = Manifest::load(&path).unwrap();
        (dir, m)
    }

    #[test]
    fn wrong_sha256_is_refused_naming_both_hashes() {
        let real = Manifest::load(data("tiny-classifier.toml")).unwrap().model().sha256.clone();
        let fake = "0".repeat(64);
        let (_dir, m) = edited("tiny-classifier.toml", |t| t.replace(&real, &fake));
        let err = TractPlan::load(&m, &TractOptions::default()).unwrap_err();
        assert!(matches!(err, EngineError::Manifest(ManifestError::Sha256Mismatch { .. })));
        let msg = err.to_string();
        assert!(msg.contains(&real) && msg.contains(&fake), "{msg}");
        assert!(msg.contains("tiny-classifier.onnx") && msg.contains("tiny-classifier.toml"), "{msg}");
    }

    #[test]
    fn manifest_model_mismatches_are_named() {
        let (_d, m) = edited("tiny-classifier.toml", |t| t.replace("name = \"probs\"", "name = \"prob\""));
        let err = TractPlan::load(&m, &TractOptions::default()).unwrap_err();
        assert!(matches!(err, EngineError::OutputMissing { .. }), "{err}");
        assert!(err.to_string().contains("`prob`") && err.to_string().contains("probs"), "{err}");

        let (_d, m) = edited("tiny-classifier.toml", |t| {
            t.replace("[\"negative\", \"positive\"]", "[\"negative\", \"positive\", \"other\"]")
        });
        let err = TractPlan::load(&m, &TractOptions::default()).unwrap_err();
        assert!(matches!(err, EngineError::OutputShape { .. }), "{err}");

        let (_d, m) = edited("tiny-detector.toml", |t| t.replace("name = \"input\"", "name = \"image\""));
        let err = TractPlan::load(&m, &TractOptions::default()).unwrap_err();
        assert!(matches!(err, EngineError::InputName { .. }), "{err}");

        let (_, mut e) = engine("tiny-classifier.toml", 1);
        let mut out = Outputs::new(e.output_specs());
        assert!(matches!(e.run(&[0.0; 3], &mut out), Err(EngineError::InputLen { .. })));
        let mut wrong = Outputs::new(&[]);
        let input = vec![0.0; e.input_len()];
        assert!(matches!(e.run(&input, &mut wrong), Err(EngineError::OutputBuffers { .. })));
    }

    #[test]
    fn garbage_model_is_a_load_error() {
        let (dir, m) = edited("tiny-classifier.toml", |t| t);
        let onnx = dir.path().join("tiny-classifier.onnx");
        std::fs::write(&onnx, b"garbage").unwrap();
        let sha = crate::model::manifest::sha256_hex(b"garbage");
        let text = std::fs::read_to_string(m.path()).unwrap().replace(&m.model().sha256, &sha);
        std::fs::write(m.path(), text).unwrap();
        let m = Manifest::load(m.path()).unwrap();
        let err = TractPlan::load(&m, &TractOptions::default()).unwrap_err();
        assert!(matches!(err, EngineError::Load { .. }), "{err}");
        assert!(err.to_string().contains("tiny-classifier.onnx"), "{err}");
    }
}
