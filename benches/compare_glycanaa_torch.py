"""GlycanAA in PyTorch, two ways, on the same 256-glycan batch as `cargo bench --bench glycanaa`:

(b) the official design: TorchDrug's RelationalGraphConv aggregates into an [N·R, D] buffer and
    multiplies the dense [N, R·D] concatenation (R = 89, mostly zero columns) by Linear(R·D, D);
(c) an efficient PyTorch version of the same math: per present relation, index_add_ means over
    destination nodes that receive edges, one matmul with the present weight blocks.

Both: paper configuration (3 × 128, BatchNorm, exact GELU, concat, mean+max over monosaccharide
nodes), random weights, torch.set_num_threads(2). Prints medians (s) of the forward pass in
eval mode under no_grad, and of a training step (forward in train mode + linear head +
cross-entropy + backward + Adam step).

    cargo run --release -p allatom-benches --example export_glycanaa_batch -- /tmp/glycanaa_batch.json
    /tmp/refenv/bin/pip install torch
    /tmp/refenv/bin/python benches/compare_glycanaa_torch.py /tmp/glycanaa_batch.json
"""
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

torch.set_num_threads(2)
torch.manual_seed(0)


class DenseRGConv(nn.Module):
    """TorchDrug RelationalGraphConv as in the official code (dense over all relations)."""

    def __init__(self, d_in, d_out, R):
        super().__init__()
        self.R, self.d_in = R, d_in
        self.linear = nn.Linear(R * d_in, d_out)
        self.self_loop = nn.Linear(d_in, d_out)
        self.batch_norm = nn.BatchNorm1d(d_out)

    def forward(self, x, edges):
        n = x.shape[0]
        src, dst, rel = edges
        node_out = dst * self.R + rel
        update = torch.zeros(n * self.R, self.d_in).index_add_(0, node_out, x[src])
        count = torch.zeros(n * self.R, 1).index_add_(0, node_out, torch.ones(len(src), 1))
        update = (update / (count + 1e-10)).view(n, self.R * self.d_in)
        return F.gelu(self.batch_norm(self.linear(update) + self.self_loop(x)))


class SparseRGConv(DenseRGConv):
    """The same weights and math, computed only for present relations and active rows."""

    def prepare(self, edges, n):
        src, dst, rel = edges
        active = torch.unique(dst)
        pos = torch.full((n,), -1, dtype=torch.long)
        pos[active] = torch.arange(len(active))
        groups = []
        for r in torch.unique(rel).tolist():
            m = rel == r
            d = pos[dst[m]]
            cnt = torch.zeros(len(active), 1).index_add_(0, d, torch.ones(int(m.sum()), 1))
            groups.append((r, src[m], d, 1.0 / cnt.clamp(min=1)))
        return active, groups

    def forward(self, x, prepared):
        active, groups = prepared
        out = self.self_loop(x) + self.linear.bias
        if groups:
            aggs, blocks = [], []
            for r, s, d, inv in groups:
                aggs.append(torch.zeros(len(active), self.d_in).index_add_(0, d, x[s]) * inv)
                blocks.append(self.linear.weight[:, r * self.d_in:(r + 1) * self.d_in])
            out = out.index_add(0, active, torch.cat(aggs, 1) @ torch.cat(blocks, 1).t())
        return F.gelu(self.batch_norm(out))


class GlycanAA(nn.Module):
    def __init__(self, conv, num_unit, R, dim=128, layers=3):
        super().__init__()
        self.embedding = nn.Embedding(num_unit, dim)
        self.atom_layers = nn.ModuleList([conv(dim, dim, R) for _ in range(layers)])
        self.cross_layers = nn.ModuleList([conv(dim, dim, R) for _ in range(layers)])
        self.mono_layers = nn.ModuleList([conv(dim, dim, R) for _ in range(layers)])

    def forward(self, b):
        x = self.embedding(b["node_type"])
        atom = b["is_atom"].unsqueeze(1)
        hiddens = []
        for a, c, m in zip(self.atom_layers, self.cross_layers, self.mono_layers):
            h1 = a(x, b["atom"])
            h2 = c(torch.where(atom, h1, x), b["cross"])
            h3 = m(torch.where(atom, torch.zeros_like(h2), h2), b["mono"])
            x = torch.where(atom, h1, h3)
            hiddens.append(x)
        feat = torch.cat(hiddens, 1)[b["mono_nodes"]]
        g, nb = b["mono_graph"], b["num_graphs"]
        cnt = torch.zeros(nb, 1).index_add_(0, g, torch.ones(len(g), 1))
        mean = torch.zeros(nb, feat.shape[1]).index_add_(0, g, feat) / cnt
        mx = torch.full((nb, feat.shape[1]), -float("inf")).scatter_reduce(0, g.unsqueeze(1).expand_as(feat), feat, "amax")
        return torch.cat([mean, mx], 1)


def load(path):
    data = json.load(open(path))
    nu = len(data["vocab"]["units"])
    node_type, edges, mono_nodes, mono_graph = [], [], [], []
    for gi, g in enumerate(data["graphs"]):
        off = len(node_type)
        for k, t in enumerate(g["node_type"]):
            if t < nu:
                mono_nodes.append(off + k)
                mono_graph.append(gi)
        node_type += g["node_type"]
        edges += [[s + off, d + off, r] for s, d, r in g["edges"]]
    node_type = torch.tensor(node_type)
    e = torch.tensor(edges)
    is_atom = node_type >= nu
    sets = {
        "atom": is_atom[e[:, 0]] & is_atom[e[:, 1]],
        "cross": is_atom[e[:, 0]] & ~is_atom[e[:, 1]],
        "mono": ~is_atom[e[:, 0]] & ~is_atom[e[:, 1]],
    }
    b = {k: (e[m, 0], e[m, 1], e[m, 2]) for k, m in sets.items()}
    b.update(node_type=node_type, is_atom=is_atom, mono_nodes=torch.tensor(mono_nodes),
             mono_graph=torch.tensor(mono_graph), num_graphs=len(data["graphs"]))
    return b, nu + 83, len(data["vocab"]["links"]) + 5


def median_time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    b, num_unit, R = load(sys.argv[1])
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    print(f"{b['num_graphs']} glycans, {len(b['node_type'])} nodes, {R} relations, torch {torch.__version__}")
    labels = torch.arange(b["num_graphs"]) % 10
    for name, conv in (("official dense", DenseRGConv), ("efficient sparse", SparseRGConv)):
        model = GlycanAA(conv, num_unit, R)
        if conv is SparseRGConv:
            n = len(b["node_type"])
            prepared = {k: model.atom_layers[0].prepare(b[k], n) for k in ("atom", "cross", "mono")}
            run_b = dict(b, **prepared)
        else:
            run_b = b
        head = nn.Linear(768, 10)
        opt = torch.optim.Adam(list(model.parameters()) + list(head.parameters()), lr=5e-4, weight_decay=1e-3)

        def infer():
            model.eval()
            with torch.no_grad():
                model(run_b)

        def step():
            model.train()
            opt.zero_grad()
            loss = F.cross_entropy(head(model(run_b)), labels)
            loss.backward()
            opt.step()

        ti = median_time(infer, repeats)
        ts = median_time(step, repeats)
        print(f"{name}: forward {ti:.3f} s ({b['num_graphs'] / ti:.0f} glycans/s), train step {ts:.3f} s")


if __name__ == "__main__":
    main()
