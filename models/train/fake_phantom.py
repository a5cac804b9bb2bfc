"""A crude stand-in for `pe-sentinel phantom`, in the same output layout, used only to smoke-test the
training scripts when the Rust binary is not built (`train_all.sh --smoke`). Its images are not CT-like;
never train shipped models on it.

usage: python fake_phantom.py --out DIR --series N --slices M --seed S
"""
import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--series", type=int, default=2)
    ap.add_argument("--slices", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    out = Path(a.out)
    rng = np.random.default_rng(a.seed)
    yy, xx = np.mgrid[0:512, 0:512]
    series_list = []
    for s in range(a.series):
        sd = out / f"series-{s:03d}"
        for sub in ("png", "labels"):
            (sd / sub).mkdir(parents=True, exist_ok=True)
        positive = bool(rng.random() < 0.5)
        per_slice = {}
        for i in range(1, a.slices + 1):
            img = np.zeros((512, 512), np.float32)
            img[((xx - 256) / 220) ** 2 + ((yy - 256) / 170) ** 2 < 1] = 140
            img[((xx - 180) / 60) ** 2 + ((yy - 250) / 100) ** 2 < 1] = 20
            img[((xx - 332) / 60) ** 2 + ((yy - 250) / 100) ** 2 < 1] = 20
            vx, vy = 200 + rng.integers(-5, 5), 240
            img[(xx - vx) ** 2 + (yy - vy) ** 2 < 15 ** 2] = 230
            lines = []
            if positive and i % 2 == 0:
                r = int(rng.integers(5, 10))
                img[(xx - vx) ** 2 + (yy - vy) ** 2 < r ** 2] = 110
                lines.append(f"0 {vx/512:.6f} {vy/512:.6f} {2*r/512:.6f} {2*r/512:.6f}")
            img += rng.normal(0, 8, img.shape)
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(sd / "png" / f"slice-{i:04d}.png")
            (sd / "labels" / f"slice-{i:04d}.txt").write_text("".join(l + "\n" for l in lines))
            per_slice[i] = len(lines)
        (sd / "truth.json").write_text(json.dumps({"positive": positive, "per_slice": per_slice}))
        series_list.append(f"series-{s:03d}")
    (out / "phantom.json").write_text(json.dumps({"generator": "fake_phantom.py", "seed": a.seed, "series": series_list}))


if __name__ == "__main__":
    main()
