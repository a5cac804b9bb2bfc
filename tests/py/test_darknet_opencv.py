"""`pe-sentinel import-darknet` against an implementation nobody here wrote: OpenCV's darknet reader.

For the seed paper's cfg (tests/data/darknet/yolov4-ctscans.cfg, 416x416x1, one class) and the
yolov4-tiny layout (tests/data/darknet/yolov4-tiny.cfg, 416x416x3, 80 classes), a helper writes
random weights in darknet's format (the paper's trained weights are not public). OpenCV
(`cv2.dnn.readNetFromDarknet`) reads the cfg and weights itself; the importer writes ONNX plus a
manifest, which the daemon's tract engine runs (`pe-sentinel run-model`) and onnxruntime checks as
ONNX. The raw head outputs (the convolution before each [yolo]) must agree within
2e-5 * max|head| + 1e-3: random weights amplify rounding through up to 110 convolutions.

OpenCV folds batch-norm with epsilon 1e-6 where darknet uses 1e-5, so OpenCV gets its own copy of
the weights with variance + 9e-6 (see darknet_weights.py); the Rust unit test
`import::tests::batch_norm_folds_with_darknet_epsilon` checks the epsilon itself exactly.
"""
import pathlib
import subprocess
import tomllib

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from darknet_weights import conv_layers, write_random_weights

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "darknet"

# (cfg, weight gain, seed): gains chosen so the heads are O(1), not vanishing nor exploding.
CASES = [("yolov4-ctscans.cfg", 1.7, 1), ("yolov4-tiny.cfg", 2.0, 2)]


def yolo_inputs(cfg_text):
    """Darknet indices of the layers feeding each [yolo] (OpenCV names them conv_<index>)."""
    names = [line.strip() for line in cfg_text.splitlines() if line.strip().startswith("[")][1:]
    return [i - 1 for i, n in enumerate(names) if n == "[yolo]"]


def test_opencv_is_a_4x_release():
    # OpenCV 5 dropped the darknet reader; tests/py/requirements.txt pins a 4.x version.
    assert cv2.__version__.startswith("4."), cv2.__version__


@pytest.mark.parametrize("cfg_name,gain,seed", CASES)
def test_import_matches_opencv_darknet_reader(tmp_path, pe_sentinel_bin, cfg_name, gain, seed):
    cfg = DATA / cfg_name
    text = cfg.read_text()
    ours, theirs = tmp_path / "w.weights", tmp_path / "w-opencv.weights"
    floats = write_random_weights(text, ours, seed, opencv_path=theirs, gain=gain)
    assert ours.stat().st_size == 20 + 4 * floats
    try:
        out = tmp_path / "model"
        r = subprocess.run([str(pe_sentinel_bin), "import-darknet", "--cfg", str(cfg), "--weights", str(ours),
                            "--out", str(out), "--name", "m"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        ours.unlink()
        m = tomllib.loads((out / "m.toml").read_text())
        n_conv = len(conv_layers(text))
        assert f"({n_conv} convolutions" in r.stdout, r.stdout

        c, h, w = m["input"]["shape"][1:]
        x = np.random.default_rng(seed + 100).uniform(0, 1, (1, c, h, w)).astype("<f4")
        x.tofile(tmp_path / "x.f32")
        r = subprocess.run([str(pe_sentinel_bin), "run-model", "--manifest", str(out / "m.toml"),
                            "--input", str(tmp_path / "x.f32"), "--out", str(tmp_path / "res")],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr

        net = cv2.dnn.readNetFromDarknet(str(cfg), str(theirs))
        net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        net.setInput(x)
        heads = [h["output"] for h in m["detector"]["heads"]]
        refs = net.forward([f"conv_{i}" for i in yolo_inputs(text)])
        sess = ort.InferenceSession(str(out / "m.onnx"), providers=["CPUExecutionProvider"])
        onnx_outs = sess.run(heads, {"input": x})
        assert len(refs) == len(heads) >= 2
        for name, ref, ox in zip(heads, refs, onnx_outs):
            tract = np.fromfile(tmp_path / "res" / f"{name}.f32", dtype="<f4").reshape(ref.shape)
            big = float(np.abs(ref).max())
            assert 0.05 < big < 1e4, (name, big)  # a meaningful signal, not vanished nor exploded
            tol = 2e-5 * big + 1e-3
            assert np.abs(tract - ref).max() <= tol, (name, "tract vs OpenCV", np.abs(tract - ref).max(), tol)
            assert np.abs(ox - ref).max() <= tol, (name, "onnxruntime vs OpenCV", np.abs(ox - ref).max(), tol)
    finally:
        for f in (ours, theirs):
            f.unlink(missing_ok=True)


def test_manifest_from_the_papers_cfg(tmp_path, pe_sentinel_bin):
    cfg = DATA / "yolov4-ctscans.cfg"
    weights = tmp_path / "w.weights"
    write_random_weights(cfg.read_text(), weights, 5, gain=1.0)
    out = tmp_path / "m"
    subprocess.run([str(pe_sentinel_bin), "import-darknet", "--cfg", str(cfg), "--weights", str(weights),
                    "--out", str(out), "--names", str(DATA / "ctscans.names")], check=True, capture_output=True)
    weights.unlink()
    m = tomllib.loads((out / "yolov4-ctscans.toml").read_text())
    assert m["input"]["shape"] == [1, 1, 416, 416]
    assert m["labels"] == {"names": ["Yes"], "positive": "Yes"}
    det = m["detector"]
    assert det["anchors"][0] == [12, 16] and det["anchors"][8] == [459, 401] and len(det["anchors"]) == 9
    got = [(h["output"], h["stride"], h["mask"], h["scale_x_y"]) for h in det["heads"]]
    assert got == [("head_s8", 8, [0, 1, 2], 1.2), ("head_s16", 16, [3, 4, 5], 1.1),
                   ("head_s32", 32, [6, 7, 8], 1.05)]
    # The daemon's own `check`-level validation: the engine loads it with these exact output shapes.
    x = np.zeros((1, 1, 416, 416), "<f4")
    x.tofile(tmp_path / "x.f32")
    r = subprocess.run([str(pe_sentinel_bin), "run-model", "--manifest", str(out / "yolov4-ctscans.toml"),
                        "--input", str(tmp_path / "x.f32"), "--out", str(tmp_path / "res")],
                       capture_output=True, text=True, check=True)
    assert r.stdout.split("\n")[:3] == ["head_s8 [1, 18, 52, 52]", "head_s16 [1, 18, 26, 26]",
                                        "head_s32 [1, 18, 13, 13]"]


def test_wrong_weights_length_names_layer_and_bytes(tmp_path, pe_sentinel_bin):
    cfg = DATA / "yolov4-tiny.cfg"
    weights = tmp_path / "w.weights"
    floats = write_random_weights(cfg.read_text(), weights, 3)
    expected = 20 + 4 * floats
    data = weights.read_bytes()
    weights.write_bytes(data[:-4])
    r = subprocess.run([str(pe_sentinel_bin), "import-darknet", "--cfg", str(cfg), "--weights", str(weights),
                        "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 1
    assert f"exactly {expected} bytes" in r.stderr and "layer 36 [convolutional]" in r.stderr, r.stderr
    assert not (tmp_path / "o" / "yolov4-tiny.onnx").exists()
    weights.write_bytes(data + b"\0" * 8)
    r = subprocess.run([str(pe_sentinel_bin), "import-darknet", "--cfg", str(cfg), "--weights", str(weights),
                        "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 1 and f"8 more than the {expected}" in r.stderr, r.stderr
