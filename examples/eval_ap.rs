//! Prints the two AP@0.5 figures of `pe_sentinel::eval` for a JSON file of boxes, so that
//! `tests/py/test_eval_pycocotools.py` can hold them against pycocotools.
//!
//! Input: `{"images": [ids], "truths": [{"image": id, "box": [x0,y0,x1,y1]}],
//! "detections": [{"image": id, "box": [...], "score": s}], "max_dets": 100}` (`max_dets`
//! optional, default 100). Output on stdout: `{"ap50_voc": .., "ap50_coco": ..}` (null when
//! there is no truth box). Usage: `cargo run --example eval_ap -- FILE.json`.

use std::process::ExitCode;

use pe_sentinel::eval::metrics::{ap50_coco, ap50_voc, Detection, ImageId, TruthBox, COCO_MAX_DETS};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    #[serde(default)]
    #[allow(dead_code)] // listed for the reader's benefit; the figures need only the boxes
    images: Vec<ImageId>,
    truths: Vec<TruthBox>,
    detections: Vec<Detection>,
    max_dets: Option<usize>,
}

fn run(path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let input: Input = serde_json::from_str(&text).map_err(|e| format!("{path} is not the expected JSON: {e}"))?;
    let voc = ap50_voc(&input.truths, &input.detections).map_err(|e| format!("{path}: {e}"))?;
    let coco = ap50_coco(&input.truths, &input.detections, input.max_dets.unwrap_or(COCO_MAX_DETS))
        .map_err(|e| format!("{path}: {e}"))?;
    Ok(serde_json::json!({ "ap50_voc": voc, "ap50_coco": coco }).to_string())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path] = args.as_slice() else {
        eprintln!("usage: eval_ap FILE.json");
        return ExitCode::from(2);
    };
    match run(path) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("eval_ap: {msg}");
            ExitCode::FAILURE
        }
    }
}
