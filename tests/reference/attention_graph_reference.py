"""Independent reference for attention graphs (aa_encoder::attention; El et al., arXiv 2502.12352).

Writes crates/allatom/tests/fixtures/attention/attention_graphs.json with two cases:

1. `hf_tiny`: the tiny ESM-2 of crates/aa-codeswitch/tests/fixtures/hf-tiny run by Hugging Face
   transformers with `output_attentions=True` on two sequences; per sequence every layer's
   attention averaged over heads (tokens <cls> residues <eos>), the product across layers (later
   layer on the left) and the metrics against the peptide chain (edges between consecutive
   residue tokens; <cls>/<eos> special).
2. `ubq_units`: deterministic row-stochastic matrices over the 76 residues of 1UBQ (chain A),
   with the residue graph derived here from the PDB text: peptide links where C(i)–N(i+1) is
   within 2 Å, contacts where CA–CA ≤ 8 Å and not linked. Metrics per matrix and of the product.

Metric definitions (the same words as the Rust docs): over rows of graph nodes, mean attention
mass at hop distance d ≤ max_hop (BFS over the edge set), beyond it, unreachable, on special
nodes; mean weight over directed neighbour pairs and over non-neighbour pairs of distinct graph
nodes, their ratio (non / neighbour); of the 2|E| largest off-diagonal entries between graph
nodes (ties: row-major order, a stable sort), the fraction that are edges (precision) and the
fraction of the 2|E| directed edges found (recall), F1.

Run: python tests/reference/attention_graph_reference.py   (torch, transformers, numpy)
"""
import json
import os
from collections import deque

import numpy as np

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
OUT = os.path.join(ROOT, "crates", "allatom", "tests", "fixtures", "attention")
MAX_HOP = 3


def hops(n, in_graph, edges):
    adj = [[] for _ in range(n)]
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    inf = np.iinfo(np.int64).max
    d = np.full((n, n), inf, dtype=np.int64)
    for s in range(n):
        if not in_graph[s]:
            continue
        d[s, s] = 0
        q = deque([s])
        while q:
            x = q.popleft()
            for y in adj[x]:
                if d[s, y] == inf:
                    d[s, y] = d[s, x] + 1
                    q.append(y)
    return d, inf


def metrics(a, in_graph, edges, max_hop=MAX_HOP):
    a = np.asarray(a, dtype=np.float64)
    n = a.shape[0]
    g = np.asarray(in_graph, dtype=bool)
    d, inf = hops(n, g, edges)
    rows = np.flatnonzero(g)
    sub = a[rows]  # [R, n]
    dr = d[rows]
    r = max(len(rows), 1)
    special = sub[:, ~g].sum() / r
    cols = g[None, :].repeat(len(rows), 0)
    hop = [float(sub[(dr == k) & cols].sum() / r) for k in range(max_hop + 1)]
    further = sub[(dr != inf) & (dr > max_hop) & cols].sum() / r
    unreachable = sub[(dr == inf) & cols].sum() / r
    off = cols & (dr != 0)
    nb = off & (dr == 1)
    non = off & (dr != 1)
    nb_mean = float(sub[nb].mean()) if nb.any() else None
    non_mean = float(sub[non].mean()) if non.any() else None
    ratio = non_mean / nb_mean if nb_mean not in (None, 0.0) and non_mean is not None else None
    # candidates in row-major order, sorted by value descending, stable
    vals = sub.astype(np.float32)[off]
    is_edge = (dr == 1)[off]
    k = 2 * len(edges)
    if k == 0 or len(vals) == 0:
        p = rc = f = None
    else:
        order = np.argsort(-vals, kind="stable")[: min(k, len(vals))]
        hits = float(is_edge[order].sum())
        p = hits / len(order)
        rc = hits / k
        f = 2 * p * rc / (p + rc) if p + rc > 0 else 0.0
    return {
        "edges": len(edges), "hop_mass": hop, "further": float(further), "unreachable": float(unreachable),
        "special": float(special), "neighbour_mean": nb_mean, "non_neighbour_mean": non_mean, "ratio": ratio,
        "precision": p, "recall": rc, "f1": f,
    }


def product(layers):
    p = np.asarray(layers[0], dtype=np.float64)
    for a in layers[1:]:
        p = np.asarray(a, dtype=np.float64) @ p
    return p


def hf_case():
    import torch
    from transformers import EsmForMaskedLM
    d = os.path.join(ROOT, "crates", "aa-codeswitch", "tests", "fixtures", "hf-tiny")
    vocab = open(os.path.join(d, "vocab.txt")).read().split()
    ids = {t: i for i, t in enumerate(vocab)}
    model = EsmForMaskedLM.from_pretrained(d, attn_implementation="eager")
    model.eval()
    seqs = ["MKTAYIAKQRQISFVKSHFSRQ", "GSHMLEDP"]
    t = max(len(s) for s in seqs) + 2
    tokens = np.full((len(seqs), t), ids["<pad>"], dtype=np.int64)
    for b, s in enumerate(seqs):
        tokens[b, : len(s) + 2] = [ids["<cls>"]] + [ids[c] for c in s] + [ids["<eos>"]]
    tok = torch.from_numpy(tokens)
    with torch.no_grad():
        out = model(input_ids=tok, attention_mask=tok.ne(ids["<pad>"]).long(), output_attentions=True)
    att = torch.stack(out.attentions, 1).mean(2).numpy()  # [B, L, T, T]
    cases = []
    for b, s in enumerate(seqs):
        n = len(s) + 2
        layers = att[b, :, :n, :n].astype(np.float64)
        in_graph = [False] + [True] * len(s) + [False]
        edges = [(i, i + 1) for i in range(1, len(s))]
        p = product(list(layers))
        cases.append({
            "sequence": s, "layers": layers.tolist(), "edges": edges, "in_graph": in_graph,
            "layer_metrics": [metrics(a, in_graph, edges) for a in layers],
            "product": p.tolist(), "product_metrics": metrics(p, in_graph, edges),
        })
    return cases


def ubq_case():
    path = os.path.join(ROOT, "data", "fetched", "structures", "pdbrust", "examples", "pdb_files", "1UBQ.pdb")
    res = {}
    order = []
    for line in open(path):
        if not line.startswith("ATOM") or line[21] != "A":
            continue
        key = int(line[22:26])
        name = line[12:16].strip()
        if key not in res:
            res[key] = {}
            order.append(key)
        res[key][name] = np.array([float(line[30:38]), float(line[38:46]), float(line[46:54])])
    n = len(order)
    ca = np.array([res[k]["CA"] for k in order])
    links = [(i, i + 1) for i in range(n - 1)
             if np.linalg.norm(res[order[i]]["C"] - res[order[i + 1]]["N"]) <= 2.0]
    linked = set(links)
    dist = np.linalg.norm(ca[:, None] - ca[None], axis=2)
    contacts = [(i, j) for i in range(n) for j in range(i + 1, n) if dist[i, j] <= 8.0 and (i, j) not in linked]
    both = sorted(set(links) | set(contacts))
    idx = np.arange(n)
    layers = []
    for l in range(3):
        # near residues, a sequence-offset preference and a fixed pattern: asymmetric, dense
        logits = -(dist / (4.0 + 2.0 * l)) ** 2 + 0.3 * np.cos(0.7 * (idx[:, None] - 2 * idx[None] + l))
        e = np.exp(logits - logits.max(1, keepdims=True))
        layers.append((e / e.sum(1, keepdims=True)).astype(np.float32).astype(np.float64))
    in_graph = [True] * n
    p = product(layers)
    sets = {"covalent": links, "contacts": contacts, "covalent+contacts": both}
    return {
        "residues": n, "layers": [a.tolist() for a in layers], "edges": sets,
        "layer_metrics": [{k: metrics(a, in_graph, e) for k, e in sets.items()} for a in layers],
        "product": p.tolist(), "product_metrics": {k: metrics(p, in_graph, e) for k, e in sets.items()},
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    fixture = {"max_hop": MAX_HOP, "hf_tiny": hf_case(), "ubq_units": ubq_case()}
    with open(os.path.join(OUT, "attention_graphs.json"), "w") as f:
        json.dump(fixture, f)
    print("wrote", os.path.join(OUT, "attention_graphs.json"))


if __name__ == "__main__":
    main()
