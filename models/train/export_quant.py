"""Export a trained network to ONNX (opset 13, static shape), check onnxruntime against PyTorch, and
quantize statically to INT8 Q/DQ.

in:  --kind classifier|detector, --weights FILE (state_dict), --calib DIR... (training-seed runs),
     --check DIR... (slices used for the torch-vs-onnxruntime comparison)
out: --fp32 FILE, --int8 FILE, and FILE.export.json beside the fp32 model with the measured diff.

INT8: onnxruntime.quantization.quantize_static, QuantFormat.QDQ, QInt8 weights and activations,
symmetric both, per-channel weights, MinMax calibration on training-seed slices (half positive).
The classifier's final Softmax is excluded (stays float): tract 0.23 returns 1.0 for every class on a
DQ -> Softmax -> Q -> DQ chain. With --float-heads the detector's two output convolutions stay float
too (measured here: AP50 0.906 instead of 0.897 with them quantized; FP32 0.913).
Then the activation scales are snapped to powers of two (pow2_scales.py; --calibrated-scales keeps
them as calibrated), so that tract and onnxruntime compute the same INT8 model.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

import common
import pow2_scales
from nets import Classifier, ClassifierExport, YoloV4Tiny

OPSET = 13


class Reader(CalibrationDataReader):
    def __init__(self, arrays, input_name):
        self.it = iter([{input_name: a} for a in arrays])

    def get_next(self):
        return next(self.it, None)


def pick_slices(roots, size, n, seed):
    imgs, ys, _, _ = common.load_split([Path(r) for r in roots], size)
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(ys == 1), np.flatnonzero(ys == 0)
    k = min(len(pos), n // 2)
    idx = np.concatenate([rng.choice(pos, k, replace=False) if k else [], rng.choice(neg, min(len(neg), n - k), replace=False)]).astype(int)
    return [common.to_tensor_input(imgs[i]) for i in idx]


def session(path, threads=2):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", choices=["classifier", "detector"], required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--fp32", required=True)
    ap.add_argument("--int8", required=True)
    ap.add_argument("--calib", nargs="+", required=True)
    ap.add_argument("--calib-count", type=int, default=128)
    ap.add_argument("--check", nargs="+", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calibrated-scales", action="store_true",
                    help="keep the calibrated activation scales (default: nearest powers of two, see pow2_scales.py)")
    ap.add_argument("--float-heads", action="store_true",
                    help="detector: keep the two output 1x1 convs in float (raw logits keep their resolution)")
    a = ap.parse_args()
    common.set_threads(a.threads)

    if a.kind == "classifier":
        net = Classifier(a.width)
        net.load_state_dict(torch.load(a.weights, map_location="cpu"))
        model = ClassifierExport(net).eval()
        size, outputs = common.CLS_SIZE, ["probs"]
    else:
        model = YoloV4Tiny(a.width)
        model.load_state_dict(torch.load(a.weights, map_location="cpu"))
        model.eval()
        size, outputs = common.DET_SIZE, [h[0] for h in common.HEADS]

    x = torch.zeros(1, 1, size, size)
    Path(a.fp32).parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, (x,), a.fp32, input_names=["input"], output_names=outputs,
                      opset_version=OPSET, dynamo=False, do_constant_folding=True)
    m = onnx.load(a.fp32)
    onnx.checker.check_model(m)
    m.producer_name = "pe-sentinel models/train"
    m.doc_string = f"pe-sentinel {a.kind}; see models/README.md. Demonstration and testing only, not for diagnosis."
    onnx.save(m, a.fp32)

    # onnxruntime must reproduce PyTorch on real slices.
    sess = session(a.fp32, a.threads)
    checks = pick_slices(a.check, size, 16, seed=1)
    max_diff = 0.0
    with torch.no_grad():
        for arr in checks:
            ref = model(torch.from_numpy(arr))
            ref = [ref] if isinstance(ref, torch.Tensor) else list(ref)
            got = sess.run(outputs, {"input": arr})
            for r_, g_ in zip(ref, got):
                assert tuple(r_.shape) == g_.shape, (r_.shape, g_.shape)
                max_diff = max(max_diff, float(np.abs(r_.numpy() - g_).max()))
    print(f"[export] {a.kind}: onnxruntime vs torch max abs diff {max_diff:.2e} over {len(checks)} slices", flush=True)
    if max_diff > 1e-4:
        raise SystemExit(f"onnxruntime output differs from torch by {max_diff:.2e} > 1e-4")

    # Static INT8 Q/DQ.
    with tempfile.TemporaryDirectory() as td:
        pre = Path(td) / "pre.onnx"
        quant_pre_process(a.fp32, str(pre), skip_symbolic_shape=True)
        pm = onnx.load(str(pre))
        exclude = [n.name for n in pm.graph.node if n.op_type == "Softmax"]
        if a.float_heads:
            head_outputs = {h[0] for h in common.HEADS}
            exclude += [n.name for n in pm.graph.node if set(n.output) & head_outputs]
        calib = pick_slices(a.calib, size, a.calib_count, seed=2)
        quantize_static(
            str(pre), a.int8, Reader(calib, "input"),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=exclude,
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
        )
    qm = onnx.load(a.int8)
    # Activation scales to powers of two, so that tract (x * (1/scale)) and onnxruntime (x / scale)
    # round every activation alike (pow2_scales.py says why).
    pow2 = (0, 0) if a.calibrated_scales else pow2_scales.snap(qm)
    qm.producer_name = "pe-sentinel models/train"
    qm.doc_string = m.doc_string + " INT8 Q/DQ (static, symmetric, per-channel weights" + (
        ")." if a.calibrated_scales else ", power-of-two activation scales).")
    onnx.save(qm, a.int8)
    q_ops = sorted(set(n.op_type for n in qm.graph.node))
    # The Softmax must feed the graph output directly (no Q/DQ after it).
    consumers = {i for n in qm.graph.node for i in n.input}
    for n in qm.graph.node:
        if n.op_type == "Softmax" and any(o in consumers for o in n.output):
            raise SystemExit(f"Softmax {n.name} is followed by quantization nodes in {a.int8}")
    info = {
        "max_abs_diff_onnxruntime_vs_torch": max_diff,
        "check_slices": len(checks),
        "calibration_slices": len(calib),
        "excluded_from_quantization": exclude,
        "activation_scales": "calibrated" if a.calibrated_scales else "nearest power of two",
        "pow2_snapped_scales_and_biases": list(pow2),
        "int8_ops": q_ops,
        "opset_fp32": [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")][0],
        "opset_int8": [o.version for o in qm.opset_import if o.domain in ("", "ai.onnx")][0],
    }
    common.write_json(Path(a.fp32 + ".export.json"), info)
    print(f"[export] {a.kind}: wrote {a.fp32} and {a.int8}; int8 ops {q_ops}", flush=True)


if __name__ == "__main__":
    main()
