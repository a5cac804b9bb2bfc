"""`pe-sentinel bench --peer PYTHON`: the onnxruntime peer (scripts/ort_peer.py) runs on the very
inputs the daemon's engine received, and the summary states tract/onnxruntime ratios per model.
Checked here: the peer ran onnxruntime (this venv's version) on both models; its inputs are real
preprocessed phantom slices of the manifest's shape (one per timed-or-warm-up slice); the ratios in
the summary are the engine's medians over the peer's, end to end also over the peer's two models
run back to back per slice. (Parity of the outputs themselves is
tests/py/test_parity_onnxruntime.py's job.)"""
import json
import pathlib
import subprocess
import sys

import numpy as np
import onnxruntime as ort

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_bench_peer_times_onnxruntime_on_the_daemons_inputs(pe_sentinel_bin, tmp_path):
    out = tmp_path / "bench"
    r = subprocess.run(
        [str(pe_sentinel_bin), "bench", "--phantom", "6", "--seed", "5", "--out", str(out), "--peer", sys.executable],
        capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["peer"]["runtime"] == "onnxruntime-python"
    assert s["peer"]["version"] == ort.__version__
    roles = {m["role"]: m for m in s["peer"]["models"]}
    assert set(roles) == {"classifier", "detector", "classifier+detector"}
    run = s["runs"][0]
    for role in ("classifier", "detector"):
        want = run["stages"][role]["p50_ms"] / roles[role]["p50_ms"]
        assert abs(s["ratios_to_peer"][f"tract/{role}"] - want) < 1e-9
    assert "tract/end_to_end_vs_peer_models" in s["ratios_to_peer"]
    # Both models back to back on each of the 6 slices, 5 timed passes; a pair takes longer than
    # either model alone.
    pair = roles["classifier+detector"]
    assert pair["runs"] == 5 * 6
    assert pair["p50_ms"] > max(roles["classifier"]["p50_ms"], roles["detector"]["p50_ms"])
    want = run["stages"]["total"]["p50_ms"] / pair["p50_ms"]
    assert abs(s["ratios_to_peer"]["tract/end_to_end_vs_peer_pair"] - want) < 1e-9
    assert "peer:" in r.stdout and "ratio tract/classifier" in r.stdout

    # The inputs the peer timed are real preprocessed slices, the shape the manifest states.
    req = json.loads((out / "peer" / "request.json").read_text())
    for m in req["models"]:
        x = np.fromfile(m["inputs"], dtype="<f4")
        per = int(np.prod(m["input_shape"]))
        assert x.size == per * m["slices"] and m["slices"] == 6
        sess = ort.InferenceSession(m["onnx"], providers=["CPUExecutionProvider"])
        y = sess.run(None, {m["input_name"]: x[:per].reshape(m["input_shape"])})
        assert all(np.isfinite(o).all() for o in y)
        assert x.std() > 0.01, "a phantom slice, not a blank input"


def test_bench_rounds_pool_slices_and_report_the_median_round_ratio(pe_sentinel_bin, tmp_path):
    """`--rounds 3`: every round runs the engine over every slice and then the peer; the stage
    figures pool the rounds' slices, and each ratio is the median of the three rounds' ratios
    (one round's own figure), all three listed."""
    out = tmp_path / "bench"
    r = subprocess.run(
        [str(pe_sentinel_bin), "bench", "--phantom", "5", "--seed", "5", "--rounds", "3", "--out", str(out),
         "--peer", sys.executable],
        capture_output=True, text=True, timeout=900,
    )
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["rounds"] == 3
    assert s["runs"][0]["slices"] == 3 * 3, "5 slices, 2 of them warm-up, in each of 3 rounds"
    roles = {m["role"]: m for m in s["peer"]["models"]}
    assert roles["classifier+detector"]["runs"] == 3 * 5 * 5
    for key, value in s["ratios_to_peer"].items():
        each = s["ratio_rounds"][key]
        assert len(each) == 3, key
        assert value == sorted(each)[1], (key, value, each)
    assert "median of 3 rounds" in r.stdout

    bad = subprocess.run([str(pe_sentinel_bin), "bench", "--phantom", "5", "--rounds", "0", "--out", str(out)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "--rounds 0" in bad.stderr, bad.stderr
