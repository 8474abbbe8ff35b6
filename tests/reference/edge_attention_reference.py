"""PyTorch reference for aa-sparse-attn's EdgeAttention, written from the official Vabs-Net
`Attention` module (vabs/models/layers.py): q/k/v projections without bias, q scaled by
head_dim^-1/2, per-edge scores q_dst·k_src plus a per-head bias from edge features, softmax over
each destination's incoming edges, sum of alpha·v_src per destination, sigmoid gate, output
projection. The segment softmax/sum use plain torch (scatter_reduce amax, index_add), not
torch_scatter. Graph: the kNN (k = 8, plus self loops) of 1UBQ's CA atoms, read with gemmi.

    /tmp/refenv/bin/python tests/reference/edge_attention_reference.py \
        data/fetched/structures/pdbrust/examples/pdb_files/1UBQ.pdb crates/aa-sparse-attn/tests/fixtures

Writes edge_attention.safetensors: the weights under the official names, the inputs (x, src,
dst, edge features) and the expected output and attention weights; and, for the Gaussian edge
encoder (official GaussianKernel + NonLinear), its weights (`gaussian_encoder.*`), the CA–CA
distances, the residue-type pairs and the expected features.
"""
import sys

import gemmi
import numpy as np
import torch
from safetensors.torch import save_file

pdb, out_dir = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
st = gemmi.read_structure(pdb)
ca = np.array([[a.pos.x, a.pos.y, a.pos.z] for r in st[0]["A"] for a in r if a.name == "CA"], dtype=np.float64)
n = len(ca)
d2 = ((ca[:, None, :] - ca[None, :, :]) ** 2).sum(-1)
src, dst = [], []
for i in range(n):
    for j in np.argsort(d2[i])[:9]:  # itself and its 8 nearest CA atoms
        src.append(int(j))
        dst.append(i)
src, dst = torch.tensor(src), torch.tensor(dst)
E = len(src)
dim, heads, head_dim, edge_dim = 32, 4, 8, 6
dist = torch.tensor(np.sqrt(d2[dst.numpy(), src.numpy()]), dtype=torch.float32)
edge_feat = torch.stack([torch.exp(-((dist - c) ** 2) / 4.0) for c in np.linspace(0, 12, edge_dim)], dim=1)
x = torch.randn(n, dim)
W = {
    "linear_q.weight": torch.randn(heads * head_dim, dim) / dim ** 0.5,
    "linear_k.weight": torch.randn(heads * head_dim, dim) / dim ** 0.5,
    "linear_v.weight": torch.randn(heads * head_dim, dim) / dim ** 0.5,
    "linear_o.weight": torch.randn(dim, heads * head_dim) / (heads * head_dim) ** 0.5,
    "linear_o.bias": torch.randn(dim) * 0.1,
    "linear_g.weight": torch.randn(heads * head_dim, dim) / dim ** 0.5,
    "linear_g.bias": torch.randn(heads * head_dim) * 0.1,
    "linear_bias.weight": torch.randn(heads, edge_dim),
    "linear_bias.bias": torch.randn(heads) * 0.1,
}
lin = lambda t, name: torch.nn.functional.linear(t, W[name + ".weight"], W.get(name + ".bias"))
q = (lin(x, "linear_q") * head_dim ** -0.5).view(n, heads, head_dim)[dst]
k = lin(x, "linear_k").view(n, heads, head_dim)[src]
v = lin(x, "linear_v").view(n, heads, head_dim)[src]
scores = (q * k).sum(-1) + lin(edge_feat, "linear_bias")  # [E, H]
mx = torch.full((n, heads), -torch.inf).scatter_reduce(0, dst[:, None].expand(-1, heads), scores, "amax")
ex = torch.exp(scores - mx[dst])
alpha = ex / torch.zeros(n, heads).index_add(0, dst, ex)[dst]
o = torch.zeros(n, heads, head_dim).index_add(0, dst, alpha[:, :, None] * v).reshape(n, heads * head_dim)
o = torch.sigmoid(lin(x, "linear_g")) * o
y = lin(o, "linear_o")
tensors = {k: v.contiguous() for k, v in W.items()}
tensors.update({"input.x": x, "input.src": src.to(torch.int64), "input.dst": dst.to(torch.int64),
                "input.edge_features": edge_feat, "expected.output": y, "expected.alpha": alpha})
# Vabs-Net's GaussianKernel + NonLinear (SE3InvariantKernel) on the same edges: 128 kernels over
# 0–9 Å, std = mean[1] - mean[0], mul/bias embeddings over the two endpoint type ids (here the
# residue type of each CA, 1..20; 0 is padding), Linear(K, K) → GELU → Linear(K, 16).
K, num_pair, pair_dim = 128, 24, 16
AA = "ALA ARG ASN ASP CYS GLN GLU GLY HIS ILE LEU LYS MET PHE PRO SER THR TRP TYR VAL".split()
res_type = torch.tensor([1 + AA.index(r.name) for r in st[0]["A"] if r.find_atom("CA", "*")], dtype=torch.int64)[:n]
pair = torch.stack([res_type[dst], res_type[src]], dim=1)  # [E, 2]
G = {
    "gaussian.mul.weight": 1.0 + 0.3 * torch.randn(num_pair, 1),
    "gaussian.bias.weight": 0.3 * torch.randn(num_pair, 1),
    "out_proj.layer1.weight": torch.randn(K, K) / K ** 0.5,
    "out_proj.layer1.bias": 0.1 * torch.randn(K),
    "out_proj.layer2.weight": torch.randn(pair_dim, K) / K ** 0.5,
    "out_proj.layer2.bias": 0.1 * torch.randn(pair_dim),
}
mean = torch.linspace(0.0, 9.0, K)
std = (mean[1] - mean[0]).item()
mul = G["gaussian.mul.weight"][pair].abs().sum(dim=-2)
gb = G["gaussian.bias.weight"][pair].sum(dim=-2)
gx = (mul * dist.unsqueeze(-1) + gb).expand(-1, K)
gauss = torch.exp(-0.5 * (((gx - mean) / std) ** 2)) / ((2 * 3.14159) ** 0.5 * std)
h = torch.nn.functional.gelu(torch.nn.functional.linear(gauss, G["out_proj.layer1.weight"], G["out_proj.layer1.bias"]))
gout = torch.nn.functional.linear(h, G["out_proj.layer2.weight"], G["out_proj.layer2.bias"])
tensors.update({"gaussian_encoder." + k: v.contiguous() for k, v in G.items()})
tensors.update({"input.distance": dist, "input.pair_types": pair, "expected.gaussian": gout})
save_file(tensors, f"{out_dir}/edge_attention.safetensors")
print(f"{n} nodes, {E} edges; output norm {y.norm():.4f}")
