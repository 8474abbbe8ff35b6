"""Independent PyTorch reference for the GIGP readout (`aa_encoder::readout::Gigp`).

Writes crates/aa-encoder/tests/fixtures/gigp/gigp.safetensors: unit rows, unit positions,
each row's window, training orbit values, random GIGP weights (non-identity: W2, b2 and the bin
weights are random) and what the readout must give — the fitted centres, the centroid-distance
orbit values, and the pooled rows for nearest-centre membership and for membership within
delta = 0.7 Å (equal split among bins, nearest centre when none). Written from the definition
in the Rust module's documentation, not from its code.

    python3 tests/reference/gigp_reference.py      # torch, numpy, safetensors
"""
import pathlib

import numpy as np
import torch
from safetensors.torch import save_file

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/aa-encoder/tests/fixtures/gigp/gigp.safetensors"
g = torch.Generator().manual_seed(20261202)
K, D, H = 5, 6, 4
sizes = [7, 11, 5]
unit_window = torch.cat([torch.full((n,), i, dtype=torch.int64) for i, n in enumerate(sizes)])
U = int(unit_window.numel())
x = torch.randn(U, D, generator=g, dtype=torch.float64)
positions = torch.randn(U, 3, generator=g, dtype=torch.float64) * 4.0 + 10.0
train_values = torch.rand(200, generator=g, dtype=torch.float64) * 6.0

# Centres: the (k + 1/2)/K quantiles of the sorted training values, nearest rank (floor).
v = np.sort(train_values.numpy().astype(np.float32))
centres = torch.tensor([v[min(int((k + 0.5) / K * len(v)), len(v) - 1)] for k in range(K)], dtype=torch.float64)

# Orbit values: distance from the window's centroid.
values = torch.empty(U, dtype=torch.float64)
for w in range(len(sizes)):
    m = unit_window == w
    c = positions[m].mean(0)
    values[m] = (positions[m] - c).norm(dim=1)

w1 = torch.randn(K, D, H, generator=g, dtype=torch.float64) * 0.4
b1 = torch.randn(K, 1, H, generator=g, dtype=torch.float64) * 0.1
w2 = torch.randn(K, H, D, generator=g, dtype=torch.float64) * 0.4
b2 = torch.randn(K, 1, D, generator=g, dtype=torch.float64) * 0.1
weights = torch.rand(K, generator=g, dtype=torch.float64) + 0.5


def membership(values, centres, delta):
    """[U, K] weights: within delta split equally, else the nearest centre (first on ties)."""
    dist = (values[:, None] - centres[None, :]).abs()
    m = torch.zeros_like(dist)
    for i in range(dist.shape[0]):
        near = (dist[i] <= delta).nonzero().flatten() if delta is not None else torch.tensor([], dtype=torch.int64)
        if near.numel() == 0:
            m[i, int(torch.argmin(dist[i]))] = 1.0  # argmin returns the first minimum
        else:
            m[i, near] = 1.0 / near.numel()
    return m


def pool(x, values, centres, delta):
    m = membership(values, centres, delta)
    out = []
    for w in range(len(sizes)):
        rows = unit_window == w
        s = torch.einsum("uk,ud->kd", m[rows], x[rows])  # [K, D] per-bin sums
        h = torch.relu(torch.einsum("kd,kdh->kh", s, w1) + b1[:, 0])
        y = s + torch.einsum("kh,khd->kd", h, w2) + b2[:, 0]
        out.append((weights[:, None] * y).sum(0) / rows.sum())
    return torch.stack(out)


f32 = lambda t: t.to(torch.float32).contiguous()
OUT.parent.mkdir(parents=True, exist_ok=True)
save_file(
    {
        "x": f32(x),
        "positions": f32(positions),
        "unit_window": unit_window.to(torch.int64),
        "train_values": f32(train_values),
        "orbit_mlp.w1": f32(w1),
        "orbit_mlp.b1": f32(b1),
        "orbit_mlp.w2": f32(w2),
        "orbit_mlp.b2": f32(b2),
        "orbit_weights": f32(weights),
        "expected_centres": f32(centres),
        "expected_values": f32(values),
        "expected_nearest": f32(pool(x, values, centres, None)),
        "expected_delta": f32(pool(x, values, centres, 0.7)),
    },
    str(OUT),
)
print(f"wrote {OUT}")
