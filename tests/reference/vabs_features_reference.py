"""PyTorch reference for aa-sparse-attn's Vabs-Net edge featurisation, written from the official
data pipeline and layers (vabs/data/protein_pretrain_dataset.py `compute_sin_cos_res` with
`use_nerf_encoding`, vabs/models/layers.py `VecEdgeFeature`):

- direction encoding of a vector v: angles atan2(|v_z|, |v_xy|), atan2(|v_y|, |v_xz|),
  atan2(|v_xy|, |v_yz|), each as [θ, sin 2^k θ, cos 2^k θ] for k < 4, then every coordinate as
  [x, sin 2^k x, cos 2^k x] for k < 10 (coordinate-major) — 90 values;
- the local frame of residue i from its backbone N, CA, C (flattened backbone dX, u0 = CA−N,
  u1 = C−CA, n0 = u0×u1, b1 = u0−u1, rows b1, n0, b1×n0), vectors rotated into it and
  normalised;
- VecEdgeFeature: Linear → LeakyReLU → LayerNorm → Linear → LeakyReLU → LayerNorm → Linear on
  [edge features, absolute directions, local directions].

Edges: CA(i) → CA(j) vectors of 1UBQ for j = i+1..i+3, in the frame of residue i.

    /tmp/refenv/bin/python tests/reference/vabs_features_reference.py \
        data/fetched/structures/pdbrust/examples/pdb_files/1UBQ.pdb crates/aa-sparse-attn/tests/fixtures
"""
import sys

import gemmi
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

pdb, out_dir = sys.argv[1], sys.argv[2]
torch.manual_seed(2)
st = gemmi.read_structure(pdb)
res = [r for r in st[0]["A"] if r.name != "HOH"]
X = torch.tensor([[[r[n][0].pos.x, r[n][0].pos.y, r[n][0].pos.z] for n in ("N", "CA", "C")] for r in res],
                 dtype=torch.float32)  # [N, 3, 3]
n_res = X.shape[0]


def normalize(t, dim=-1):
    return torch.nan_to_num(t / torch.norm(t, dim=dim, keepdim=True))


# Official frame construction on the flattened backbone.
flat = X.reshape(1, 3 * n_res, 3)
dX = flat[:, 1:] - flat[:, :-1]
U = normalize(dX)
u_0, u_1 = U[:, :-2], U[:, 1:-1]
n_0 = normalize(torch.cross(u_0, u_1, dim=-1))[:, ::3]
b_1 = normalize(u_0 - u_1)[:, ::3]
Q = torch.stack((b_1, n_0, torch.cross(b_1, n_0, dim=-1)), 2)[0]  # [N, 3, 3], rows

src, dst = [], []
for i in range(n_res):
    for j in range(i + 1, min(i + 4, n_res)):
        src.append(j)
        dst.append(i)
src, dst = torch.tensor(src), torch.tensor(dst)
ca = X[:, 1]
vec = ca[src] - ca[dst]
local = normalize(torch.matmul(Q[dst], vec[..., None]).squeeze(-1))

theta_bands = 2 ** torch.linspace(0, 3, 4)
xyz_bands = 2 ** torch.linspace(0, 9, 10)


def nerf(x, bands):
    out = [x]
    for f in bands:
        out += [torch.sin(f * x), torch.cos(f * x)]
    return torch.stack(out, -1)


def encode(v):
    a_xy = torch.atan2(torch.norm(v[:, 2:3], dim=1), torch.norm(v[:, :2], dim=1))
    a_xz = torch.atan2(torch.norm(v[:, 1:2], dim=1), torch.norm(v[:, [0, 2]], dim=1))
    a_yz = torch.atan2(torch.norm(v[:, :2], dim=1), torch.norm(v[:, [1, 2]], dim=1))
    parts = [nerf(torch.atan2(torch.sin(a), torch.cos(a)), theta_bands) for a in (a_xy, a_xz, a_yz)]
    parts.append(nerf(v, xyz_bands).reshape(-1, 63))
    return torch.cat(parts, -1)


abs_feat, local_feat = encode(vec), encode(local)
edge_dim = 12
base = torch.randn(len(src), edge_dim)
embed = nn.Sequential(
    nn.Linear(edge_dim + 180, edge_dim), nn.LeakyReLU(), nn.LayerNorm(edge_dim),
    nn.Linear(edge_dim, edge_dim), nn.LeakyReLU(), nn.LayerNorm(edge_dim),
    nn.Linear(edge_dim, edge_dim),
)
with torch.no_grad():
    for m in embed:
        if isinstance(m, nn.LayerNorm):
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0, 0.1)
    out = embed(torch.cat([base, abs_feat, local_feat], -1))
tensors = {f"embed.{k}": v.contiguous() for k, v in embed.state_dict().items()}
tensors.update({
    "input.backbone": X.contiguous(), "input.src": src.to(torch.int64), "input.dst": dst.to(torch.int64),
    "input.base": base, "expected.frames": Q.contiguous(), "expected.absolute": abs_feat.contiguous(),
    "expected.local": local_feat.contiguous(), "expected.output": out.contiguous(),
})
save_file(tensors, f"{out_dir}/vabs_features.safetensors")
print(len(src), "edges")
