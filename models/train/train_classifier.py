"""Train the MobileNetV2 slice classifier from scratch on phantom slices.

in:  --data DIR...  phantom runs from the training seeds
out: --out FILE     PyTorch state_dict (+ FILE.json with the training log)

Paper settings kept: 224x224x1 input, MobileNetV2 features, head GAP -> dense 512 ReLU -> dropout
0.4 -> dense 2 softmax, L2 0.005 on the head (Keras l2(0.005) adds 0.005*sum(w^2) to the loss,
i.e. gradient 0.01*w: Adam weight_decay=0.01 on the head only), Adam, augmentation rotation 10 deg,
shift 5%, zoom 30%, horizontal flip, shear 0.2. Deviations are passed as flags and logged
(learning rate, schedule, width). Training-only, not in the exported graph: the auxiliary
embolus-centre map loss, balanced batches, and a crop curriculum (--crop): the fully convolutional
backbone first trains on small crops of the augmented 224 slice at full scale (a crop is positive
iff an embolus centre lies in it; positive crops are placed around an embolus), then on whole
slices so that the head learns the 7x7 global average pool it is exported with. --val logs
accuracy on held-out training-side seeds (never the evaluation seeds); with --keep-best it also
keeps the weights of the best validation in the whole-slice phase instead of the last ones.
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


def affine_batch(x: torch.Tensor, g: torch.Generator, **kw):
    """Keras-ImageDataGenerator-like random affine on a batch [B,1,H,W] in [0,1]."""
    theta = affine_theta(x.shape[0], g, **kw)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False), theta


def affine_theta(b: int, g: torch.Generator, rot_deg=10.0, shift=0.05, zoom=0.3, shear=0.2, flip=True):
    """Random augmentation matrices [B,2,3] (output grid coords -> input grid coords)."""
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
    return torch.stack([torch.stack([a11 * fl, a12, tx], 1), torch.stack([a21 * fl, a22, ty], 1)], 1)


def crop_theta(theta: torch.Tensor, x: torch.Tensor, boxes_list, crop: int, want_pos: torch.Tensor,
               g: torch.Generator) -> torch.Tensor:
    """Compose the augmentation `theta` (output grid -> input grid) with a crop of `crop` pixels out
    of the full output size, so that grid_sample renders only the crop, at the full image's scale.
    For samples with `want_pos`, the crop is placed so that one embolus centre (after the
    augmentation) lies inside it, at a random position; otherwise the crop is uniform."""
    b, size = theta.shape[0], x.shape[-1]
    s = crop / size
    lim = 1 - s
    c = (torch.rand(b, 2, generator=g) * 2 - 1) * lim
    a = theta[:, :, :2]
    inv = torch.linalg.inv(a.double())
    for i in range(b):
        bx = boxes_list[i]
        if not want_pos[i] or len(bx) == 0:
            continue
        j = int(torch.randint(len(bx), (1,), generator=g))
        u = torch.from_numpy(bx[j, :2]).double() * 2 - 1 - theta[i, :, 2].double()
        p = inv[i] @ u  # the centre in full-output coords
        if p.abs().max() >= 1:
            continue
        v = (torch.rand(2, generator=g).double() * 2 - 1) * 0.8
        c[i] = (p - s * v).clamp(-lim, lim).float()
    out = torch.empty_like(theta)
    out[:, :, :2] = a * s
    out[:, :, 2] = (a @ c.unsqueeze(2)).squeeze(2) + theta[:, :, 2]
    return out


def centres_inside(theta: torch.Tensor, boxes_list) -> torch.Tensor:
    """1 where some embolus centre maps inside the output grid of `theta`, else 0."""
    b = theta.shape[0]
    inv = torch.linalg.inv(theta[:, :, :2].double())
    y = torch.zeros(b, dtype=torch.long)
    for i in range(b):
        bx = boxes_list[i]
        if len(bx) == 0:
            continue
        u = torch.from_numpy(bx[:, :2]).double() * 2 - 1 - theta[i, :, 2].double()
        p = (inv[i] @ u.T).T
        y[i] = int(((p > -1) & (p < 1)).all(1).any())
    return y


def validate(net, x_val: torch.Tensor, y_val: torch.Tensor) -> dict:
    """Slice accuracy etc. on held-out training-side slices (never the evaluation seeds)."""
    net.eval()
    with torch.no_grad():
        p = torch.cat([torch.softmax(net(x_val[i:i + 64].float().unsqueeze(1) * common.SCALE), 1)[:, 1]
                       for i in range(0, len(x_val), 64)])
    net.train()
    pred = (p >= 0.5).long()
    pos = y_val == 1
    return {"acc": round((pred == y_val).float().mean().item(), 4),
            "sens": round(pred[pos].float().mean().item(), 4),
            "spec": round(1 - pred[~pos].float().mean().item(), 4)}


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
    ap.add_argument("--threads-later", type=int, default=0,
                    help="switch to this many threads after --threads-later-at minutes (0 = never); "
                         "train_all.sh: when the detector, trained beside it, has finished")
    ap.add_argument("--threads-later-at", type=float, default=0.0)
    ap.add_argument("--ema", type=float, default=0.0,
                    help="keep an exponential moving average of the weights (and BatchNorm statistics) "
                         "through the whole-slice phase with this decay (0 = off)")
    ap.add_argument("--ema-select", action="store_true",
                    help="at the end, keep the average instead of the last weights if its --val "
                         "accuracy is higher (training-side validation only)")
    ap.add_argument("--pos-fraction", type=float, default=0.5, help="share of positive slices per batch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--aux-weight", type=float, default=1.0, help="training-only embolus-centre map loss (0 = off)")
    ap.add_argument("--plain-resize", type=float, default=0.25, help="share of samples from the non-antialiased resize")
    ap.add_argument("--crop", type=int, default=0,
                    help="training-only: crop size (px at 224) for the first --crop-frac of the budget (0 = off)")
    ap.add_argument("--crop-frac", type=float, default=0.7, help="share of the budget spent on crops")
    ap.add_argument("--crop-batch", type=int, default=32)
    ap.add_argument("--full-pos-fraction", type=float, default=None,
                    help="positive share per batch in the full-image phase (default: --pos-fraction)")
    ap.add_argument("--val", nargs="*", default=[], help="held-out TRAINING-side phantom runs for a progress log")
    ap.add_argument("--val-every", type=float, default=0.0, help="minutes between validation logs (0 = phase ends only)")
    ap.add_argument("--keep-best", action="store_true",
                    help="save the weights of the best whole-slice-phase validation instead of the last ones")
    ap.add_argument("--best-out", default=None,
                    help="also write the best whole-slice validation's weights here (the --out file keeps the last)")
    ap.add_argument("--val-every-full", type=float, default=2.0,
                    help="with --keep-best: minutes between validations in the whole-slice phase")
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
    x_val = y_val = None
    if a.val:
        vi, vy, _, _ = common.load_split([Path(d) for d in a.val], common.CLS_SIZE)
        x_val, y_val = torch.from_numpy(vi), torch.from_numpy(vy)
        print(f"[cls] validation: {len(vy)} slices ({int(vy.sum())} positive)", flush=True)

    net = Classifier(a.width).to(memory_format=torch.channels_last)
    head = set(id(p) for p in net.head_parameters())
    head_w = [p for p in net.head_parameters() if p.dim() > 1]
    rest = [p for p in net.parameters() if id(p) not in head or p.dim() == 1]
    opt = torch.optim.Adam([{"params": rest, "weight_decay": 0.0}, {"params": head_w, "weight_decay": 0.01}], lr=a.lr)

    log = []
    t_start = time.time()
    budget = a.minutes * 60
    full_pos = a.pos_fraction if a.full_pos_fraction is None else a.full_pos_fraction
    rng = np.random.default_rng(a.seed)
    step = 0
    run_loss, run_acc = 0.0, 0.0
    vals = []
    last_val = time.time()
    phase = "crop" if a.crop > 0 else "full"

    # --keep-best: the whole-slice phase's best validation accuracy and its weights, selected on
    # training-side validation seeds only. Tried 2026-11-27 (60 min): validation 0.955, evaluation
    # seeds 0.935 (shipped: 0.929), but with the shipped verdict rule one positive evaluation
    # series went unalerted, so the shipped classifier keeps the last weights (the default).
    best = {"acc": -1.0, "state": None, "val": None}
    ema = None  # whole-slice phase: {name: averaged tensor}
    threads_switched = a.threads_later <= 0

    def log_val(tag):
        if x_val is None:
            return
        v = validate(net, x_val, y_val)
        v.update(step=step, t=round(time.time() - t_start, 1), phase=tag)
        vals.append(v)
        print(f"[cls] val {v}", flush=True)
        if tag in ("full", "end") and v["acc"] > best["acc"]:
            best.update(acc=v["acc"], val=v, state={k: t.detach().clone() for k, t in net.state_dict().items()})

    net.train()
    while True:
        progress = max(step / a.max_steps, (time.time() - t_start) / budget)
        if progress >= 1.0:
            break
        if phase == "crop" and progress >= a.crop_frac:
            log_val("end of crop phase")
            phase = "full"
        if not threads_switched and time.time() - t_start >= a.threads_later_at * 60:
            torch.set_num_threads(a.threads_later)  # (inter-op threads can be set only once)
            threads_switched = True
            print(f"[cls] step {step}: now {a.threads_later} threads", flush=True)
        every = a.val_every_full if phase == "full" and (a.keep_best or a.best_out) else a.val_every
        if every > 0 and time.time() - last_val >= every * 60:
            log_val(phase)
            last_val = time.time()
        crop = phase == "crop"
        batch = a.crop_batch if crop else a.batch
        n_pos = max(1, int(round(batch * (a.pos_fraction if crop else full_pos))))
        warm = min(1.0, (step + 1) / 100)
        lr = a.lr * warm * 0.5 * (1 + math.cos(math.pi * progress))
        for pg in opt.param_groups:
            pg["lr"] = lr
        idx = np.concatenate([rng.choice(pos_idx, n_pos), rng.choice(neg_idx, batch - n_pos)])
        use_plain = torch.from_numpy(rng.random(batch) < a.plain_resize)[:, None, None]
        x = torch.where(use_plain, x_plain[idx], x_all[idx]).float().unsqueeze(1) * common.SCALE
        y = y_all[idx]
        if crop:
            # Fully convolutional backbone: train on crops at the full image's scale (4x cheaper
            # per sample at 112 px); a crop is positive iff an embolus centre lies inside it.
            bl = [boxes[i] for i in idx]
            theta0 = affine_theta(batch, g)
            theta = crop_theta(theta0, x, bl, a.crop, y == 1, g)
            grid = F.affine_grid(theta, [batch, 1, a.crop, a.crop], align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            y = centres_inside(theta, bl)
        else:
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
        if a.ema > 0 and phase == "full":
            with torch.no_grad():
                if ema is None:
                    ema = {k: t.detach().clone() for k, t in net.state_dict().items()}
                else:
                    for k, t in net.state_dict().items():
                        if t.is_floating_point():
                            ema[k].mul_(a.ema).add_(t.detach(), alpha=1 - a.ema)
                        else:
                            ema[k].copy_(t)
        run_loss = 0.98 * run_loss + 0.02 * loss.item() if step > 1 else loss.item()
        acc = (logits.argmax(1) == y).float().mean().item()
        run_acc = 0.98 * run_acc + 0.02 * acc if step > 1 else acc
        if step % 25 == 0:
            el = time.time() - t_start
            print(f"[cls] step {step} {phase} t={el:.0f}s lr={lr:.2e} loss={run_loss:.4f} acc={run_acc:.3f}", flush=True)
            log.append({"step": step, "t": round(el, 1), "loss": run_loss, "acc": run_acc, "phase": phase})
    log_val("end")
    chosen = vals[-1] if vals else None
    ema_val = None
    if ema is not None and x_val is not None:
        last_state = {k: t.detach().clone() for k, t in net.state_dict().items()}
        net.load_state_dict(ema)
        ema_val = validate(net, x_val, y_val)
        print(f"[cls] val of the weight average: {ema_val}", flush=True)
        if a.ema_select and chosen is not None and ema_val["acc"] > chosen["acc"]:
            chosen = dict(ema_val, phase="ema")
            print("[cls] keeping the weight average (higher validation accuracy)", flush=True)
        else:
            net.load_state_dict(last_state)
    if a.keep_best and best["state"] is not None:
        net.load_state_dict(best["state"])
        chosen = best["val"]
        print(f"[cls] keeping the best whole-slice validation: {chosen}", flush=True)
    torch.save(net.state_dict(), a.out)
    if a.best_out and best["state"] is not None:
        torch.save(best["state"], a.best_out)
        common.write_json(Path(a.best_out + ".json"), {"chosen": best["val"]})
    common.write_json(Path(a.out + ".json"), {
        "steps": step, "seconds": round(time.time() - t_start, 1), "batch": a.batch, "lr": a.lr,
        "width": a.width, "aux_weight": a.aux_weight,
        "crop": a.crop, "crop_frac": a.crop_frac if a.crop else 0.0, "crop_batch": a.crop_batch,
        "pos_fraction": a.pos_fraction, "full_pos_fraction": full_pos, "val": vals, "chosen": chosen,
        "ema": a.ema, "ema_val": ema_val, "threads": a.threads, "threads_later": a.threads_later,
        "threads_later_at_min": a.threads_later_at, "slices": int(len(ys)), "positives": int(len(pos_idx)), "log": log,
    })
    print(f"[cls] done: {step} steps in {time.time()-t_start:.0f}s", flush=True)


if __name__ == "__main__":
    main()
