"""Writes random darknet .weights files for a cfg (the paper's trained weights are not public).

Independent of the Rust importer: its own small cfg walk that tracks channels only. Format
(darknet load_weights_upto): int32 major, minor, revision; int64 seen (major*10+minor >= 2);
then per [convolutional] layer, in cfg order: biases[f], and with batch_normalize scales[f],
rolling_mean[f], rolling_variance[f]; then weights[f][c/groups][size][size], little-endian f32.
"""
import numpy as np


def sections(text):
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            out.append((line.strip("[]"), {}))
        else:
            k, v = line.split("=", 1)
            out[-1][1][k.strip()] = v.strip()
    return out


def conv_layers(cfg_text):
    """[(filters, in_channels_per_group, size, batch_normalize)] for each conv, in cfg order."""
    secs = sections(cfg_text)
    net = secs[0][1]
    prev_c = int(net.get("channels", 3))
    chans, convs = [], []
    for i, (name, kv) in enumerate(secs[1:]):
        if name == "convolutional":
            f, size, groups = int(kv["filters"]), int(kv.get("size", 1)), int(kv.get("groups", 1))
            convs.append((f, prev_c // groups, size, int(kv.get("batch_normalize", 0)) != 0))
            c = f
        elif name == "route":
            groups = int(kv.get("groups", 1))
            idx = [int(x) for x in kv["layers"].split(",")]
            c = sum(chans[j if j >= 0 else i + j] // groups for j in idx)
        else:  # shortcut, maxpool, upsample, yolo keep the channels
            c = prev_c
        chans.append(c)
        prev_c = c
    return convs


def write_random_weights(cfg_text, path, seed, opencv_path=None, gain=2.0):
    """Writes random weights; returns the number of floats.

    Weights are He-scaled, batch-norm scales/means small, variances in 0.8..1.2, so activations
    stay O(1) through ~110 layers. With `opencv_path`, also writes the same network for OpenCV,
    whose darknet reader folds batch-norm with epsilon 1e-6 where darknet uses 1e-5: its file
    holds variance + 9e-6, so both compute sqrt(variance + 1e-5).
    """
    rng = np.random.default_rng(seed)
    header = np.array([0, 2, 5], "<i4").tobytes() + np.array([12345], "<i8").tobytes()
    ours, cv, total = [header], [header], 0
    for f, cin, size, bn in conv_layers(cfg_text):
        fan_in = cin * size * size
        bias = rng.normal(0, 0.05, f).astype("<f4")
        w = (rng.normal(0, 1, f * fan_in) * np.sqrt(gain / fan_in)).astype("<f4")
        if bn:
            scales = rng.uniform(0.8, 1.2, f).astype("<f4")
            mean = rng.normal(0, 0.05, f).astype("<f4")
            var = rng.uniform(0.8, 1.2, f).astype("<f4")
            parts = [bias, scales, mean, var, w]
            cv_parts = [bias, scales, mean, (var + np.float32(9e-6)).astype("<f4"), w]
        else:
            parts = cv_parts = [bias, w]
        ours += [p.tobytes() for p in parts]
        cv += [p.tobytes() for p in cv_parts]
        total += sum(p.size for p in parts)
    with open(path, "wb") as fh:
        fh.write(b"".join(ours))
    if opencv_path is not None:
        with open(opencv_path, "wb") as fh:
            fh.write(b"".join(cv))
    return total
