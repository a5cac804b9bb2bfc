"""Train the MobileNetV2 slice classifier from scratch on phantom slices.

in:  --data DIR...  phantom runs from the training seeds
out: --out FILE     PyTorch state_dict (+ FILE.json with the training log)

Paper settings kept: 224x224x1 input, MobileNetV2 features, head GAP -> dense 512 ReLU -> dropout
0.4 -> dense 2 softmax, L2 0.005 on the head (Keras l2(0.005) adds 0.005*sum(w^2) to the loss,
i.e. gradient 0.01*w: Adam weight_decay=0.01 on the head only), Adam, augmentation rotation 10 deg,
shift 5%, zoom 30%, horizontal flip, shear 0.2. Deviations are passed as flags and logged
(learning rate, schedule, width).
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import common
from nets import Classifier


def affine_batch(x: torch.Tensor, g: torch.Generator, rot_deg=10.0, shift=0.05, zoom=0.3, shear=0.2, flip=True):
    """Keras-ImageDataGenerator-like random affine on a batch [B,1,H,W] in [0,1]."""
    b = x.shape[0]
    u = lambda lo, hi: torch.rand(b, generator=g) * (hi - lo) + lo  # noqa: E731
    th = u(-rot_deg, rot_deg) * math.pi / 180
    z = u(1 - zoom, 1 + zoom)
    sh = u(-shear, shear)
    tx, ty = u(-2 * shift, 2 * shift), u(-2 * shift, 2 * shift)  # grid coords span [-1, 1]
    fl = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0) if flip else torch.ones(b)
    c, s = torch.cos(th), torch.sin(th)
    # output -> input mapping: R(th) @ Shear(sh) @ Zoom(z), flip on x
    a11, a12 = c * z, (c * sh - s) * z
    a21, a22 = s * z, (s * sh + c) * z
    theta = torch.stack([torch.stack([a11 * fl, a12, tx], 1), torch.stack([a21 * fl, a22, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False), theta


def centre_targets(theta: torch.Tensor, boxes_list, cells: int) -> torch.Tensor:
    """[B,1,cells,cells] map of cells holding an embolus centre after the augmentation `theta`
    (which maps output grid coords to input grid coords, both in [-1, 1])."""
    b = theta.shape[0]
    t = torch.zeros(b, 1, cells, cells)
    inv = torch.linalg.inv(theta[:, :, :2].double())
    for i in range(b):
        bx = boxes_list[i]
        if len(bx) == 0:
            continue
        u = torch.from_numpy(bx[:, :2]).double() * 2 - 1 - theta[i, :, 2].double()
        p = (inv[i] @ u.T).T  # output coords in [-1, 1]
        c = torch.floor((p + 1) / 2 * cells).long()
        ok = (c >= 0).all(1) & (c < cells).all(1)
        t[i, 0, c[ok, 1], c[ok, 0]] = 1.0
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-steps", type=int, default=3000)
    ap.add_argument("--minutes", type=float, default=30.0, help="wall-clock cap; the LR schedule follows it")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pos-fraction", type=float, default=0.5, help="share of positive slices per batch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--aux-weight", type=float, default=1.0, help="training-only embolus-centre map loss (0 = off)")
    ap.add_argument("--plain-resize", type=float, default=0.25, help="share of samples from the non-antialiased resize")
    a = ap.parse_args()
    common.set_threads(a.threads)
    torch.manual_seed(a.seed)
    g = torch.Generator().manual_seed(a.seed)

    t0 = time.time()
    # A second copy resized without antialiasing, so the model does not depend on which bilinear
    # variant a deployment's resizer implements (PIL/image-crate triangle filter or 2x2 taps).
    imgs, ys, boxes, plain = common.load_split([Path(d) for d in a.data], common.CLS_SIZE, plain_too=True)
    pos_idx = np.flatnonzero(ys == 1)
    neg_idx = np.flatnonzero(ys == 0)
    print(f"[cls] loaded {len(ys)} slices ({len(pos_idx)} positive) in {time.time()-t0:.0f}s", flush=True)
    x_all = torch.from_numpy(imgs)
    x_plain = torch.from_numpy(plain)
    y_all = torch.from_numpy(ys)

    net = Classifier(a.width).to(memory_format=torch.channels_last)
    head = set(id(p) for p in net.head_parameters())
    head_w = [p for p in net.head_parameters() if p.dim() > 1]
    rest = [p for p in net.parameters() if id(p) not in head or p.dim() == 1]
    opt = torch.optim.Adam([{"params": rest, "weight_decay": 0.0}, {"params": head_w, "weight_decay": 0.01}], lr=a.lr)

    log = []
    t_start = time.time()
    budget = a.minutes * 60
    n_pos = max(1, int(round(a.batch * a.pos_fraction)))
    rng = np.random.default_rng(a.seed)
    step = 0
    run_loss, run_acc = 0.0, 0.0
    net.train()
    while True:
        progress = max(step / a.max_steps, (time.time() - t_start) / budget)
        if progress >= 1.0:
            break
        warm = min(1.0, (step + 1) / 100)
        lr = a.lr * warm * 0.5 * (1 + math.cos(math.pi * progress))
        for pg in opt.param_groups:
            pg["lr"] = lr
        idx = np.concatenate([rng.choice(pos_idx, n_pos), rng.choice(neg_idx, a.batch - n_pos)])
        use_plain = torch.from_numpy(rng.random(a.batch) < a.plain_resize)[:, None, None]
        x = torch.where(use_plain, x_plain[idx], x_all[idx]).float().unsqueeze(1) * common.SCALE
        y = y_all[idx]
        x, theta = affine_batch(x, g)
        logits, aux = net.forward_train(x.contiguous(memory_format=torch.channels_last))
        loss = F.cross_entropy(logits, y)
        if a.aux_weight > 0:
            tgt = centre_targets(theta, [boxes[i] for i in idx], aux.shape[-1])
            loss = loss + a.aux_weight * F.binary_cross_entropy_with_logits(
                aux.float(), tgt, pos_weight=torch.tensor(10.0))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        run_loss = 0.98 * run_loss + 0.02 * loss.item() if step > 1 else loss.item()
        acc = (logits.argmax(1) == y).float().mean().item()
        run_acc = 0.98 * run_acc + 0.02 * acc if step > 1 else acc
        if step % 25 == 0:
            el = time.time() - t_start
            print(f"[cls] step {step} t={el:.0f}s lr={lr:.2e} loss={run_loss:.4f} acc={run_acc:.3f}", flush=True)
            log.append({"step": step, "t": round(el, 1), "loss": run_loss, "acc": run_acc})
    torch.save(net.state_dict(), a.out)
    common.write_json(Path(a.out + ".json"), {
        "steps": step, "seconds": round(time.time() - t_start, 1), "batch": a.batch, "lr": a.lr,
        "width": a.width, "aux_weight": a.aux_weight, "slices": int(len(ys)), "positives": int(len(pos_idx)), "log": log,
    })
    print(f"[cls] done: {step} steps in {time.time()-t_start:.0f}s", flush=True)


if __name__ == "__main__":
    main()
