"""PyTorch baseline for `deno task bench tta --torch`: the reference training recipe on a patch folder, timed to a
target validation loss. The reference GINO of bench/gino_torch.py (its model, output and sizes), Adam (lr 1e-3)
with ExponentialLR(gamma 0.95) stepped every 5 epochs, batches of windows of one patch, the relative L2 loss on the
core points, validation after every epoch.

The windows and the normalisation are the toolkit's (given as JSON by the caller, so both sides see the same
standardised values): for each patch, the first floor(T (1 - val_ratio)) steps train and the rest validate; a
window is T_in steps followed by T_out steps.

Prints one JSON line per epoch: {"epoch", "train_loss", "val_loss", "seconds", "steps"} (seconds of training since
the first step, validation included), and a last line {"done": true, "parameters", "torch", "threads", "steps"}.

Usage: python3 bench/gino_torch_train.py --patches DIR/filter_patch --spec spec.json [--budget 300] [--epochs 100]
       [--threads 2] [--device cpu|cuda]
spec.json: {"column": 0, "t_in": 10, "t_out": 10, "val_ratio": 0.3, "batch": 32, "latent": 32, "radius": 0.1,
            "coord_mean": [..3], "coord_std": [..3], "mean": m, "std": s, "seed": 42}
"""
import argparse
import glob
import json
import os
import random
import time

import numpy as np
import torch

from gino_torch import Gino, embed, radius_edges


def load_patches(folder, spec):
    cm, cs = np.array(spec["coord_mean"]), np.array(spec["coord_std"])
    out = []
    for d in sorted(glob.glob(os.path.join(folder, "patch_*"))):
        core = np.load(os.path.join(d, "core_coords.npy")).astype(np.float64)
        ghost = np.load(os.path.join(d, "ghost_coords.npy")).astype(np.float64)
        obs = np.concatenate([np.load(os.path.join(d, "core_obs.npy")), np.load(os.path.join(d, "ghost_obs.npy"))],
                             axis=1)[..., spec["column"]].astype(np.float64)  # [T, N]
        pts = (np.concatenate([core, ghost]) - cm) / cs
        vals = ((obs - spec["mean"]) / spec["std"]).T.astype(np.float32)  # [N, T]
        out.append({"points": torch.from_numpy(pts.astype(np.float32)), "values": torch.from_numpy(vals),
                    "core": core.shape[0], "steps": obs.shape[0]})
    return out


def geometry(points, G, r, dev):
    axes = [torch.linspace(points[:, d].min().item(), points[:, d].max().item(), G) for d in range(3)]
    lat = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)
    in_q, in_j = radius_edges(points, lat, r)
    out_q, out_j = radius_edges(lat, points, r)
    geo = {"G": G, "emb_p": embed(points), "emb_l": embed(lat), "in_q": in_q, "in_j": in_j, "out_q": out_q,
           "out_j": out_j}
    return {k: (v.to(dev) if torch.is_tensor(v) else v) for k, v in geo.items()}


def windows(p, part, spec):
    span = spec["t_in"] + spec["t_out"]
    train = int(np.floor(p["steps"] * (1 - spec["val_ratio"])))
    lo, hi = (0, train) if part == "train" else (train, p["steps"])
    return list(range(lo, hi - span + 1))


def batch_of(p, starts, spec, dev):
    t_in, t_out = spec["t_in"], spec["t_out"]
    x = torch.stack([p["values"][:, t:t + t_in] for t in starts])  # [B, N, T_in]
    y = torch.stack([p["values"][:, t + t_in:t + t_in + t_out] for t in starts])  # [B, N, T_out]
    return x.to(dev), y.to(dev)


def rel_l2(pred, y, core):
    return (torch.linalg.norm(pred[:, :core] - y[:, :core], dim=-1) / torch.linalg.norm(y[:, :core], dim=-1)).mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--patches", required=True)
    ap.add_argument("--spec", required=True)
    ap.add_argument("--budget", type=float, default=300.0, help="seconds of training")
    ap.add_argument("--epochs", type=int, default=1000)
    ap.add_argument("--target", type=float, default=0.0, help="stop at this validation loss")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    spec = json.load(open(a.spec))
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    torch.set_num_threads(a.threads)
    torch.manual_seed(spec.get("seed", 42))
    rng = random.Random(spec.get("seed", 42))
    patches = load_patches(a.patches, spec)
    geos = [geometry(p["points"], spec["latent"], spec["radius"], dev) for p in patches]
    model = Gino(spec["t_in"], spec["t_out"]).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.95)
    B = spec["batch"]
    train_batches = []
    for i, p in enumerate(patches):
        w = windows(p, "train", spec)
        train_batches += [(i, w[s:s + B]) for s in range(0, len(w), B)]
    val_batches = []
    for i, p in enumerate(patches):
        w = windows(p, "val", spec)
        val_batches += [(i, w[s:s + B]) for s in range(0, len(w), B)]
    spent, steps = 0.0, 0
    for epoch in range(1, a.epochs + 1):
        sync()
        t0 = time.perf_counter()
        rng.shuffle(train_batches)
        total, count = 0.0, 0
        model.train()
        for i, starts in train_batches:
            x, y = batch_of(patches[i], starts, spec, dev)
            opt.zero_grad(set_to_none=True)
            loss = rel_l2(model(geos[i], x), y, patches[i]["core"])
            loss.backward()
            opt.step()
            steps += 1
            total += loss.item() * len(starts)
            count += len(starts)
        if epoch % 5 == 0:
            sched.step()
        model.eval()
        vtotal, vcount = 0.0, 0
        with torch.no_grad():
            for i, starts in val_batches:
                x, y = batch_of(patches[i], starts, spec, dev)
                vtotal += rel_l2(model(geos[i], x), y, patches[i]["core"]).item() * len(starts)
                vcount += len(starts)
        sync()
        spent += time.perf_counter() - t0
        val = vtotal / max(vcount, 1)
        print(json.dumps({"epoch": epoch, "train_loss": total / max(count, 1), "val_loss": val,
                          "seconds": spent, "steps": steps}), flush=True)
        if spent >= a.budget or (a.target > 0 and val <= a.target):
            break
    params = sum(t.numel() * (2 if t.is_complex() else 1) for t in model.parameters())
    print(json.dumps({"done": True, "parameters": params, "torch": torch.__version__, "threads": a.threads,
                      "steps": steps}))


if __name__ == "__main__":
    main()
