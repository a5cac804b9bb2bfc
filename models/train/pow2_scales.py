"""Snap the activation scales of an INT8 Q/DQ model to the nearest power of two.

in:  an ONNX model from onnxruntime's quantize_static (QuantFormat.QDQ)
out: the same model with every per-tensor QuantizeLinear scale (the activations') replaced by the
     power of two nearest to it in the log domain (a factor of at most sqrt(2) either way), the
     matching DequantizeLinear scales with it (they share the initializer), and each quantized
     Conv/Gemm bias requantized to its new scale (input scale x weight scale), so that the bias
     values stay what they were.

Why: the ONNX definition of QuantizeLinear is round(x / scale), and onnxruntime computes that;
tract computes round(x * (1 / scale)). The two differ by one unit in the last place, which moves
a value across a rounding boundary now and then, and the flipped step travels through the
network: the classifier's P differed by up to 1.5e-3 between the two engines. With a power-of-two
scale, x / scale and x * (1 / scale) are the same exact number, and the engines agree (measured:
6e-8 in P). Accuracy cost, measured with the daemon's `eval`: see models/README.md.

usage: pow2_scales.py IN.onnx OUT.onnx   (or import snap)
"""
from __future__ import annotations

import math
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def snap(model: onnx.ModelProto) -> tuple[int, int]:
    """Snaps `model` in place; returns (activation scales snapped, biases requantized)."""
    init = {i.name: i for i in model.graph.initializer}

    def arr(name):
        return numpy_helper.to_array(init[name])

    def put(name, a):
        init[name].CopyFrom(numpy_helper.from_array(a.astype(arr(name).dtype), name))

    snapped = set()
    for n in model.graph.node:
        if n.op_type != "QuantizeLinear" or n.input[1] not in init or n.input[1] in snapped:
            continue
        s = arr(n.input[1])
        if s.size != 1:
            continue
        v = float(s.reshape(-1)[0])
        if not (v > 0 and math.isfinite(v)):
            raise SystemExit(f"QuantizeLinear {n.name}: scale {v} is not a positive number")
        put(n.input[1], np.array(2.0 ** round(math.log2(v)), dtype=np.float32).reshape(s.shape))
        snapped.add(n.input[1])

    producer = {o: n for n in model.graph.node for o in n.output}
    requantized = 0
    for n in model.graph.node:
        if n.op_type not in ("Conv", "Gemm") or len(n.input) < 3:
            continue
        xdq, wdq, bdq = (producer.get(i) for i in n.input[:3])
        if not all(d is not None and d.op_type == "DequantizeLinear" for d in (xdq, wdq, bdq)):
            continue
        if not all(i in init for i in (xdq.input[1], wdq.input[1], bdq.input[0], bdq.input[1])):
            continue
        sx = float(arr(xdq.input[1]).reshape(-1)[0])
        sw = arr(wdq.input[1]).astype(np.float64)
        bias = arr(bdq.input[0]).astype(np.float64) * arr(bdq.input[1]).astype(np.float64)
        new_scale = (sx * sw).astype(np.float32)
        ns = new_scale.astype(np.float64)
        q = np.where(ns > 0, np.round(np.divide(bias, ns, out=np.zeros_like(bias), where=ns > 0)), 0.0)
        put(bdq.input[1], new_scale)
        put(bdq.input[0], np.clip(q, -(2**31), 2**31 - 1).astype(np.int32))
        requantized += 1
    return len(snapped), requantized


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: pow2_scales.py IN.onnx OUT.onnx")
    m = onnx.load(sys.argv[1])
    scales, biases = snap(m)
    note = " Activation scales snapped to powers of two (models/train/pow2_scales.py)."
    if note not in m.doc_string:
        m.doc_string += note
    onnx.save(m, sys.argv[2])
    print(f"[pow2] {sys.argv[1]} -> {sys.argv[2]}: {scales} activation scales snapped, {biases} biases requantized", flush=True)


if __name__ == "__main__":
    main()
