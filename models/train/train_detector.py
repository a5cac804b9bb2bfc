"""Train the yolov4-tiny-layout embolus detector from scratch on phantom slices.

in:  --data DIR...  phantom runs from the training seeds
out: --out FILE     PyTorch state_dict (+ FILE.json with the training log)

The loss decodes exactly as the daemon does (common.decode_head): x = (sigmoid(tx)*s - (s-1)/2 +
col)/W, w = exp(tw)*anchor_w/416, conf = sigmoid(obj)*sigmoid(cls). Darknet-style assignment: a
truth box goes to its best anchor (IoU of width/height) and to every other anchor with IoU >
iou_thresh 0.213 (as the seed cfg); predictions overlapping a truth by more than ignore_thresh 0.7
are not pushed to objectness 0. Box loss is 1-GIoU on decoded boxes (the cfg uses CIoU).
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
from nets import YoloV4Tiny

IOU_THRESH = 0.213
IGNORE_THRESH = 0.7


def wh_iou(w, h, anchors):
    inter = np.minimum(w, anchors[:, 0]) * np.minimum(h, anchors[:, 1])
    return inter / (w * h + anchors[:, 0] * anchors[:, 1] - inter)


def box_giou(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """GIoU of matching rows, cxcywh."""
    p1, p2 = p[:, :2] - p[:, 2:] / 2, p[:, :2] + p[:, 2:] / 2
    t1, t2 = t[:, :2] - t[:, 2:] / 2, t[:, :2] + t[:, 2:] / 2
    inter = (torch.min(p2, t2) - torch.max(p1, t1)).clamp(min=0).prod(1)
    union = p[:, 2:].prod(1) + t[:, 2:].prod(1) - inter + 1e-9
    iou = inter / union
    hull = (torch.max(p2, t2) - torch.min(p1, t1)).clamp(min=0).prod(1) + 1e-9
    return iou - (hull - union) / hull


def box_iou_many(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """p [N,4], t [M,4] -> [N,M] IoU, cxcywh."""
    p1, p2 = p[:, None, :2] - p[:, None, 2:] / 2, p[:, None, :2] + p[:, None, 2:] / 2
    t1, t2 = t[None, :, :2] - t[None, :, 2:] / 2, t[None, :, :2] + t[None, :, 2:] / 2
    inter = (torch.min(p2, t2) - torch.max(p1, t1)).clamp(min=0).prod(-1)
    return inter / (p[:, None, 2:].prod(-1) + t[None, :, 2:].prod(-1) - inter + 1e-9)


def yolo_loss(outputs, boxes_list, net_size: int, box_w=5.0):
    """net_size: pixels of the (possibly cropped) input; anchors are pixels, boxes normalised to it."""
    NET = net_size
    anchors = np.asarray(common.ANCHORS, dtype=np.float64)
    B = outputs[0].shape[0]
    total_box = outputs[0].new_zeros(())
    total_obj = outputs[0].new_zeros(())
    total_cls = outputs[0].new_zeros(())
    n_pos = 0
    for raw, (_, stride, mask, s) in zip(outputs, common.HEADS):
        na = len(mask)
        _, _, G, _ = raw.shape
        r = raw.view(B, na, 6, G, G).permute(0, 1, 3, 4, 2)  # B,A,gy,gx,6
        col = torch.arange(G, dtype=r.dtype).view(1, 1, 1, G)
        row = torch.arange(G, dtype=r.dtype).view(1, 1, G, 1)
        aw = torch.tensor([anchors[m][0] for m in mask], dtype=r.dtype).view(1, na, 1, 1)
        ah = torch.tensor([anchors[m][1] for m in mask], dtype=r.dtype).view(1, na, 1, 1)
        px = (torch.sigmoid(r[..., 0]) * s - (s - 1) / 2 + col) / G
        py = (torch.sigmoid(r[..., 1]) * s - (s - 1) / 2 + row) / G
        pw = torch.exp(r[..., 2].clamp(max=6)) * aw / NET
        ph = torch.exp(r[..., 3].clamp(max=6)) * ah / NET
        pbox = torch.stack([px, py, pw, ph], -1)  # B,A,G,G,4

        obj_t = torch.zeros(B, na, G, G)
        obj_w = torch.ones(B, na, G, G)
        pos_b, pos_a, pos_y, pos_x, pos_t = [], [], [], [], []
        for b, gt in enumerate(boxes_list):
            if len(gt) == 0:
                continue
            gt_t = torch.from_numpy(gt).to(r.dtype)
            with torch.no_grad():
                ious = box_iou_many(pbox[b].reshape(-1, 4).detach(), gt_t).max(1).values
                obj_w[b] = (ious <= IGNORE_THRESH).to(obj_w.dtype).view(na, G, G)
            for cx, cy, w, h in gt:
                iou = wh_iou(w * NET, h * NET, anchors)
                chosen = {int(np.argmax(iou))} | set(np.flatnonzero(iou > IOU_THRESH).tolist())
                for a_idx in chosen:
                    if a_idx not in mask:
                        continue
                    k = mask.index(a_idx)
                    gx, gy = min(int(cx * G), G - 1), min(int(cy * G), G - 1)
                    pos_b.append(b); pos_a.append(k); pos_y.append(gy); pos_x.append(gx)
                    pos_t.append([cx, cy, w, h])
        if pos_b:
            ib, ia, iy, ix = (torch.tensor(v) for v in (pos_b, pos_a, pos_y, pos_x))
            obj_t[ib, ia, iy, ix] = 1.0
            obj_w[ib, ia, iy, ix] = 1.0
            tb = torch.tensor(pos_t, dtype=r.dtype)
            total_box = total_box + (1 - box_giou(pbox[ib, ia, iy, ix], tb)).sum()
            total_cls = total_cls + F.binary_cross_entropy_with_logits(
                r[ib, ia, iy, ix, 5], torch.ones(len(pos_b)), reduction="sum")
            n_pos += len(pos_b)
        total_obj = total_obj + (F.binary_cross_entropy_with_logits(r[..., 4], obj_t, reduction="none") * obj_w).sum()
    loss = (box_w * total_box + total_obj + total_cls) / B
    return loss, {"box": total_box.item() / max(n_pos, 1), "obj": total_obj.item() / B, "npos": n_pos}


def augment(x: torch.Tensor, boxes_list, rng: np.random.Generator, scale=0.25, shift=0.1):
    """Horizontal flip + axis-aligned zoom/shift (boxes stay exact). x: [B,1,H,W] in [0,1]."""
    B = x.shape[0]
    z = rng.uniform(1 - scale, 1 + scale, B)            # content magnification
    t = rng.uniform(-shift, shift, (B, 2))               # content shift, normalised
    fl = rng.random(B) < 0.5
    theta = torch.zeros(B, 2, 3)
    out_boxes = []
    for b in range(B):
        sx = -1.0 if fl[b] else 1.0
        # output grid u (in [-1,1]) samples input at (u - 2t)/z, x mirrored when flipped
        theta[b, 0, 0] = sx / z[b]
        theta[b, 0, 2] = -sx * 2 * t[b, 0] / z[b]
        theta[b, 1, 1] = 1 / z[b]
        theta[b, 1, 2] = -2 * t[b, 1] / z[b]
        bx = boxes_list[b].copy()
        if len(bx):
            if fl[b]:
                bx[:, 0] = 1 - bx[:, 0]
            bx[:, 0] = (bx[:, 0] - 0.5) * z[b] + 0.5 + t[b, 0]
            bx[:, 1] = (bx[:, 1] - 0.5) * z[b] + 0.5 + t[b, 1]
            bx[:, 2:] *= z[b]
            x1 = np.clip(bx[:, :2] - bx[:, 2:] / 2, 0, 1)
            x2 = np.clip(bx[:, :2] + bx[:, 2:] / 2, 0, 1)
            keep_area = (x2 - x1).prod(1) / np.maximum(bx[:, 2:].prod(1), 1e-12)
            bx = np.concatenate([(x1 + x2) / 2, x2 - x1], 1)[keep_area > 0.6].astype(np.float32)
        out_boxes.append(bx.reshape(-1, 4))
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False), out_boxes


def crop_batch(x: torch.Tensor, boxes_list, crop: int, rng: np.random.Generator):
    """Crop each image to crop x crop at an offset that is a multiple of 32 (so the crop's grid cells
    are cells of the full image). Positive images get a crop that holds one of their boxes whole.
    Training on crops cuts the cost per sample by (416/crop)^2; inference stays at 416."""
    size = x.shape[-1]
    steps = (size - crop) // 32
    xs, out_boxes = [], []
    for b in range(x.shape[0]):
        bx = boxes_list[b]
        ox = oy = None
        if len(bx):
            k = rng.integers(len(bx))
            x1 = (bx[k, 0] - bx[k, 2] / 2) * size; x2 = (bx[k, 0] + bx[k, 2] / 2) * size
            y1 = (bx[k, 1] - bx[k, 3] / 2) * size; y2 = (bx[k, 1] + bx[k, 3] / 2) * size
            okx = [i * 32 for i in range(steps + 1) if i * 32 <= x1 and x2 <= i * 32 + crop]
            oky = [i * 32 for i in range(steps + 1) if i * 32 <= y1 and y2 <= i * 32 + crop]
            if okx and oky:
                ox, oy = int(rng.choice(okx)), int(rng.choice(oky))
        if ox is None:
            # negatives: mostly the middle of the chest, where the arteries (and most confounders) are
            ox = int(rng.integers(0, steps + 1)) * 32
            oy = int(rng.integers(0, steps + 1)) * 32
        xs.append(x[b, :, oy:oy + crop, ox:ox + crop])
        if len(bx):
            p1 = (bx[:, :2] - bx[:, 2:] / 2) * size - [ox, oy]
            p2 = (bx[:, :2] + bx[:, 2:] / 2) * size - [ox, oy]
            c1, c2 = np.clip(p1, 0, crop), np.clip(p2, 0, crop)
            frac = (c2 - c1).prod(1) / np.maximum((p2 - p1).prod(1), 1e-9)
            nb = np.concatenate([(c1 + c2) / 2, c2 - c1], 1)[frac > 0.6] / crop
            out_boxes.append(nb.astype(np.float32).reshape(-1, 4))
        else:
            out_boxes.append(bx)
    return torch.stack(xs), out_boxes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-steps", type=int, default=3000)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pos-fraction", type=float, default=0.75)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--crop", type=int, default=224, help="train on crops of the 416 image (multiple of 32; 416 = none)")
    a = ap.parse_args()
    common.set_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)

    t0 = time.time()
    imgs, ys, boxes, _ = common.load_split([Path(d) for d in a.data], common.DET_SIZE)
    pos_idx = np.flatnonzero(ys == 1)
    neg_idx = np.flatnonzero(ys == 0)
    n_boxes = sum(len(b) for b in boxes)
    print(f"[det] loaded {len(ys)} slices ({len(pos_idx)} positive, {n_boxes} boxes) in {time.time()-t0:.0f}s", flush=True)
    if n_boxes:
        wh = np.concatenate([b for b in boxes if len(b)])[:, 2:] * common.DET_SIZE
        print(f"[det] box w,h px@416: median {np.median(wh, 0)}, p5 {np.percentile(wh, 5, 0)}, p95 {np.percentile(wh, 95, 0)}", flush=True)
    x_all = torch.from_numpy(imgs)

    net = YoloV4Tiny(a.width).to(memory_format=torch.channels_last)
    decay, no_decay = [], []
    for n_, p in net.named_parameters():
        (decay if p.dim() > 1 else no_decay).append(p)
    # darknet cfg: decay=0.0005 (on weights); Adam here instead of SGD momentum 0.949 (from scratch, short budget)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}], lr=a.lr)
    n_pos = max(1, int(round(a.batch * a.pos_fraction)))
    log = []
    t_start = time.time()
    budget = a.minutes * 60
    step = 0
    ema = None
    net.train()
    while True:
        progress = max(step / a.max_steps, (time.time() - t_start) / budget)
        if progress >= 1.0:
            break
        warm = min(1.0, (step + 1) / 100)
        lr = a.lr * warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))
        for pg in opt.param_groups:
            pg["lr"] = lr
        idx = np.concatenate([rng.choice(pos_idx, n_pos), rng.choice(neg_idx, a.batch - n_pos)]) if len(neg_idx) else rng.choice(pos_idx, a.batch)
        x = x_all[idx].float().unsqueeze(1) * common.SCALE
        x, bl = augment(x, [boxes[i] for i in idx], rng)
        if a.crop < common.DET_SIZE:
            x, bl = crop_batch(x, bl, a.crop, rng)
        out = net(x.contiguous(memory_format=torch.channels_last))
        loss, parts = yolo_loss(out, bl, x.shape[-1])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
        opt.step()
        step += 1
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 25 == 0:
            el = time.time() - t_start
            print(f"[det] step {step} t={el:.0f}s lr={lr:.2e} loss={ema:.3f} box(1-giou)={parts['box']:.3f} obj={parts['obj']:.3f}", flush=True)
            log.append({"step": step, "t": round(el, 1), "loss": ema})
    torch.save(net.state_dict(), a.out)
    common.write_json(Path(a.out + ".json"), {
        "steps": step, "seconds": round(time.time() - t_start, 1), "batch": a.batch, "lr": a.lr,
        "width": a.width, "slices": int(len(ys)), "positives": int(len(pos_idx)), "boxes": int(n_boxes), "log": log,
    })
    print(f"[det] done: {step} steps in {time.time()-t_start:.0f}s", flush=True)


if __name__ == "__main__":
    main()
