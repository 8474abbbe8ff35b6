"""Fixtures from the OFFICIAL Vabs-Net code (github.com/Heisenburger2020/Vabs-Net, commit 11db7ad),
run on CPU in float32 for aa-sparse-attn's official-compatible mode (see
crates/aa-sparse-attn/OFFICIAL.md). Nothing of the official code is copied here: the script
imports `vabs.models.vabs_net`, `vabs.models.layers`, `vabs.models.vabs_encoder` and
`vabs.data.protein_downstream_bindingsite_dataset` from the checkout given by --official
(without running the packages' `__init__.py` files, which import every task and model), with
the small stand-ins for unicore / torch_scatter / torch_sparse in
tests/reference/vabs_official/shims/ (see the README there).

Steps: read the PDB into the LMDB record convention of OFFICIAL.md §1.2 (one chain, ATOM records
of the first model, atom37 slots, random 24-dim "ESM" features; see read_residues); run the official
`PocketDataset.__getitem_cached__` (evaluation mode, epoch 1) with `np.random.uniform` patched
to return zeros (identity rotation, zero translation); check its geometry against an
independent computation of §1.4-1.7; build `MDProteinModel` with a small config through the
official argument machinery, randomise every parameter (torch.manual_seed(1)), collate the
sample as the official collaters do for a batch of one, run the forward and record the stages.

    mkdir -p /tmp/vabs && git --git-dir=/work/.mirror/Heisenburger2020+Vabs-Net/repo archive 11db7ad | tar -x -C /tmp/vabs
    /tmp/refenv/bin/python tests/reference/vabs_official_reference.py --official /tmp/vabs \
        --pdb data/fetched/structures/pdbrust/examples/pdb_files/1UBQ.pdb \
        --out crates/aa-sparse-attn/tests/fixtures/vabs_official

--features-only runs the same reading, official pipeline and geometry check on one chain
(--chain, default A; .gz / .bz2 files are read too) and writes only
<out>/<stem>_features.safetensors (the keys of features.safetensors; a thinner atom-track sample,
plus every edge whose dst residue lacks N or C) and <out>/<stem>_features.json (what the reader
met: residues before/after the CA filter, missing N / C, altlocs, insertion codes, merged
residue names, unknown types, dropped HETATM, skipped hydrogens). <stem> = the file name without
.pdb/.ent/.gz/.bz2 (or --stem). The edge-case fixtures were made with

    S=data/fetched/structures; O=crates/aa-sparse-attn/tests/fixtures/vabs_official
    for a in "mdanalysistests/mmcif/1BD2_short.pdb.gz D" "biopython/2n0n_M1.pdb A" \
             "biopython/disordered.pdb A" "mdanalysistests/namd_cgenff.pdb A"; do
        set -- $a
        /tmp/refenv/bin/python tests/reference/vabs_official_reference.py --official /tmp/vabs \
            --features-only --pdb $S/$1 --chain $2 --out $O
    done
"""
import argparse
import bz2
import gzip
import hashlib
import importlib
import importlib.util
import json
import os
import pickle
import sys
import types
from unittest import mock

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
SHIMS = os.path.join(HERE, "vabs_official", "shims")
OFFICIAL_COMMIT = "11db7ad5b9c10e134908f49c2632826cb28b36af"

ATOM37 = ("N CA C CB O CG CG1 CG2 OG OG1 SG CD CD1 CD2 ND1 ND2 OD1 OD2 SD CE CE1 CE2 CE3 NE NE1 NE2 "
          "OE1 OE2 CH2 NH1 NH2 OH CZ CZ2 CZ3 NZ OXT").split()
AA1 = "ARNDCQEGHILKMFPSTWYV"
AA3 = ["ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE",
       "LEU", "LYS", "MET", "PHE", "PRO", "SER", "THR", "TRP", "TYR", "VAL"]
ESM_DIM = 24
K_RES, K_ATOM = 30, 30

# The small model, written as the command-line flags of train_protein_pocket_finetune.sh with the
# values of reproduce_finetune.sh, sizes shrunk (node 32, edge 16, 4 heads, FFN 64, 2 layers, ESM 24).
MODEL_FLAGS = {
    "encoder-layers": 2, "encoder-attention-heads": 4, "num-3d-bias-kernel": 128,
    "encoder-embed-dim": 32, "encoder-ffn-embed-dim": 64, "droppath-prob": 0.1,
    "pair-embed-dim": 64, "pair-hidden-dim": 16, "pair-dropout": 0.25,
    "attention-dropout": 0.1, "act-dropout": 0.1, "dropout": 0.0, "num-block": 1,
    "gaussian-std-width": 1.0, "gaussian-mean-start": 0.0, "gaussian-mean-stop": 9.0,
    "preln": 0, "notri": 1, "crop": 10, "noise-scale": 0.3, "mask-prob": 0.35,
    "res2res-mask": 15, "sample-atom": 256, "res-type-mask-prob": 0.2,
    "res-pos-mask-prob": 0.2, "res-noise-scale": 0.5, "keep": 37, "node-dim": 32,
    "edge-dim": 16, "outer-product-dim": 32, "knn": 50, "num-layers": 2, "pair-update": 0,
    "use-outer": 0, "use-trimul": 0, "use-pairupdate": 0, "use-triangleattn": 0,
    "use-ipa-norm": 1, "use-esm-feat": 1, "use-ipa": 0, "use-vec": 1, "use-clean": 0,
    "use-pointgnn": 0, "cutoff": 800, "use-ps-data": 0, "use-pos": 0,
    "use-virtual-node": 1, "use-sas": 0, "use-rel-pos": 0, "knn-atom2atom": K_ATOM,
    "knn-res": K_RES, "pos-pred": 0, "dihedral-pred": 0, "pocket-pred": 1,
    "res-type-pred": 0, "local-all": 0, "learnable-pos": 1, "concat-style": 0,
    "add-style": 0, "use-absolute": 1, "use-relative": 1, "use-nerf-encoding": 1,
    "use-all-layers": 0, "esm-dim": ESM_DIM, "sas-pred": 0, "gb-feat": 0, "use-ss": 0,
    "atom-feat": 0, "edge-mask-prob": 0.0, "ft-esm": 0,
}


# --------------------------------------------------------------------------------------------
# Loading the official modules
# --------------------------------------------------------------------------------------------

def load_official(root):
    sys.path.insert(0, SHIMS)
    sys.path.insert(1, root)
    if importlib.util.find_spec("imp") is None:
        # vabs_encoder.py does `import imp` (unused); the module is gone from Python >= 3.12.
        sys.modules["imp"] = types.ModuleType("imp")
    for name, sub in (("vabs", "vabs"), ("vabs.models", "vabs/models"), ("vabs.data", "vabs/data")):
        pkg = types.ModuleType(name)
        pkg.__path__ = [os.path.join(root, sub)]
        pkg.__package__ = name
        sys.modules[name] = pkg
    mods = {}
    for name in ("vabs.models.layers", "vabs.models.vabs_encoder", "vabs.models.vabs_net",
                 "vabs.data.protein_downstream_bindingsite_dataset"):
        mods[name.split(".")[-1]] = importlib.import_module(name)
    for name in ("torch_scatter", "torch_sparse", "unicore"):
        assert sys.modules[name].__file__.startswith(SHIMS), f"{name} did not come from the shims"
    return mods


# --------------------------------------------------------------------------------------------
# Independent PDB reading (LMDB record convention, OFFICIAL.md §1.2)
# --------------------------------------------------------------------------------------------

def open_text(path):
    if path.endswith(".gz"):
        return gzip.open(path, "rt")
    if path.endswith(".bz2"):
        return bz2.open(path, "rt")
    return open(path)


def is_hydrogen(line):
    element = line[76:78].strip() if len(line) >= 78 else ""
    if element:
        return element in ("H", "D")
    name = line[12:16].strip()
    return name[:1] in ("H", "D") or (name[:1].isdigit() and name[1:2] in ("H", "D"))


def read_residues(pdb_path, chain="A"):
    """The chain's residues in the Process_PDB.py `read_pdb` convention: ATOM records (not HETATM)
    of the first model (stop at the first ENDMDL), this chain only, atom names (columns 13-16,
    stripped) in atom37, everything else skipped. Key = residue number (columns 23-26) without the
    insertion code, so insertion residues merge; residues in order of first appearance; a later
    record of the same (residue, atom37 slot) overwrites an earlier one (altlocs: the last listed
    wins, whatever its occupancy); the residue name is that of the residue's last kept record.
    Coordinates: float64 from columns 31-38, 39-46, 47-54.

    Also returns what was seen on the way (altlocs, insertion codes, names, skipped records) for
    the features-only JSON; none of it affects the record."""
    keys, residues = {}, []
    seen = {"hetatm": {}, "hydrogens": 0, "other_skipped": {}}
    with open_text(pdb_path) as fh:
        for line in fh:
            if line.startswith("ENDMDL"):
                break
            if line.startswith("HETATM") and line[21:22] == chain:
                k = line[17:20].strip() + " " + line[22:27].strip()
                seen["hetatm"][k] = seen["hetatm"].get(k, 0) + 1
            if not line.startswith("ATOM") or line[21] != chain:
                continue
            name = line[12:16].strip()
            if name not in ATOM37:
                if is_hydrogen(line):
                    seen["hydrogens"] += 1
                else:
                    seen["other_skipped"][name] = seen["other_skipped"].get(name, 0) + 1
                continue
            key = (line[22:26].strip(), line[21])  # residue number + chain, insertion code ignored
            if key not in keys:
                keys[key] = len(residues)
                residues.append({"resseq": key[0], "name": line[17:20].strip(), "atoms": {},
                                 "names": [], "icodes": [], "records": {}})
            res = residues[keys[key]]
            res["name"] = line[17:20].strip()
            if res["name"] not in res["names"]:
                res["names"].append(res["name"])
            if line[26] not in res["icodes"]:
                res["icodes"].append(line[26])
            res["records"].setdefault(name, []).append((line[16], line[26]))  # (altloc, insertion code)
            res["atoms"][name] = (float(line[30:38]), float(line[38:46]), float(line[46:54]))  # later overwrites
    return residues, seen


def read_record(pdb_path, chain="A"):
    residues, _ = read_residues(pdb_path, chain)
    n = len(residues)
    assert n > 0, f"chain {chain!r} has no ATOM records with atom37 names in {pdb_path}"
    pos = np.zeros((n, 37, 3), dtype=np.float64)
    mask = np.zeros((n, 37), dtype=bool)
    rtype = np.zeros(n, dtype=np.int64)
    for i, res in enumerate(residues):
        rtype[i] = AA3.index(res["name"]) if res["name"] in AA3 else 20
        for name, xyz in res["atoms"].items():
            pos[i, ATOM37.index(name)] = xyz
            mask[i, ATOM37.index(name)] = True
    g = torch.Generator().manual_seed(0)
    return {
        "atom_pos": pos,
        "atom_masks": mask,
        "residue_type": rtype,
        "pocket_label": np.zeros(n, dtype=np.int64),
        "esm_feat": torch.randn(n, ESM_DIM, generator=g),
        "esm_cls_feat": torch.randn(ESM_DIM, generator=g),
        "id": os.path.basename(pdb_path) + "_" + chain,
    }


# --------------------------------------------------------------------------------------------
# Independent geometry (OFFICIAL.md §1.3-1.7)
# --------------------------------------------------------------------------------------------

def unit(v):
    with np.errstate(invalid="ignore", divide="ignore"):
        u = v / np.linalg.norm(v, axis=-1, keepdims=True)
    return np.nan_to_num(u, nan=0.0)


def frames(pos37, mask37):
    """Rows (b1, n0, b1 x n0) per residue from its own N, CA, C."""
    n_, ca, c = pos37[:, 0], pos37[:, 1], pos37[:, 2]
    u0, u1 = unit(ca - n_), unit(c - ca)
    n0 = unit(np.cross(u0, u1))
    b1 = unit(u0 - u1)
    return np.stack([b1, n0, np.cross(b1, n0)], axis=1)  # [N, 3, 3]


def nerf(v):
    def enc(x, nf):
        out = [x]
        for f in 2.0 ** np.arange(nf):
            out += [np.sin(f * x), np.cos(f * x)]
        return np.stack(out, -1)

    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    a1 = np.arctan2(np.abs(z), np.hypot(x, y))
    a2 = np.arctan2(np.abs(y), np.hypot(x, z))
    a3 = np.arctan2(np.hypot(x, y), np.hypot(y, z))
    angles = [enc(np.arctan2(np.sin(a), np.cos(a)), 4) for a in (a1, a2, a3)]
    return np.concatenate(angles + [enc(v, 10).reshape(len(v), 63)], axis=-1)


def independent_geometry(rec):
    keep = rec["atom_masks"][:, 1]
    pos37, mask37 = rec["atom_pos"][keep].copy(), rec["atom_masks"][keep]
    n = len(pos37)
    centre = pos37[:, 1].sum(0) / n
    pos37 = (pos37 - centre) * mask37[..., None]
    atoms = [(r, s) for r in range(n) for s in range(37) if mask37[r, s]]
    atom_pos = np.array([pos37[r, s] for r, s in atoms] + [[0.0, 0.0, 0.0]])
    res_of_atom = np.array([r for r, _ in atoms] + [n])
    ca = np.concatenate([pos37[:, 1], np.zeros((1, 3))])
    return pos37, mask37, atom_pos, res_of_atom, ca


def knn_rows(points, k):
    d = np.linalg.norm(points[:, None] - points[None], axis=-1)
    return [set(np.argsort(d[i], kind="stable")[:k].tolist()) for i in range(len(points))], d


def check_geometry(rec, sample):
    pos37, mask37, atom_pos, res_of_atom, ca = independent_geometry(rec)
    n, m = len(pos37), len(atom_pos) - 1
    report = {}
    assert np.allclose(sample["atom_pos"].numpy(), atom_pos, atol=1e-9, rtol=0)
    report["atom_pos_max_diff"] = float(np.abs(sample["atom_pos"].numpy() - atom_pos).max())

    ei = sample["edge_index"][0].numpy()
    ai = sample["aa_edge_index"][0].numpy()
    kr, ka = min(K_RES, n - 1), min(K_ATOM, m - 1)
    # edge lists: kNN rows (self included) then the virtual-node blocks
    exp_r_tail = np.concatenate([np.stack([np.arange(n), np.full(n, n)], 1), np.stack([np.full(n, n), np.arange(n)], 1)])
    exp_a_tail = np.concatenate([np.stack([np.full(m, m), np.arange(m)], 1), np.stack([np.arange(m), np.full(m, m)], 1)])
    assert ei.shape == (n * kr + 2 * n, 2) and ai.shape == (m * ka + 2 * m, 2)
    assert (ei[n * kr:] == exp_r_tail).all() and (ai[m * ka:] == exp_a_tail).all()
    assert (ei[:n * kr, 0] == np.repeat(np.arange(n), kr)).all()
    assert (ai[:m * ka, 0] == np.repeat(np.arange(m), ka)).all()
    rows_r, dr = knn_rows(ca[:n], kr)
    rows_a, da = knn_rows(atom_pos[:m], ka)
    mism_r = [i for i in range(n) if set(ei[i * kr:(i + 1) * kr, 1].tolist()) != rows_r[i]]
    mism_a = [i for i in range(m) if set(ai[i * ka:(i + 1) * ka, 1].tolist()) != rows_a[i]]
    # a mismatch is only acceptable as a tie at the k-th distance
    for rows, d, off, k, mism in ((rows_r, dr, ei, kr, mism_r), (rows_a, da, ai, ka, mism_a)):
        for i in mism:
            kth = np.sort(d[i])[k - 1]
            got = off[i * k:(i + 1) * k, 1]
            assert np.isclose(d[i, got].max(), kth, atol=1e-9), f"kNN row {i} differs beyond a tie"
    report["knn_tie_rows"] = {"residue": len(mism_r), "atom": len(mism_a)}
    for d, off, k, name in ((dr, ei, kr, "residue"), (da, ai, ka, "atom")):
        dd = np.stack([d[i, off[i * k:(i + 1) * k, 1]] for i in range(len(d))])
        assert (np.diff(dd, axis=1) >= -1e-12).all(), f"{name} kNN not in ascending distance"

    # direction vectors
    q_res = frames(pos37, mask37)
    q_res_rr = q_res.copy()
    q_res_rr[n - 1] = 0.0  # the residue track has no frame for the last array residue
    q_res_aa = np.concatenate([q_res, np.zeros((1, 3, 3))])  # atom track: zero frame for V
    dst, src = ei[:, 0], ei[:, 1]
    w = ca[src] - ca[dst]
    rel_r = w.copy()
    knn_part = slice(0, n * kr)
    rel_r[knn_part] = unit(np.einsum("eij,ej->ei", q_res_rr[dst[knn_part]], w[knn_part]))
    vec_r = np.concatenate([ca[dst] - ca[src], rel_r], axis=1)
    dst_a, src_a = ai[:, 0], ai[:, 1]
    wa = atom_pos[src_a] - atom_pos[dst_a]
    rel_a = unit(np.einsum("eij,ej->ei", q_res_aa[res_of_atom[dst_a]], wa))
    vec_a = np.concatenate([atom_pos[dst_a] - atom_pos[src_a], rel_a], axis=1)
    enc_r = np.concatenate([nerf(vec_r[:, :3]), nerf(vec_r[:, 3:])], axis=1)
    enc_a = np.concatenate([nerf(vec_a[:, :3]), nerf(vec_a[:, 3:])], axis=1)
    ev, eav = sample["edge_vec"].numpy(), sample["edge_aa_vec"].numpy()
    assert ev.dtype == np.float64 and eav.dtype == np.float64
    report["edge_vec_max_diff"] = float(np.abs(ev - enc_r).max())
    report["edge_aa_vec_max_diff"] = float(np.abs(eav - enc_a).max())
    assert np.allclose(ev, enc_r, atol=1e-8, rtol=0), report
    assert np.allclose(eav, enc_a, atol=1e-8, rtol=0), report
    return report


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------

def build_args(vabs_net):
    """unicore's parse_args_and_arch: model args in a group with argument_default=SUPPRESS, so
    flags without an explicit default stay unset and base_architecture fills them."""
    parser = argparse.ArgumentParser(allow_abbrev=False)
    group = parser.add_argument_group("Model-specific configuration", argument_default=argparse.SUPPRESS)
    vabs_net.MDProteinModel.add_args(group)
    known = {a.dest for a in parser._actions}
    flags, skipped = [], []
    for k, v in MODEL_FLAGS.items():
        if k.replace("-", "_") in known:
            flags += [f"--{k}", str(v)]
        else:
            skipped.append(k)
    args = parser.parse_args(flags)
    args.seed = 1  # unicore common option (train_protein_pocket_finetune.sh: --seed 1)
    args.arch = "protein_pocket_base"
    vabs_net.unimol_base_architecture(args)  # ARCH_CONFIG_REGISTRY["protein_pocket_base"]
    return args, skipped


def randomise(model, ln_cls):
    torch.manual_seed(1)
    done = set()
    with torch.no_grad():
        for name, mod in model.named_modules():
            pre = name + "." if name else ""
            if isinstance(mod, nn.Linear):
                mod.weight.normal_(0.0, 1.0 / mod.weight.shape[1] ** 0.5)
                done.add(pre + "weight")
                if mod.bias is not None:
                    mod.bias.normal_(0.0, 0.1)
                    done.add(pre + "bias")
            elif isinstance(mod, (ln_cls, nn.LayerNorm)):
                mod.weight.copy_(1.0 + 0.1 * torch.randn_like(mod.weight))
                mod.bias.normal_(0.0, 0.1)
                done |= {pre + "weight", pre + "bias"}
            elif isinstance(mod, nn.Embedding):
                if name.endswith("gaussian.mul"):
                    mod.weight.uniform_(0.5, 1.5)
                elif name.endswith("gaussian.bias"):
                    mod.weight.normal_(0.0, 0.2)
                else:
                    mod.weight.normal_(0.0, 0.5)
                done.add(pre + "weight")
    missing = {k for k, _ in model.named_parameters()} - done
    assert not missing, missing


def collate_one(sample):
    """The official collaters (TK:101-121 datasets, PT:1996-2314) for a batch of one."""
    cat = lambda key: torch.cat([sample[key]], dim=0)
    edge = lambda key: torch.cat([sample[key][0] + 0], dim=0)  # EdgeIndexDataset: + running count (0)

    def batch_index(key):  # BatchIndexDataset: sample i's ones times i
        s = [sample[key]]
        for i in range(len(s)):
            if (s[i] == 1).all():
                s[i] = s[i] * i
        return torch.cat(s, dim=0)

    return {
        "residue_type": cat("residue_type"),
        "edge_index": edge("edge_index"),
        "residue_idx_all": edge("residue_pos_all"),
        "residue_idx": edge("residue_pos"),
        "atom_type": cat("atom_type"),
        "atom_pos": cat("atom_pos"),
        "aa_edge_index": edge("aa_edge_index"),
        "edge_vec": cat("edge_vec"),
        "edge_aa_vec": cat("edge_aa_vec"),
        "esm_feat": cat("esm_feat"),
        "atom_sas": cat("idx"),  # use_sas = 0: AtomTypeDataset(is2re_dataset, "idx")
        "res_mask": cat("res_mask"),
        "edge_index_left": cat("idx"),
        "edge_index_right": cat("idx"),
        "batch_index_res": batch_index("batch_index_res"),
        "batch_index": batch_index("batch_index"),
        "idx": cat("idx"),
    }


def official_sample(ds_mod, args, rec):
    """The official PocketDataset on the one record: evaluation mode, epoch 1, identity motion."""
    dataset = ds_mod.PocketDataset([pickle.dumps(rec)], args, is_train=False)
    calls = []

    def zero_uniform(low=0.0, high=1.0, size=None):
        calls.append((low, high, size))
        return 0.0 if size is None else np.zeros(size)

    with mock.patch.object(np.random, "uniform", zero_uniform):
        # epoch 1: unicore numbers epochs from 1; epoch None (the constructor's) fails
        # data_utils.numpy_seed's integer check
        sample = dataset.__getitem_cached__(1, 0)
    assert [c[2] for c in calls] == [None, None, None, 3], calls
    return sample


def sample_rows(net_input, extra_res=(), v_block=200, last_residue_atoms=True):
    """Rows of edge_vec / edge_aa_vec stored in full (all 180 columns). Residue track: every 10th
    edge, every edge touching V, every edge whose dst is the last real residue (N - 1), every edge
    whose dst is in extra_res (array indices). Atom track: every 100th edge, v_block evenly spaced
    edges from each virtual-node block, every edge whose dst atom belongs to a residue in
    extra_res and (last_residue_atoms) to the last residue."""
    A = net_input["atom_pos"].shape[0]
    N = net_input["esm_feat"].shape[0] - 1
    M = A - 1
    ei, ai = net_input["edge_index"], net_input["aa_edge_index"]
    Er, Ea = ei.shape[0], ai.shape[0]
    k_a = (Ea - 2 * M) // M
    extra = torch.tensor(sorted(set(extra_res)), dtype=torch.int64)
    rows_r = (set(range(0, Er, 10)) | set(np.nonzero(((ei[:, 0] == N) | (ei[:, 1] == N)).numpy())[0].tolist())
              | set(np.nonzero((ei[:, 0] == N - 1).numpy())[0].tolist())
              | set(np.nonzero(torch.isin(ei[:, 0], extra).numpy())[0].tolist()))
    vblock1 = np.round(np.linspace(M * k_a, M * k_a + M - 1, v_block)).astype(int)
    vblock2 = np.round(np.linspace(M * k_a + M, M * k_a + 2 * M - 1, v_block)).astype(int)
    dst_res = net_input["residue_idx_all"][ai[:, 0]]
    rows_a = (set(range(0, Ea, 100)) | set(vblock1.tolist()) | set(vblock2.tolist())
              | set(np.nonzero(torch.isin(dst_res, extra).numpy())[0].tolist()))
    if last_residue_atoms:
        rows_a |= set(np.nonzero((dst_res == N - 1).numpy())[0].tolist())
    return (torch.tensor(sorted(rows_r), dtype=torch.int64), torch.tensor(sorted(rows_a), dtype=torch.int64))


def feature_tensors(net_input, rows_r_t, rows_a_t):
    ev, eav = net_input["edge_vec"], net_input["edge_aa_vec"]
    cols = [27, 48, 69, 117, 138, 159]
    feats = {
        "atom_pos": net_input["atom_pos"].double(),
        "atom_type": net_input["atom_type"].long(),
        "residue_type": net_input["residue_type"].long(),
        "residue_idx_all": net_input["residue_idx_all"].long(),
        "res_mask": net_input["res_mask"].to(torch.uint8),
        "edge_index": net_input["edge_index"].long(),
        "aa_edge_index": net_input["aa_edge_index"].long(),
        "edge_vec_vectors": ev[:, cols].double(),
        "edge_aa_vec_vectors": eav[:, cols].double(),
        "edge_vec_sample_rows": rows_r_t,
        "edge_vec_sample": ev[rows_r_t].double(),
        "edge_aa_vec_sample_rows": rows_a_t,
        "edge_aa_vec_sample": eav[rows_a_t].double(),
        "esm_feat": net_input["esm_feat"].float(),
    }
    return {k: v.contiguous() for k, v in feats.items()}


def official_sha(official):
    files = ["vabs/models/vabs_net.py", "vabs/models/layers.py", "vabs/models/vabs_encoder.py",
             "vabs/data/protein_downstream_bindingsite_dataset.py", "vabs/data/data_utils.py"]
    out = {}
    for rel in files:
        with open(os.path.join(official, rel), "rb") as fh:
            out[rel] = hashlib.sha256(fh.read()).hexdigest()
    return out


def file_stem(path):
    name = os.path.basename(path)
    for ext in (".gz", ".bz2"):
        if name.endswith(ext):
            name = name[: -len(ext)]
    for ext in (".pdb", ".ent"):
        if name.endswith(ext):
            name = name[: -len(ext)]
    return name


def residue_report(pdb_path, chain):
    """What the reader met in the chain, with each residue's record index (order of first
    appearance) and, when it has a CA, its array index after the CA filter."""
    residues, seen = read_residues(pdb_path, chain)
    models = 0
    with open_text(pdb_path) as fh:
        for line in fh:
            models += line.startswith("MODEL")
    out = {k: [] for k in ("dropped_no_ca", "missing_n", "missing_c", "altlocs", "insertion_codes",
                           "merged_names", "unknown_type")}
    array = 0
    for i, r in enumerate(residues):
        label = r["resseq"] + "".join(c for c in r["icodes"] if c != " ") + " " + r["name"]
        ent = {"record": i, "residue": label}
        if "CA" not in r["atoms"]:
            out["dropped_no_ca"].append(dict(ent, atoms=sorted(r["atoms"], key=ATOM37.index)))
            continue
        ent["array"] = array
        array += 1
        if "N" not in r["atoms"]:
            out["missing_n"].append(ent)
        if "C" not in r["atoms"]:
            out["missing_c"].append(ent)
        alt = {a: "".join(x[0] for x in recs) for a, recs in r["records"].items() if any(x[0] != " " for x in recs)}
        if alt:
            out["altlocs"].append(dict(ent, atoms=alt, note="last listed record of each atom wins"))
        if any(c != " " for c in r["icodes"]):
            out["insertion_codes"].append(dict(ent, codes=["" if c == " " else c for c in r["icodes"]]))
        if len(r["names"]) > 1:
            overwritten = sorted((a for a, recs in r["records"].items() if len(recs) > 1), key=ATOM37.index)
            out["merged_names"].append(dict(ent, names=r["names"], overwritten_atoms=overwritten))
        if r["name"] not in AA3:
            out["unknown_type"].append(dict(ent, type=20))
    out["models_in_file"] = models
    out["hetatm_records_dropped"] = seen["hetatm"]
    out["hydrogen_records_skipped"] = seen["hydrogens"]
    out["other_non_atom37_records_skipped"] = seen["other_skipped"]
    return len(residues), array, out


def features_only(cli, mods):
    """A featurisation fixture for one chain of one structure: no model."""
    vabs_net, ds_mod = mods["vabs_net"], mods["protein_downstream_bindingsite_dataset"]
    rec = read_record(cli.pdb, cli.chain)
    args, _ = build_args(vabs_net)
    sample = official_sample(ds_mod, args, rec)
    geo = check_geometry(rec, sample)
    net_input = collate_one(sample)
    n_before, n_after, report = residue_report(cli.pdb, cli.chain)
    missing = sorted({e["array"] for e in report["missing_n"] + report["missing_c"]})
    # Thinner atom-track sample than the full fixture's (20 rows per V block, no last-residue
    # block: in the atom track the last residue is not special) so that several small fixtures
    # stay small; edge_aa_vec_vectors still covers every edge.
    rows_r_t, rows_a_t = sample_rows(net_input, missing, v_block=20, last_residue_atoms=False)
    stem = cli.stem or file_stem(cli.pdb)
    save_file(feature_tensors(net_input, rows_r_t, rows_a_t), os.path.join(cli.out, f"{stem}_features.safetensors"))
    A = net_input["atom_pos"].shape[0]
    R = net_input["esm_feat"].shape[0]
    N, M = R - 1, A - 1
    Er, Ea = net_input["edge_index"].shape[0], net_input["aa_edge_index"].shape[0]
    assert N == n_after
    info = {
        "official_commit": OFFICIAL_COMMIT,
        "official_sha256": official_sha(cli.official),
        "structure": os.path.relpath(os.path.abspath(cli.pdb), os.path.abspath(os.path.join(HERE, "..", ".."))),
        "chain": cli.chain,
        "residues_before_ca_filter": n_before, "residues_after_ca_filter": n_after,
        "knn_res": args.knn_res, "knn_atom2atom": args.knn_atom2atom,
        "k_res_used": min(args.knn_res, N - 1), "k_atom_used": min(args.knn_atom2atom, M - 1),
        "esm_dim": args.esm_dim, "seed_esm": 0, "epoch": 1,
        "rotation": "identity (np.random.uniform patched to zeros)",
        "A": A, "R": R, "N": N, "M": M, "E_r": Er, "E_a": Ea,
        "sample_rows": {"residue": int(rows_r_t.numel()), "atom": int(rows_a_t.numel()),
                        "extra_dst_residues (array index, missing N or C)": missing},
        **report,
        "geometry_check": geo,
    }
    with open(os.path.join(cli.out, f"{stem}_features.json"), "w") as fh:
        json.dump(info, fh, indent=2)
        fh.write("\n")
    print(f"{stem}: chain {cli.chain} residues {n_before} -> {n_after} (CA filter); A={A} R={R} E_r={Er} E_a={Ea}")
    print("geometry check:", json.dumps(geo))
    for k in ("dropped_no_ca", "missing_n", "missing_c", "altlocs", "insertion_codes", "merged_names", "unknown_type"):
        print(f"  {k}: {len(report[k])}")
    for f in (f"{stem}_features.safetensors", f"{stem}_features.json"):
        print(f"  {f:40s} {os.path.getsize(os.path.join(cli.out, f)):>9d} bytes")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--official", required=True, help="work tree of Vabs-Net at 11db7ad")
    ap.add_argument("--pdb", required=True, help="PDB file (optionally .gz / .bz2)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--chain", default="A", help="chain identifier (column 22)")
    ap.add_argument("--features-only", action="store_true",
                    help="write only <out>/<stem>_features.safetensors and <stem>_features.json")
    ap.add_argument("--stem", default=None, help="output name stem (default: the file name without extensions)")
    cli = ap.parse_args()
    os.makedirs(cli.out, exist_ok=True)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    mods = load_official(os.path.abspath(cli.official))
    if cli.features_only:
        features_only(cli, mods)
        return
    vabs_net, ds_mod = mods["vabs_net"], mods["protein_downstream_bindingsite_dataset"]
    from unicore.modules import LayerNorm as UnicoreLayerNorm

    # a. record -------------------------------------------------------------------------------
    rec = read_record(cli.pdb, cli.chain)

    # b. official pipeline --------------------------------------------------------------------
    args, skipped = build_args(vabs_net)
    sample = official_sample(ds_mod, args, rec)
    geo = check_geometry(rec, sample)

    # c/d. model ------------------------------------------------------------------------------
    model = vabs_net.MDProteinModel(args)
    randomise(model, UnicoreLayerNorm)
    model = model.float()
    model.eval()

    # e. collate + forward with hooks ---------------------------------------------------------
    net_input = collate_one(sample)
    enc = model.molecule_encoder
    st = {}

    def save(key):
        def hook(_m, _inp, out):
            st[key] = (out[0] if isinstance(out, tuple) else out).detach().clone()
        return hook

    def pre(_m, _args, kwargs):
        st["embed.nodes"] = kwargs["nodes"].detach().clone()
        st["embed.rr_edges"] = kwargs["edges"].detach().clone()
        st["embed.aa_edges"] = kwargs["aa_edges"].detach().clone()

    enc.register_forward_pre_hook(pre, with_kwargs=True)
    enc.layer_norm.register_forward_hook(save("encoder.nodes"))
    enc.pair_layer_norm.register_forward_hook(save("encoder.rr_edges"))
    for i, layer in enumerate(enc.layers):
        layer.aa_final_layer_norm.register_forward_hook(save(f"layer.{i}.atom"))
        layer.final_layer_norm.register_forward_hook(save(f"layer.{i}.residue"))
        layer.register_forward_hook(save(f"layer.{i}.out"))
    enc.register_forward_hook(save("final"))
    model.pocket_cls_all.register_forward_hook(save("pocket_logits"))
    with torch.no_grad():
        outputs = model(**net_input)
    assert torch.equal(outputs[3], st["pocket_logits"])
    stages = {k: v.float().contiguous() for k, v in st.items()}

    # f. write --------------------------------------------------------------------------------
    sd = {k: v.detach().float().contiguous().clone() for k, v in model.state_dict().items()}
    torch.save({"args": args, "model": sd, "optimizer_history": [{"num_updates": 1}],
                "extra_state": {"epoch": 1}}, os.path.join(cli.out, "checkpoint.pt"))
    # The same weights as a bare fp16 state dict (no args): what `allatom convert` reads from a
    # checkpoint saved after `model.half()` without the unicore wrapper.
    torch.save({k: v.half() for k, v in sd.items()}, os.path.join(cli.out, "state_dict_fp16.pt"))

    A = net_input["atom_pos"].shape[0]
    R = net_input["esm_feat"].shape[0]
    N = R - 1
    M = A - 1
    Er, Ea = net_input["edge_index"].shape[0], net_input["aa_edge_index"].shape[0]
    rows_r_t, rows_a_t = sample_rows(net_input)
    save_file(feature_tensors(net_input, rows_r_t, rows_a_t), os.path.join(cli.out, "features.safetensors"))
    save_file(stages, os.path.join(cli.out, "stages.safetensors"))

    pdb_rel = os.path.relpath(os.path.abspath(cli.pdb), os.path.abspath(os.path.join(HERE, "..", "..")))
    config = {
        "official_repo": "github.com/Heisenburger2020/Vabs-Net",
        "official_commit": OFFICIAL_COMMIT,
        "official_sha256": official_sha(cli.official),
        "structure": pdb_rel, "chain": cli.chain,
        "num_layers": args.num_layers, "node_dim": args.node_dim, "edge_dim": args.edge_dim,
        "encoder_attention_heads": args.encoder_attention_heads,
        "encoder_ffn_embed_dim": args.encoder_ffn_embed_dim,
        "num_3d_bias_kernel": args.num_3d_bias_kernel, "esm_dim": args.esm_dim,
        "droppath_prob": args.droppath_prob, "preln": args.preln, "learnable_pos": args.learnable_pos,
        "use_vec": args.use_vec, "use_absolute": args.use_absolute, "use_relative": args.use_relative,
        "use_nerf_encoding": args.use_nerf_encoding, "use_virtual_node": args.use_virtual_node,
        "use_esm_feat": args.use_esm_feat, "pocket_pred": args.pocket_pred,
        "knn_res": args.knn_res, "knn_atom2atom": args.knn_atom2atom,
        "k_res_used": min(args.knn_res, N - 1), "k_atom_used": min(args.knn_atom2atom, M - 1),
        "gaussian": {"start": 0.0, "stop": 9.0, "std_width": 1.0, "pi": 3.14159},
        "dtype": "float32", "seed_params": 1, "seed_esm": 0, "epoch": 1,
        "rotation": "identity (np.random.uniform patched to zeros)",
        "A": A, "R": R, "N": N, "M": M, "E_r": Er, "E_a": Ea,
        "flags_not_in_add_args": skipped,
        "geometry_check": geo,
    }
    with open(os.path.join(cli.out, "config.json"), "w") as fh:
        json.dump(config, fh, indent=2)
        fh.write("\n")

    # g. report -------------------------------------------------------------------------------
    print(f"A={A} R={R} (N={N} residues, M={M} atoms) E_r={Er} E_a={Ea}")
    print("geometry check:", json.dumps(geo))
    print("flags not in add_args (set by base_architecture or unused):", skipped)
    for k, v in stages.items():
        print(f"  {k:18s} {tuple(v.shape)}  max|x| = {v.abs().max().item():.4f}")
    for f in sorted(os.listdir(cli.out)):
        print(f"  {f:22s} {os.path.getsize(os.path.join(cli.out, f)):>9d} bytes")


if __name__ == "__main__":
    main()
