#!/usr/bin/env bash
# Retrain the shipped models from scratch, end to end, on CPU:
#   phantoms (training + evaluation seeds) -> train classifier and detector (in parallel, one thread
#   each) -> export ONNX + onnxruntime check + INT8 Q/DQ -> evaluate FP32 and INT8 -> manifests.
#
# usage: models/train/train_all.sh [--smoke]
#   env: PYTHON        python of the training venv (default: python3; see requirements.txt)
#        PE_SENTINEL_BIN  the pe-sentinel binary (default: target/debug/pe-sentinel; `cargo build` first)
#        WORK_DIR      scratch folder for phantoms and checkpoints (default: /tmp/pe-sentinel-train)
#        CLS_MINUTES / DET_MINUTES  training wall-clock budgets (classifier 75, detector 42, run side by side)
#        OUT_DIR       where the .onnx/.toml go (default: models/)
#        TRAIN_DETECTOR  1 (default) or 0: 0 retrains, exports, evaluates and rewrites the classifier
#                      only and leaves detector-*.onnx/.toml in OUT_DIR as they are
#   --smoke: tiny data and one-minute budgets, output to $WORK_DIR/smoke-models (checks the plumbing)
#
# Seeds (the phantom's --seed, one run per seed; series inside a run get derived sub-seeds):
#   training + INT8 calibration: run seeds 1000-1019 (range 1000-1999 reserved for training)
#   classifier validation:       run seeds 1500-1515 (training side, never trained on; chooses the
#                                weight average or the last weights, logged at phase ends)
#   evaluation:                  run seeds 1-6       (range 1-99 reserved for evaluation/tests)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PY="${PYTHON:-python3}"
BIN="${PE_SENTINEL_BIN:-$REPO/target/debug/pe-sentinel}"
WORK="${WORK_DIR:-/tmp/pe-sentinel-train}"
OUT="${OUT_DIR:-$REPO/models}"
CLS_MINUTES="${CLS_MINUTES:-75}"
DET_MINUTES="${DET_MINUTES:-42}"
# MobileNetV2 at width multiplier 0.5 (1.0 trains at ~10 slices/s on one core: too few steps in budget)
CLS_WIDTH="${CLS_WIDTH:-0.5}"; CLS_BATCH="${CLS_BATCH:-16}"; CLS_LR="${CLS_LR:-2e-3}"
# training-only: the first CLS_CROP_FRAC of the budget on CLS_CROP-pixel crops (at the 224 scale), then whole slices
CLS_CROP="${CLS_CROP:-96}"; CLS_CROP_FRAC="${CLS_CROP_FRAC:-0.6}"
# whole-slice phase: share of positive slices per batch near the data's own (0.28), so P >= 0.5 is the
# accuracy-optimal cut (balanced batches had left the model calling 5 % of negatives positive)
CLS_FULL_POS="${CLS_FULL_POS:-0.3}"; CLS_SEED="${CLS_SEED:-1}"
# whole-slice phase: an exponential moving average of the weights, kept instead of the last weights
# only if its accuracy on the validation seeds is higher (CLS_EMA=0: off)
CLS_EMA="${CLS_EMA:-0.999}"
# CLS_KEEP_BEST=1: keep the best whole-slice-phase validation instead of the last weights (tried, not shipped)
CLS_KEEP_BEST_FLAG=""; [[ "${CLS_KEEP_BEST:-0}" == 1 ]] && CLS_KEEP_BEST_FLAG="--keep-best"
# yolov4-tiny layout at half channel width: twice the training steps in the CPU budget (see README)
DET_WIDTH="${DET_WIDTH:-0.5}"
TRAIN_DETECTOR="${TRAIN_DETECTOR:-1}"

TRAIN_SEED_FIRST=1000; TRAIN_SEED_LAST=1019; TRAIN_SERIES=10; TRAIN_SLICES=48
VAL_SEED_FIRST=1500;   VAL_SEED_LAST=1515;   VAL_SERIES=4;    VAL_SLICES=64
EVAL_SEED_FIRST=1;     EVAL_SEED_LAST=6;     EVAL_SERIES=4;   EVAL_SLICES=64
CLS_STEPS=100000; DET_STEPS=100000   # the wall-clock budgets end training first
SMOKE=0
if [[ "${1:-}" == "--smoke" ]]; then
  SMOKE=1
  TRAIN_SEED_LAST=1001; TRAIN_SERIES=3; TRAIN_SLICES=24
  EVAL_SEED_LAST=1; EVAL_SERIES=2; EVAL_SLICES=24
  VAL_SEED_LAST=1500; VAL_SERIES=2; VAL_SLICES=24
  CLS_MINUTES=0.5; DET_MINUTES=0.25   # the classifier switches to two threads halfway
  OUT="$WORK/smoke-models"
fi

log() { printf '[train_all %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
START=$(date +%s)

if [[ ! -x "$BIN" ]]; then
  echo "no pe-sentinel binary at $BIN: run 'cargo build' in $REPO or set PE_SENTINEL_BIN" >&2
  exit 2
fi
"$PY" -c 'import torch, onnx, onnxruntime' || { echo "install models/train/requirements.txt into $PY's environment" >&2; exit 2; }

mkdir -p "$WORK" "$OUT"
DATA="$WORK/data"
rm -rf "$DATA"; mkdir -p "$DATA/train" "$DATA/val" "$DATA/eval"

log "phantoms: training run seeds $TRAIN_SEED_FIRST-$TRAIN_SEED_LAST, validation $VAL_SEED_FIRST-$VAL_SEED_LAST, evaluation run seeds $EVAL_SEED_FIRST-$EVAL_SEED_LAST"
for s in $(seq "$TRAIN_SEED_FIRST" "$TRAIN_SEED_LAST"); do
  "$BIN" phantom --out "$DATA/train/seed-$s" --series "$TRAIN_SERIES" --slices "$TRAIN_SLICES" --seed "$s" --format png --threads 2 >/dev/null
done
for s in $(seq "$VAL_SEED_FIRST" "$VAL_SEED_LAST"); do
  "$BIN" phantom --out "$DATA/val/seed-$s" --series "$VAL_SERIES" --slices "$VAL_SLICES" --seed "$s" --format png --threads 2 >/dev/null
done
for s in $(seq "$EVAL_SEED_FIRST" "$EVAL_SEED_LAST"); do
  "$BIN" phantom --out "$DATA/eval/seed-$s" --series "$EVAL_SERIES" --slices "$EVAL_SLICES" --seed "$s" --format png --threads 2 >/dev/null
done
GEN_VERSION=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["generator"])' "$DATA/train/seed-$TRAIN_SEED_FIRST/phantom.json")
log "phantoms written ($GEN_VERSION)"

cd "$HERE"
if [[ $TRAIN_DETECTOR == 1 ]]; then
  log "training classifier (${CLS_MINUTES} min) and detector (${DET_MINUTES} min) side by side, one thread each (the classifier two once the detector is done)"
else
  log "training classifier only (${CLS_MINUTES} min, two threads); detector files left as they are"
fi
# The classifier takes the second core once the detector beside it has had its budget.
CLS_THREADS_LATER=(--threads-later 2 --threads-later-at "$DET_MINUTES")
[[ $TRAIN_DETECTOR == 1 ]] || CLS_THREADS_LATER=(--threads-later 2 --threads-later-at 0)
"$PY" train_classifier.py --data "$DATA/train" --out "$WORK/classifier.pt" --threads 1 "${CLS_THREADS_LATER[@]}" \
  --ema "$CLS_EMA" --ema-select \
  --minutes "$CLS_MINUTES" --max-steps "$CLS_STEPS" --width "$CLS_WIDTH" --batch "$CLS_BATCH" --lr "$CLS_LR" \
  --crop "$CLS_CROP" --crop-frac "$CLS_CROP_FRAC" --full-pos-fraction "$CLS_FULL_POS" --seed "$CLS_SEED" --val "$DATA/val" --val-every 0 $CLS_KEEP_BEST_FLAG \
  > "$WORK/train_classifier.log" 2>&1 &
CLS_PID=$!
if [[ $TRAIN_DETECTOR == 1 ]]; then
  "$PY" train_detector.py --data "$DATA/train" --out "$WORK/detector.pt" --threads 1 \
    --minutes "$DET_MINUTES" --max-steps "$DET_STEPS" --width "$DET_WIDTH" > "$WORK/train_detector.log" 2>&1 &
  DET_PID=$!
fi
fail=0
wait "$CLS_PID" || { echo "classifier training failed, see $WORK/train_classifier.log" >&2; fail=1; }
if [[ $TRAIN_DETECTOR == 1 ]]; then
  wait "$DET_PID" || { echo "detector training failed, see $WORK/train_detector.log" >&2; fail=1; }
fi
[[ $fail == 0 ]] || exit 1
tail -n 1 "$WORK/train_classifier.log"
[[ $TRAIN_DETECTOR == 1 ]] && tail -n 1 "$WORK/train_detector.log"
TRAINED=$(date +%s)

log "export, onnxruntime check, INT8 quantization"
"$PY" export_quant.py --kind classifier --weights "$WORK/classifier.pt" --width "$CLS_WIDTH" \
  --fp32 "$OUT/classifier-fp32.onnx" --int8 "$OUT/classifier-int8.onnx" --calib "$DATA/train" --calib-count 128 --check "$DATA/train"
[[ $TRAIN_DETECTOR == 1 ]] && "$PY" export_quant.py --kind detector --weights "$WORK/detector.pt" --width "$DET_WIDTH" --float-heads \
  --fp32 "$OUT/detector-fp32.onnx" --int8 "$OUT/detector-int8.onnx" --calib "$DATA/train" --calib-count 64 --check "$DATA/train"

log "evaluation on evaluation-seed phantoms"
KINDS=(classifier); DET_ARGS=()
if [[ $TRAIN_DETECTOR == 1 ]]; then
  KINDS+=(detector); DET_ARGS=(--detector "$OUT/detector-fp32.onnx" "$OUT/detector-int8.onnx")
fi
"$PY" evaluate.py --data "$DATA/eval" \
  --classifier "$OUT/classifier-fp32.onnx" "$OUT/classifier-int8.onnx" \
  "${DET_ARGS[@]}" --out "$WORK/eval.json"

"$PY" write_manifests.py --models "$OUT" --eval "$WORK/eval.json" \
  --train-seeds "$TRAIN_SEED_FIRST-$TRAIN_SEED_LAST" --eval-seeds "$EVAL_SEED_FIRST-$EVAL_SEED_LAST" \
  --script "models/train/train_all.sh" --kinds "${KINDS[@]}"

END=$(date +%s)
"$PY" - "$WORK" "$START" "$TRAINED" "$END" "$GEN_VERSION" "$SMOKE" <<'EOF'
import json, sys, pathlib
work, start, trained, end, gen, smoke = sys.argv[1:]
w = pathlib.Path(work)
summary = {
    "generator": gen,
    "smoke": smoke == "1",
    "minutes_total": round((int(end) - int(start)) / 60, 1),
    "minutes_until_trained": round((int(trained) - int(start)) / 60, 1),
    "classifier_training": {k: v for k, v in json.loads((w / "classifier.pt.json").read_text()).items() if k != "log"},
    "detector_training": ({k: v for k, v in json.loads((w / "detector.pt.json").read_text()).items() if k != "log"}
                          if (w / "detector.pt.json").exists() else "not retrained (TRAIN_DETECTOR=0)"),
    "eval": json.loads((w / "eval.json").read_text()),
}
(w / "run_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary, indent=2))
EOF
log "done in $(( (END - START) / 60 )) min; models in $OUT, scratch in $WORK"
