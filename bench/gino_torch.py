"""PyTorch baseline for `deno task bench step --torch`: one training step of the reference GINO (the model of
docs: in-GNO with mean reduction, lifting, 4 FNO layers with spectral convolution through rfftn, out-GNO with sum
reduction, projection; relative L2 loss; Adam), written the way a PyTorch user gets it fastest on CPU: neighbour
lists computed once per patch, segment reductions vectorised with index_add_, everything batched.

Reads the standardised points from a .npy file (the same points the toolkit's benchmark uses), trains on
random x/y of shape [B, N, 10], and prints one JSON line: step time (median of --steps after one warm-up step),
peak RSS, edge counts and the parameter count.

Usage: python3 bench/gino_torch.py --points P.npy --latent 16 --radius 0.1 --batch 8 [--steps 3] [--threads 2]
       [--device cpu|cuda]   (cuda: the same step on the GPU, timed with torch.cuda.synchronize())
"""
import argparse
import json
import math
import resource
import statistics
import time

import numpy as np
import torch


def embed(p, channels=32, max_positions=10000):
    """Sinusoidal embedding of coordinates [M, 3] -> [M, 192]: channel c*64 + 2k + s, sin for s = 0, cos for 1."""
    k = torch.arange(channels, dtype=torch.float32)
    freqs = (1.0 / max_positions) ** (k / (2 * channels))  # f_k = (1/10000)^(k/64), f_0 = 1
    ang = p[:, :, None] * freqs[None, None, :]  # [M, 3, 32]
    out = torch.stack([torch.sin(ang), torch.cos(ang)], dim=-1)  # [M, 3, 32, 2]
    return out.reshape(p.shape[0], -1)


def radius_edges(data, queries, r, chunk=4096):
    """Edges (query, data) with |q - d| <= r, grouped by query, data index ascending."""
    qs, ds = [], []
    for s in range(0, queries.shape[0], chunk):
        d2 = torch.cdist(queries[s:s + chunk].double(), data.double()) ** 2
        q, d = torch.nonzero(d2 <= r * r, as_tuple=True)
        qs.append(q + s)
        ds.append(d)
    return torch.cat(qs), torch.cat(ds)


class KernelMLP(torch.nn.Module):
    def __init__(self, widths):
        super().__init__()
        self.fcs = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, h):
        for i, fc in enumerate(self.fcs):
            h = fc(h)
            if i < len(self.fcs) - 1:
                h = torch.nn.functional.gelu(h)
        return h


class GNO(torch.nn.Module):
    """Linear kernel integral: out[b, q] = reduce_{j in A(q)} k(emb(y_j), emb(x_q)) * f[b, j]."""

    def __init__(self, out_channels, mean):
        super().__init__()
        self.mlp = KernelMLP([384, 32, 64, 32, out_channels])
        self.mean = mean

    def forward(self, emb_data, emb_query, q, j, f, n_queries):
        k = self.mlp(torch.cat([emb_data[j], emb_query[q]], dim=1))  # [E, C]
        msg = f[:, j, :] * k[None]  # [B, E, C]
        out = torch.zeros(f.shape[0], n_queries, k.shape[1], dtype=f.dtype, device=f.device)
        out.index_add_(1, q, msg)
        if self.mean:
            counts = torch.bincount(q, minlength=n_queries).clamp(min=1).to(f.dtype)
            out = out / counts[None, :, None]
        return out


class SpectralConv(torch.nn.Module):
    def __init__(self, c, modes=(8, 8, 5)):
        super().__init__()
        scale = math.sqrt(2.0 / (c + c))
        self.weight = torch.nn.Parameter(torch.randn(c, c, *modes, dtype=torch.cfloat) * scale)
        self.bias = torch.nn.Parameter(scale * torch.randn(1, c, 1, 1, 1))
        self.modes = modes

    def forward(self, h):
        B, C, G = h.shape[0], h.shape[1], h.shape[2]
        X = torch.fft.rfftn(h, dim=(-3, -2, -1), norm="forward")  # [B, C, G, G, G/2+1]
        mx, my, mz = self.modes
        ix = torch.tensor(list(range(G - mx // 2, G)) + list(range(0, mx // 2)), device=h.device)
        iy = torch.tensor(list(range(G - my // 2, G)) + list(range(0, my // 2)), device=h.device)
        Xk = X[:, :, ix][:, :, :, iy][..., :mz]  # [B, C, 8, 8, 5], index a <-> frequency a - 4
        Yk = torch.einsum("bixyz,ioxyz->boxyz", Xk, self.weight)
        Y = torch.zeros(B, C, G, G, G // 2 + 1, dtype=torch.cfloat, device=h.device)
        Y[:, :, ix[:, None], iy[None, :], :mz] = Yk
        return torch.fft.irfftn(Y, s=(G, G, G), dim=(-3, -2, -1), norm="forward") + self.bias


class Gino(torch.nn.Module):
    def __init__(self, t_in=10, t_out=10, c=64, layers=4):
        super().__init__()
        self.in_gno = GNO(t_in, mean=True)
        self.lifting = KernelMLP([t_in, c, c])
        self.convs = torch.nn.ModuleList(SpectralConv(c) for _ in range(layers))
        self.skips = torch.nn.ModuleList(torch.nn.Conv3d(c, c, 1, bias=False) for _ in range(layers))
        self.out_gno = GNO(c, mean=False)
        self.projection = KernelMLP([c, 2 * c, t_out])

    def forward(self, geo, x):
        B, G = x.shape[0], geo["G"]
        a = self.in_gno(geo["emb_p"], geo["emb_l"], geo["in_q"], geo["in_j"], x, G ** 3)  # [B, Q, 10]
        h = self.lifting(a).permute(0, 2, 1).reshape(B, -1, G, G, G)
        for i, (conv, skip) in enumerate(zip(self.convs, self.skips)):
            h = conv(h) + skip(h)
            if i < len(self.convs) - 1:
                h = torch.nn.functional.gelu(h)
        lat = h.reshape(B, h.shape[1], -1).permute(0, 2, 1)  # [B, Q, 64]
        o = self.out_gno(geo["emb_l"], geo["emb_p"], geo["out_q"], geo["out_j"], lat, x.shape[1])
        return self.projection(o)


def rel_l2(pred, y):
    return (torch.linalg.norm(pred - y, dim=-1) / torch.linalg.norm(y, dim=-1)).mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", required=True)
    ap.add_argument("--latent", type=int, default=16)
    ap.add_argument("--radius", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    a = ap.parse_args()
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    p = torch.from_numpy(np.load(a.points).astype(np.float32))
    N, G = p.shape[0], a.latent
    axes = [torch.linspace(p[:, d].min().item(), p[:, d].max().item(), G) for d in range(3)]
    lat = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)
    in_q, in_j = radius_edges(p, lat, a.radius)
    out_q, out_j = radius_edges(lat, p, a.radius)
    geo = {"G": G, "emb_p": embed(p), "emb_l": embed(lat), "in_q": in_q, "in_j": in_j, "out_q": out_q,
           "out_j": out_j}
    geo = {k: (v.to(dev) if torch.is_tensor(v) else v) for k, v in geo.items()}
    model = Gino().to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(a.batch, N, 10).to(dev)
    y = torch.randn(a.batch, N, 10).to(dev)
    times = []
    for s in range(a.steps + 1):
        sync()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = rel_l2(model(geo, x), y)
        loss.backward()
        opt.step()
        loss.item()
        sync()
        if s > 0:
            times.append((time.perf_counter() - t0) * 1000)
    params = sum(t.numel() * (2 if t.is_complex() else 1) for t in model.parameters())
    print(json.dumps({
        "step_ms": statistics.median(times),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "edges_in": int(in_q.numel()),
        "edges_out": int(out_q.numel()),
        "parameters": params,
        "torch": torch.__version__,
        "threads": a.threads,
        "device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
        "gpu_peak_mb": torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None,
    }))


if __name__ == "__main__":
    main()
