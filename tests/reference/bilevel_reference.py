"""PyTorch reference for aa-sparse-attn's BilevelLayer, written from the official Vabs-Net
`TransformerEncoderLayer` (vabs/models/layers.py, preln = 0, no pair updates, no virtual
attention): atom track `aa_attn` over atom edges → residual → `aa_attn_layer_norm`; `aa_ffn`
(Linear → GELU → Linear) → residual → `aa_final_layer_norm`; unit track on the anchor atoms
(`res_mask`): `self_attn` over unit edges → residual → `self_attn_layer_norm`; `ffn` → residual →
`final_layer_norm`; anchors' rows replaced. Attention = the official `Attention` (see
edge_attention_reference.py). Graph: 1UBQ heavy atoms (gemmi), atom kNN k = 10 (with self),
CA atoms as anchors, CA kNN k = 8 (with self); edge features are Gaussian-smeared distances.

    /tmp/refenv/bin/python tests/reference/bilevel_reference.py \
        data/fetched/structures/pdbrust/examples/pdb_files/1UBQ.pdb crates/aa-sparse-attn/tests/fixtures
"""
import sys

import gemmi
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

pdb, out_dir = sys.argv[1], sys.argv[2]
torch.manual_seed(1)
st = gemmi.read_structure(pdb)
atoms = [(a, r) for r in st[0]["A"] if r.name != "HOH" for a in r if a.element.name != "H"]
xyz = np.array([[a.pos.x, a.pos.y, a.pos.z] for a, _ in atoms])
anchors = [i for i, (a, r) in enumerate(atoms) if a.name == "CA"]
N, U = len(atoms), len(anchors)


def knn(points, k):
    d2 = ((points[:, None] - points[None]) ** 2).sum(-1)
    src, dst = [], []
    for i in range(len(points)):
        for j in np.argsort(d2[i], kind="stable")[:k]:
            src.append(int(j))
            dst.append(i)
    d = np.sqrt(d2[dst, src])
    return torch.tensor(src), torch.tensor(dst), torch.tensor(d, dtype=torch.float32)


def smear(d, width):
    return torch.stack([torch.exp(-((d - c) ** 2) / 2.0) for c in np.linspace(0, 10, width)], dim=1)


a_src, a_dst, a_d = knn(xyz, 10)
u_src, u_dst, u_d = knn(xyz[anchors], 8)
dim, heads, ffn_mult, aed, ued = 32, 4, 2, 6, 5
hd = dim // heads
a_feat, u_feat = smear(a_d, aed), smear(u_d, ued)
x0 = torch.randn(N, dim)
W = {}


def attn_params(p, edge_dim):
    W[p + "linear_q.weight"] = torch.randn(dim, dim) / dim ** 0.5
    W[p + "linear_k.weight"] = torch.randn(dim, dim) / dim ** 0.5
    W[p + "linear_v.weight"] = torch.randn(dim, dim) / dim ** 0.5
    W[p + "linear_o.weight"] = torch.randn(dim, dim) / dim ** 0.5
    W[p + "linear_o.bias"] = 0.1 * torch.randn(dim)
    W[p + "linear_bias.weight"] = torch.randn(heads, edge_dim)
    W[p + "linear_bias.bias"] = 0.1 * torch.randn(heads)


def norm_params(p):
    W[p + "weight"] = 1 + 0.1 * torch.randn(dim)
    W[p + "bias"] = 0.1 * torch.randn(dim)


def ffn_params(p):
    W[p + "linear_1.weight"] = torch.randn(ffn_mult * dim, dim) / dim ** 0.5
    W[p + "linear_1.bias"] = 0.1 * torch.randn(ffn_mult * dim)
    W[p + "linear_2.weight"] = torch.randn(dim, ffn_mult * dim) / (ffn_mult * dim) ** 0.5
    W[p + "linear_2.bias"] = 0.1 * torch.randn(dim)


attn_params("aa_attn.", aed)
norm_params("aa_attn_layer_norm.")
ffn_params("aa_ffn.")
norm_params("aa_final_layer_norm.")
attn_params("self_attn.", ued)
norm_params("self_attn_layer_norm.")
ffn_params("ffn.")
norm_params("final_layer_norm.")


def lin(t, p):
    return F.linear(t, W[p + ".weight"], W.get(p + ".bias"))


def attention(p, x, src, dst, feat):
    n = x.shape[0]
    q = (lin(x, p + "linear_q") * hd ** -0.5).view(n, heads, hd)[dst]
    k = lin(x, p + "linear_k").view(n, heads, hd)[src]
    v = lin(x, p + "linear_v").view(n, heads, hd)[src]
    s = (q * k).sum(-1) + lin(feat, p + "linear_bias")
    mx = torch.full((n, heads), -torch.inf).scatter_reduce(0, dst[:, None].expand(-1, heads), s, "amax")
    ex = torch.exp(s - mx[dst])
    alpha = ex / torch.zeros(n, heads).index_add(0, dst, ex)[dst]
    o = torch.zeros(n, heads, hd).index_add(0, dst, alpha[:, :, None] * v).reshape(n, dim)
    return lin(o, p + "linear_o")


def ln(x, p):
    return F.layer_norm(x, (dim,), W[p + ".weight"], W[p + ".bias"], 1e-5)


def ffn(x, p):
    return lin(F.gelu(lin(x, p + ".linear_1")), p + ".linear_2")


a = ln(x0 + attention("aa_attn.", x0, a_src, a_dst, a_feat), "aa_attn_layer_norm")
a = ln(a + ffn(a, "aa_ffn"), "aa_final_layer_norm")
x = a[anchors]
x = ln(x + attention("self_attn.", x, u_src, u_dst, u_feat), "self_attn_layer_norm")
x = ln(x + ffn(x, "ffn"), "final_layer_norm")
out = a.clone()
out[anchors] = x
t = {"layer." + k: v.contiguous() for k, v in W.items()}
t.update({"input.atoms": x0, "input.atom_src": a_src, "input.atom_dst": a_dst, "input.atom_features": a_feat,
          "input.anchors": torch.tensor(anchors), "input.unit_src": u_src, "input.unit_dst": u_dst,
          "input.unit_features": u_feat, "expected.output": out})
save_file(t, f"{out_dir}/bilevel.safetensors")
print(f"{N} atoms, {U} anchors, {len(a_src)} atom edges, {len(u_src)} unit edges")
