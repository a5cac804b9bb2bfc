#!/usr/bin/env python3
"""Writes the tiny ONNX test models, their manifests and onnxruntime reference outputs.

Untrained stand-ins with the real models' interfaces, for engine parity tests while the shipped
models are being trained:
  tests/data/tiny-classifier.onnx  input [1,1,224,224] -> conv -> relu -> global avg pool -> gemm
                                   -> softmax, output `probs` [1,2]
  tests/data/tiny-detector.onnx    input [1,1,416,416] -> 5 strided convs -> raw YOLO heads
                                   `head_s16` [1,18,26,26] and `head_s32` [1,18,13,13] (graph
                                   outputs listed s16 first, the manifest s32 first: lookup is by name)
  tests/data/*.toml                manifests in the project's schema, sha256 filled in
  tests/data/*-<output>.f32        onnxruntime's outputs (raw little-endian f32) for the input
                                   `test_input(n)` below, which the Rust tests compute the same way

Usage: python tests/py/make_test_models.py [OUT_DIR]   (default: tests/data beside this script)
Needs: onnx, onnxruntime, numpy. Deterministic: fixed seeds, so reruns give identical files.
"""
import hashlib
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OPSET = 13


def conv(name, x, cin, cout, k, stride, rng, nodes, inits, act=True):
    w = (rng.standard_normal((cout, cin, k, k)) * (1.0 / np.sqrt(cin * k * k))).astype(np.float32)
    b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    inits += [numpy_helper.from_array(w, f"{name}_w"), numpy_helper.from_array(b, f"{name}_b")]
    pad = k // 2
    out = f"{name}_out"
    nodes.append(helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [out], name=name,
                                  kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4))
    if not act:
        return out
    act_out = f"{name}_act"
    nodes.append(helper.make_node("LeakyRelu", [out], [act_out], name=f"{name}_leaky", alpha=0.1))
    return act_out


def save(model, path):
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def classifier(rng):
    nodes, inits = [], []
    x = conv("stem", "input", 1, 4, 3, 2, rng, nodes, inits)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="flat", axis=1))
    w = rng.standard_normal((2, 4)).astype(np.float32) * 2.0
    b = np.array([0.1, -0.1], dtype=np.float32)
    inits += [numpy_helper.from_array(w, "fc_w"), numpy_helper.from_array(b, "fc_b")]
    nodes.append(helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc", transB=1))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1))
    graph = helper.make_graph(
        nodes, "tiny-classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 224, 224])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 2])],
        inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                             producer_name="pe-sentinel tests/py/make_test_models.py")


def detector(rng):
    nodes, inits = [], []
    x = "input"
    cin = 1
    for i in range(4):  # 416 -> 208 -> 104 -> 52 -> 26
        x = conv(f"down{i}", x, cin, 8, 3, 2, rng, nodes, inits)
        cin = 8
    s16 = x
    s32 = conv("down4", s16, 8, 8, 3, 2, rng, nodes, inits)  # 26 -> 13
    h16 = conv("yolo_s16", s16, 8, 18, 1, 1, rng, nodes, inits, act=False)
    h32 = conv("yolo_s32", s32, 8, 18, 1, 1, rng, nodes, inits, act=False)
    nodes.append(helper.make_node("Identity", [h16], ["head_s16"], name="head_s16"))
    nodes.append(helper.make_node("Identity", [h32], ["head_s32"], name="head_s32"))
    graph = helper.make_graph(
        nodes, "tiny-detector",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 416, 416])],
        [helper.make_tensor_value_info("head_s16", TensorProto.FLOAT, [1, 18, 26, 26]),
         helper.make_tensor_value_info("head_s32", TensorProto.FLOAT, [1, 18, 13, 13])],
        inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                             producer_name="pe-sentinel tests/py/make_test_models.py")


COMMON = """
[input]
name = "input"
shape = {shape}
layout = "nchw"
dtype = "f32"

[preprocess]
window_center_hu = 100.0
window_width_hu = 700.0
resize = "{resize}"
scale = 0.00392156862745098
mean = [0.0]
std = [1.0]
"""

PROVENANCE = """
[provenance]
script = "tests/py/make_test_models.py"
commit = "untrained test model"
train_seeds = "none"
eval_seeds = "none"
date = "2026-11-26"
framework = "onnx {onnx} / onnxruntime {ort}"
"""


def manifest(name, kind, file, sha, shape, resize, body):
    head = (f'[model]\nname = "{name}"\nkind = "{kind}"\nfile = "{file}"\nsha256 = "{sha}"\n'
            f'precision = "fp32"\nopset = {OPSET}\n')
    return (head + COMMON.format(shape=shape, resize=resize) + body
            + PROVENANCE.format(onnx=onnx.__version__, ort=ort.__version__))


CLASSIFIER_BODY = """
[output]
name = "probs"
kind = "probabilities"

[labels]
names = ["negative", "positive"]
positive = "positive"
"""

DETECTOR_BODY = """
[labels]
names = ["embolus"]
positive = "embolus"

[detector]
anchors = [[10, 14], [23, 27], [37, 58], [81, 82], [135, 169], [344, 319]]
confidence_threshold = 0.6
nms_iou = 0.45
[[detector.heads]]
output = "head_s32"
stride = 32
mask = [3, 4, 5]
scale_x_y = 1.05
[[detector.heads]]
output = "head_s16"
stride = 16
mask = [0, 1, 2]
scale_x_y = 1.1
"""


def test_input(shape):
    """x[i] = ((i * 2654435761) mod 2^32) / 2^32 as f32: exact integer steps, so Rust gets the same
    bits without a stored input file (engine::tract tests, `test_input`)."""
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.uint64)
    return (((i * np.uint64(2654435761)) % np.uint64(2**32)).astype(np.float64) / 2.0**32) \
        .astype(np.float32).reshape(shape)


def reference(onnx_path, out_dir, stem, shape):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    x = test_input(shape)
    names = [o.name for o in sess.get_outputs()]
    for name, y in zip(names, sess.run(names, {"input": x})):
        y.astype("<f4").tofile(out_dir / f"{stem}-{name}.f32")


def main():
    out_dir = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else \
        pathlib.Path(__file__).resolve().parent.parent / "data"
    out_dir.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(20261126)
    path = out_dir / "tiny-classifier.onnx"
    sha = save(classifier(rng), path)
    (out_dir / "tiny-classifier.toml").write_text(manifest(
        "tiny-classifier (untrained, tests only)", "classifier", path.name, sha,
        "[1, 1, 224, 224]", "stretch", CLASSIFIER_BODY))
    reference(path, out_dir, "tiny-classifier", (1, 1, 224, 224))

    path = out_dir / "tiny-detector.onnx"
    sha = save(detector(rng), path)
    (out_dir / "tiny-detector.toml").write_text(manifest(
        "tiny-detector (untrained, tests only)", "detector", path.name, sha,
        "[1, 1, 416, 416]", "letterbox", DETECTOR_BODY))
    reference(path, out_dir, "tiny-detector", (1, 1, 416, 416))


if __name__ == "__main__":
    main()
