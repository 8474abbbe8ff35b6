"""Independent NumPy reference for the GlycanAA encoder (official architecture, TorchDrug
semantics), written from the paper's code and TorchDrug's documented layers — not from ours.

Reads the parity inputs written by
    cargo run --release -p glycan-aa --example glycanaa_parity_inputs -- crates/glycan-aa/tests/fixtures
(glycanaa_batch.json: the official featurisation of 100 real glycans; glycanaa_weights.safetensors:
random weights under the official key names; glycanaa_config.json) and writes
glycanaa_expected.safetensors with, for eval and train mode (BatchNorm running vs batch
statistics), every node's features and the glycan embeddings.

    /tmp/refenv/bin/pip install numpy safetensors
    /tmp/refenv/bin/python tests/reference/glycanaa_reference.py crates/glycan-aa/tests/fixtures

`glycanaa_reference.py DIR BATCH OUT` reads the batch from BATCH and writes OUT instead (the
weights and config still from DIR): the `allatom convert` check of an official checkpoint, on
the official glycoword vocabulary's featurisation (`glycanaa_parity_inputs --official`).

TorchDrug's RelationalGraphConv, as used here (dense over all relations, like the original):
    update[i, r] = sum_{j->i, rel r} x[j] / (count[i, r] + 1e-10)        # mean, zero if none
    out = linear(update.reshape(N, R*D)) + self_loop(x); out = batch_norm(out); out = gelu(out)
GlycanAA layer: h1 = conv_atom(x) on atom-atom edges; in2 = h1 on atoms, x on monosaccharides;
h2 = conv_cross(in2) on atom->mono edges; in3 = h2 on monos, 0 on atoms; h3 = conv_mono(in3);
output = h1 on atoms, h3 on monos. Hidden states of all layers are concatenated; the readout is
mean and max over monosaccharide nodes per glycan.
"""
import json
import math
import sys

import numpy as np
from safetensors.numpy import load_file, save_file

ERF = np.frompyfunc(math.erf, 1, 1)


def gelu(x):
    return 0.5 * x * (1.0 + ERF(x / math.sqrt(2.0)).astype(np.float64))


def batch_norm(x, w, prefix, train):
    if train:
        mean = x.mean(axis=0)
        var = x.var(axis=0)  # biased, as PyTorch normalises in training mode
    else:
        mean = w[prefix + "running_mean"].astype(np.float64)
        var = w[prefix + "running_var"].astype(np.float64)
    return (x - mean) / np.sqrt(var + 1e-5) * w[prefix + "weight"] + w[prefix + "bias"]


def rgconv(x, edges, w, prefix, num_relation, train):
    n, d = x.shape
    update = np.zeros((n * num_relation, d))
    count = np.zeros((n * num_relation, 1))
    if len(edges):
        src, dst, rel = edges[:, 0], edges[:, 1], edges[:, 2]
        np.add.at(update, dst * num_relation + rel, x[src])
        np.add.at(count, dst * num_relation + rel, 1.0)
    update = (update / (count + 1e-10)).reshape(n, num_relation * d)
    out = update @ w[prefix + "linear.weight"].T + w[prefix + "linear.bias"]
    out = out + x @ w[prefix + "self_loop.weight"].T + w[prefix + "self_loop.bias"]
    out = batch_norm(out, w, prefix + "batch_norm.", train)
    return gelu(out)


def main():
    root = sys.argv[1]
    batch_path = sys.argv[2] if len(sys.argv) > 3 else f"{root}/glycanaa_batch.json"
    out_path = sys.argv[3] if len(sys.argv) > 3 else f"{root}/glycanaa_expected.safetensors"
    batch = json.load(open(batch_path))
    cfg = json.load(open(f"{root}/glycanaa_config.json"))
    w = {k: v.astype(np.float64) for k, v in load_file(f"{root}/glycanaa_weights.safetensors").items()}
    nu = len(batch["vocab"]["units"])
    R = cfg["num_relation"]
    node_type, edges, graph_of, offset = [], [], [], 0
    for gi, g in enumerate(batch["glycans"]):
        gr = g["graph"]
        node_type += gr["node_type"]
        graph_of += [gi] * len(gr["node_type"])
        edges += [[s + offset, d + offset, r] for s, d, r in gr["edges"]]
        offset += len(gr["node_type"])
    node_type = np.array(node_type)
    edges = np.array(edges, dtype=np.int64)
    graph_of = np.array(graph_of)
    is_atom = node_type >= nu
    is_mono = ~is_atom
    atom_e = edges[is_atom[edges[:, 0]] & is_atom[edges[:, 1]]]
    cross_e = edges[is_atom[edges[:, 0]] & is_mono[edges[:, 1]]]
    mono_e = edges[is_mono[edges[:, 0]] & is_mono[edges[:, 1]]]
    out = {}
    for mode, train in (("eval", False), ("train", True)):
        x = w["embedding.weight"][node_type]
        hiddens = []
        for i in range(len(cfg["hidden_dims"])):
            h1 = rgconv(x, atom_e, w, f"atom_layers.{i}.", R, train)
            in2 = np.where(is_atom[:, None], h1, x)
            h2 = rgconv(in2, cross_e, w, f"cross_layers.{i}.", R, train)
            in3 = np.where(is_mono[:, None], h2, 0.0)
            h3 = rgconv(in3, mono_e, w, f"mono_layers.{i}.", R, train)
            x = np.where(is_atom[:, None], h1, h3)
            hiddens.append(x)
        allf = np.concatenate(hiddens, axis=1)
        nb = len(batch["glycans"])
        mean = np.zeros((nb, allf.shape[1]))
        mx = np.full((nb, allf.shape[1]), -np.inf)
        for gi in range(nb):
            sel = allf[(graph_of == gi) & is_mono]
            mean[gi] = sel.mean(axis=0)
            mx[gi] = sel.max(axis=0)
        out[f"{mode}.all_node_feature"] = allf.astype(np.float32)
        out[f"{mode}.graph_feature"] = np.concatenate([mean, mx], axis=1).astype(np.float32)
    save_file(out, out_path)
    print({k: v.shape for k, v in out.items()})


if __name__ == "__main__":
    main()
