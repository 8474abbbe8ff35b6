"""Parity fixtures for aa-codeswitch (ESM-2 / ESM-AA), on identical deterministic weights.

    /tmp/refenv/bin/pip install torch fair-esm==2.0.0 transformers safetensors numpy gemmi
    /tmp/refenv/bin/python tests/reference/esm_reference.py crates/aa-codeswitch/tests/fixtures \
        data/fetched/structures/pdbrust/examples/pdb_files/1UBQ.pdb

Weights are not stored: every parameter is generated from its name by a counter-based
splitmix64 stream (`det_values`), which the Rust test re-implements, so fixtures stay small
even for the 35M configs. For each case we store the parameter names/shapes, the inputs and
the outputs (safetensors) of:

1. fair-esm 2.0.0 `esm.model.esm2.ESM2` (PyPI) at the 8M and 35M sizes: logits, hidden states
   of layers 0 / middle / last, contacts, for a padded batch of two sequences with a <mask>.
2. ESM-AA: `esm_aa_forward` below, our PyTorch transcription of the official ESM-AA
   semantics (zhengkangjie/ESM-AA esm2_aa.py / multihead_attention.py / rotary_embedding.py):
   Gaussian pair bias from atom distances and edge types tok_i*V+tok_j, rotary positions
   cumsum(aa_mask)-1, each layer's pre-softmax logits (masked to atom pairs) as the next
   layer's bias, distance head. Inputs: code-switch sequences of 1UBQ (real coordinates,
   read with gemmi), residues unzipped into heavy atoms, padded batch of two.
3. Hugging Face transformers `EsmForMaskedLM` (tiny config) saved with save_pretrained, so the
   Rust loader reads a real hub-format directory (config.json, model.safetensors, vocab.txt).
4. Tiny torch checkpoints {"cfg": {"model": Namespace}, "model": {...}} with ESM-AA's
   `encoder.sentence_encoder.` / `encoder.` prefixes, for `allatom convert`: the ESM-2 weights of
   (3) (fairesm_tiny.pt) and an ESM-AA model with pair bias and distance head (esm_aa_tiny.pt,
   expected logits on a 1UBQ code-switch sequence).
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file

GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(z):
    z = z + GOLDEN
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def fnv1a(name):
    h = 0xCBF29CE484222325
    for b in name.encode():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return np.uint64(h)


def value_range(name, shape):
    """[lo, hi) of a parameter, chosen so activations stay O(1) through 12 layers."""
    if name.endswith("means.weight"):
        return 0.0, 3.0
    if name.endswith("stds.weight"):
        return 0.5, 3.0
    if name.endswith("mul.weight"):
        return 0.5, 1.5
    if name.endswith("gbf.bias.weight"):
        return -0.2, 0.2
    if name == "embed_tokens.weight":
        return -1.0, 1.0
    if "norm" in name and name.endswith("weight"):
        return 0.8, 1.2
    if name.endswith("bias"):
        return -0.1, 0.1
    fan_in = shape[-1]
    a = math.sqrt(3.0 / fan_in)
    return -a, a


def det_values(name, shape):
    n = int(np.prod(shape))
    with np.errstate(over="ignore"):
        seed = fnv1a(name)
        z = _mix(seed ^ _mix(np.arange(n, dtype=np.uint64)))
    u = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    lo, hi = value_range(name, shape)
    return (lo + (hi - lo) * u).astype(np.float32).reshape(shape)


def fill(model, skip=lambda k: False):
    """Deterministic weights for every parameter of a fair-esm-named state dict."""
    sd = model.state_dict()
    names = []
    new = {}
    for k, v in sd.items():
        if k.endswith("inv_freq") or skip(k):
            continue
        new[k] = torch.from_numpy(det_values(k, tuple(v.shape)))
        names.append([k, list(v.shape)])
    if "lm_head.weight" in new:
        del new["lm_head.weight"]
        names = [n for n in names if n[0] != "lm_head.weight"]
    model.load_state_dict(new, strict=False)
    if hasattr(model, "lm_head"):
        model.lm_head.weight = model.embed_tokens.weight
    return names


# ---------------------------------------------------------------- ESM-2 via fair-esm


def esm2_case(out_dir, tag, layers, dim, heads):
    import esm

    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    model = esm.model.esm2.ESM2(num_layers=layers, embed_dim=dim, attention_heads=heads, alphabet=alphabet, token_dropout=True)
    names = fill(model)
    model.eval()
    seqs = [
        ("a", "MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPPDQQRLIFAGKQLEDGRTLSDYNIQKESTLHLVLRLRGG"),
        ("b", "KALTARQQEVFDLIRDHISQTGMPPTRAEIAQRLGFRSPNAAEEHLKALARK"),
    ]
    _, _, tokens = alphabet.get_batch_converter()(seqs)
    tokens[1, 5] = alphabet.mask_idx
    mid = layers // 2
    with torch.no_grad():
        r = model(tokens, repr_layers=[0, mid, layers], return_contacts=True)
    outputs = {
        "tokens": tokens.numpy().astype(np.int64),
        "logits": r["logits"].numpy(),
        "rep_0": r["representations"][0].numpy(),
        f"rep_{mid}": r["representations"][mid].numpy(),
        f"rep_{layers}": r["representations"][layers].numpy(),
        "contacts": r["contacts"].numpy(),
    }
    cfg = dict(vocab_size=33, hidden_size=dim, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=4 * dim,
               layer_norm_eps=1e-5, token_dropout=True)
    write_case(out_dir, tag, cfg, names, outputs, extra={"repr_layers": [0, mid, layers], "source": "fair-esm 2.0.0 esm.model.esm2.ESM2"})


# ---------------------------------------------------------------- ESM-AA reference


ESM_AA_TOKENS = (["<cls>", "<pad>", "<eos>", "<unk>"] + list("LAGVSERTIDPKQNFYMHWCXBUZO.-") + ["<null_1>", "<mask>"] +
                 "C_a N_a O_a S_a H_a Cl_a F_a Br_a I_a Si_a P_a B_a Na_a K_a Al_a Ca_a Sn_a As_a Hg_a Fe_a Zn_a Cr_a Se_a Gd_a Au_a Li_a".split())
TOK = {t: i for i, t in enumerate(ESM_AA_TOKENS)}
THREE = dict(ALA="A", ARG="R", ASN="N", ASP="D", CYS="C", GLN="Q", GLU="E", GLY="G", HIS="H", ILE="I", LEU="L", LYS="K",
             MET="M", PHE="F", PRO="P", SER="S", THR="T", TRP="W", TYR="Y", VAL="V")


def code_switch_from_pdb(path, n_res, unzip):
    """tokens, aa_mask, coords (nan for non-atoms) of the first n_res residues of chain A."""
    import gemmi

    st = gemmi.read_structure(path)
    chain = st[0]["A"]
    toks, aa, xyz = [TOK["<cls>"]], [1], [[np.nan] * 3]
    for k, res in enumerate([r for r in chain if r.name in THREE][:n_res]):
        toks.append(TOK[THREE[res.name]]); aa.append(1); xyz.append([np.nan] * 3)
        if k in unzip:
            for atom in res:
                if atom.element.name == "H":
                    continue
                toks.append(TOK[atom.element.name.capitalize() + "_a"]); aa.append(0)
                xyz.append([atom.pos.x, atom.pos.y, atom.pos.z])
    toks.append(TOK["<eos>"]); aa.append(1); xyz.append([np.nan] * 3)
    return toks, aa, np.array(xyz, dtype=np.float64)


def gelu(x):
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def layer_norm(x, w, b):
    return F.layer_norm(x, (x.shape[-1],), w, b, 1e-5)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def esm_aa_forward(W, cfg, tokens, aa_mask, dist, etype, repr_layers):
    """ESM2_AA.forward (eval) from the official semantics, batch-first, dense [B,H,T,T]."""
    B, T = tokens.shape
    E, H, L, V = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"], cfg["vocab_size"]
    D = E // H
    invalid = etype.eq(-1)
    et = etype.masked_fill(invalid, 0)
    d = dist.masked_fill(invalid, 0)
    # GaussianLayer + NonLinearHead
    mul = W["gbf.mul.weight"][et]           # [B,T,T,1]
    add = W["gbf.bias.weight"][et]
    x = mul * d.unsqueeze(-1) + add
    x = x.expand(-1, -1, -1, cfg["gaussian_kernels"])
    mean = W["gbf.means.weight"].view(-1)
    std = W["gbf.stds.weight"].view(-1).abs() + 1e-5
    g = torch.exp(-0.5 * ((x - mean) / std) ** 2) / ((2 * 3.14159) ** 0.5 * std)
    g = F.linear(gelu(F.linear(g, W["gbf_proj.linear1.weight"], W["gbf_proj.linear1.bias"])),
                 W["gbf_proj.linear2.weight"], W["gbf_proj.linear2.bias"])   # [B,T,T,H]
    bias = g.permute(0, 3, 1, 2).masked_fill(invalid.unsqueeze(1), 0)      # [B,H,T,T]
    pad = tokens.eq(1)
    x = W["embed_tokens.weight"][tokens]
    x = x.masked_fill((tokens == 32).unsqueeze(-1), 0.0)
    ratio = (tokens == 32).sum(-1).float() / (~pad).sum(-1).float()
    x = x * (1 - 0.15 * 0.8) / (1 - ratio)[:, None, None]
    x = x * (1 - pad.unsqueeze(-1).float())
    reps = {0: x} if 0 in repr_layers else {}
    inv_freq = 1.0 / (10000 ** (torch.arange(0, D, 2).float() / D))
    t = torch.arange(T).float()
    emb = torch.cat([torch.einsum("i,j->ij", t, inv_freq)] * 2, dim=-1)
    pos = torch.cumsum(aa_mask.long(), dim=-1) - 1                          # [B,T]
    cos, sin = emb.cos()[pos].unsqueeze(1), emb.sin()[pos].unsqueeze(1)      # [B,1,T,D]
    probs_all = []
    for i in range(L):
        p = f"layers.{i}."
        h = layer_norm(x, W[p + "self_attn_layer_norm.weight"], W[p + "self_attn_layer_norm.bias"])
        q = F.linear(h, W[p + "self_attn.q_proj.weight"], W[p + "self_attn.q_proj.bias"]) * D ** -0.5
        k = F.linear(h, W[p + "self_attn.k_proj.weight"], W[p + "self_attn.k_proj.bias"])
        v = F.linear(h, W[p + "self_attn.v_proj.weight"], W[p + "self_attn.v_proj.bias"])
        q, k, v = (y.view(B, T, H, D).transpose(1, 2) for y in (q, k, v))
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        s = q @ k.transpose(-1, -2) + bias
        s = s.masked_fill(pad[:, None, None, :], float("-inf"))
        pair = s.masked_fill(s == float("-inf"), 0).masked_fill(invalid.unsqueeze(1), 0)
        a = torch.softmax(s, dim=-1)
        probs_all.append(a)
        o = (a @ v).transpose(1, 2).reshape(B, T, E)
        x = x + F.linear(o, W[p + "self_attn.out_proj.weight"], W[p + "self_attn.out_proj.bias"])
        h = layer_norm(x, W[p + "final_layer_norm.weight"], W[p + "final_layer_norm.bias"])
        h = F.linear(gelu(F.linear(h, W[p + "fc1.weight"], W[p + "fc1.bias"])), W[p + "fc2.weight"], W[p + "fc2.bias"])
        x = x + h
        bias = pair
        if i + 1 in repr_layers and i + 1 < L:
            reps[i + 1] = x
    x = layer_norm(x, W["emb_layer_norm_after.weight"], W["emb_layer_norm_after.bias"])
    if L in repr_layers:
        reps[L] = x
    h = layer_norm(gelu(F.linear(x, W["lm_head.dense.weight"], W["lm_head.dense.bias"])), W["lm_head.layer_norm.weight"], W["lm_head.layer_norm.bias"])
    logits = F.linear(h, W["embed_tokens.weight"]) + W["lm_head.bias"]
    pair_rep = bias.permute(0, 2, 3, 1)
    dh = layer_norm(gelu(F.linear(pair_rep, W["dist_head.dense.weight"], W["dist_head.dense.bias"])), W["dist_head.layer_norm.weight"], W["dist_head.layer_norm.bias"])
    dh = F.linear(dh, W["dist_head.out_proj.weight"], W["dist_head.out_proj.bias"]).squeeze(-1)
    dist_pred = (dh + dh.transpose(-1, -2)) * 0.5
    # contacts (ContactPredictionHead)
    att = torch.stack(probs_all, 1)                                         # [B,L,H,T,T]
    keep = (~pad).float()
    att = att * (keep[:, None, :] * keep[:, :, None])[:, None, None]
    eos = tokens.ne(2).float()
    att = att * (eos[:, None, :] * eos[:, :, None])[:, None, None]
    att = att[..., :-1, :-1][..., 1:, 1:]
    att = att.reshape(B, L * H, T - 2, T - 2)
    att = att + att.transpose(-1, -2)
    a1, a2, a12 = att.sum(-1, keepdim=True), att.sum(-2, keepdim=True), att.sum((-1, -2), keepdim=True)
    att = (att - a1 * a2 / a12).permute(0, 2, 3, 1)
    contacts = torch.sigmoid(F.linear(att, W["contact_head.regression.weight"], W["contact_head.regression.bias"]).squeeze(-1))
    return logits, reps, pair_rep, dist_pred, contacts


def esm_aa_names(cfg):
    E, H, L, V, K = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"], cfg["vocab_size"], cfg["gaussian_kernels"]
    n = [("embed_tokens.weight", [V, E])]
    for i in range(L):
        p = f"layers.{i}."
        for m in ("q_proj", "k_proj", "v_proj", "out_proj"):
            n += [(p + f"self_attn.{m}.weight", [E, E]), (p + f"self_attn.{m}.bias", [E])]
        n += [(p + "self_attn_layer_norm.weight", [E]), (p + "self_attn_layer_norm.bias", [E]),
              (p + "fc1.weight", [4 * E, E]), (p + "fc1.bias", [4 * E]), (p + "fc2.weight", [E, 4 * E]), (p + "fc2.bias", [E]),
              (p + "final_layer_norm.weight", [E]), (p + "final_layer_norm.bias", [E])]
    n += [("emb_layer_norm_after.weight", [E]), ("emb_layer_norm_after.bias", [E]),
          ("lm_head.dense.weight", [E, E]), ("lm_head.dense.bias", [E]), ("lm_head.layer_norm.weight", [E]),
          ("lm_head.layer_norm.bias", [E]), ("lm_head.bias", [V]),
          ("contact_head.regression.weight", [1, L * H]), ("contact_head.regression.bias", [1]),
          ("gbf.means.weight", [1, K]), ("gbf.stds.weight", [1, K]), ("gbf.mul.weight", [V * V, 1]), ("gbf.bias.weight", [V * V, 1]),
          ("gbf_proj.linear1.weight", [K, K]), ("gbf_proj.linear1.bias", [K]), ("gbf_proj.linear2.weight", [H, K]),
          ("gbf_proj.linear2.bias", [H]), ("dist_head.dense.weight", [H, H]), ("dist_head.dense.bias", [H]),
          ("dist_head.layer_norm.weight", [H]), ("dist_head.layer_norm.bias", [H]), ("dist_head.out_proj.weight", [1, H]),
          ("dist_head.out_proj.bias", [1])]
    return [[k, s] for k, s in n]


def esm_aa_case(out_dir, tag, layers, dim, heads, pdb):
    cfg = dict(vocab_size=59, hidden_size=dim, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=4 * dim,
               layer_norm_eps=1e-5, token_dropout=True, pair_bias=True, gaussian_kernels=128)
    names = esm_aa_names(cfg)
    W = {k: torch.from_numpy(det_values(k, tuple(s))) for k, s in names}
    a = code_switch_from_pdb(pdb, 24, {2, 7, 8, 15})
    b = code_switch_from_pdb(pdb, 12, {0, 5})
    T = max(len(a[0]), len(b[0]))
    B = 2
    tokens = torch.full((B, T), 1, dtype=torch.long)
    aa_mask = torch.zeros((B, T), dtype=torch.long)
    coords = np.full((B, T, 3), np.nan)
    for i, (tk, am, xyz) in enumerate([a, b]):
        tokens[i, :len(tk)] = torch.tensor(tk)
        aa_mask[i, :len(am)] = torch.tensor(am)
        coords[i, :len(tk)] = xyz
    tokens[0, 3] = 32  # a masked residue
    dist = torch.zeros((B, T, T), dtype=torch.float32)
    etype = torch.full((B, T, T), -1, dtype=torch.long)
    for bi in range(B):
        atoms = [i for i in range(T) if aa_mask[bi, i] == 0 and tokens[bi, i] != 1 and not np.isnan(coords[bi, i, 0])]
        for i in atoms:
            for j in atoms:
                dist[bi, i, j] = float(np.float32(np.linalg.norm(coords[bi, i].astype(np.float32) - coords[bi, j].astype(np.float32))))
                etype[bi, i, j] = tokens[bi, i] * 59 + tokens[bi, j]
    mid = layers // 2
    with torch.no_grad():
        logits, reps, pair, dpred, contacts = esm_aa_forward(W, cfg, tokens, aa_mask, dist, etype, [0, mid, layers])
    outputs = {
        "tokens": tokens.numpy().astype(np.int64), "aa_mask": aa_mask.numpy().astype(np.int64),
        "coords": np.nan_to_num(coords, nan=0.0).astype(np.float32), "has_coords": (~np.isnan(coords[..., 0])).astype(np.int64),
        "logits": logits.numpy(), "rep_0": reps[0].numpy(), f"rep_{mid}": reps[mid].numpy(), f"rep_{layers}": reps[layers].numpy(),
        "pair": pair.numpy(), "distances": dpred.numpy(), "contacts": contacts.numpy(),
    }
    write_case(out_dir, tag, cfg, names, outputs, extra={"repr_layers": [0, mid, layers], "source": "tests/reference/esm_reference.py esm_aa_forward (official ESM-AA semantics)"})


# ---------------------------------------------------------------- Hugging Face + torch checkpoint


def hf_case(out_dir):
    from transformers import EsmConfig, EsmForMaskedLM, EsmTokenizer

    import esm
    tiny = dict(layers=2, dim=40, heads=4)
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    ref = esm.model.esm2.ESM2(num_layers=2, embed_dim=40, attention_heads=4, alphabet=alphabet, token_dropout=True)
    fill(ref)
    ref.eval()
    c = EsmConfig(vocab_size=33, hidden_size=40, num_hidden_layers=2, num_attention_heads=4, intermediate_size=160,
                  position_embedding_type="rotary", token_dropout=True, mask_token_id=32, pad_token_id=1,
                  emb_layer_norm_before=False, layer_norm_eps=1e-5)
    hf = EsmForMaskedLM(c)
    sd = {}
    rename = {"self_attn.q_proj": "attention.self.query", "self_attn.k_proj": "attention.self.key",
              "self_attn.v_proj": "attention.self.value", "self_attn.out_proj": "attention.output.dense",
              "self_attn_layer_norm": "attention.LayerNorm", "fc1": "intermediate.dense", "fc2": "output.dense",
              "final_layer_norm": "LayerNorm"}
    for k, v in ref.state_dict().items():
        if k.endswith("inv_freq") or k == "lm_head.weight":
            continue
        if k.startswith("layers."):
            _, i, rest = k.split(".", 2)
            for a, b in rename.items():
                if rest.startswith(a + "."):
                    rest = b + rest[len(a):]
                    break
            sd[f"esm.encoder.layer.{i}.{rest}"] = v
        elif k == "embed_tokens.weight":
            sd["esm.embeddings.word_embeddings.weight"] = v
            sd["lm_head.decoder.weight"] = v
        elif k.startswith("emb_layer_norm_after"):
            sd["esm.encoder." + k] = v
        elif k.startswith("contact_head"):
            sd["esm." + k] = v
        else:
            sd[k] = v
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    assert not unexpected, unexpected
    assert all(m.endswith("inv_freq") for m in missing), missing
    hf.eval()
    d = os.path.join(out_dir, "hf-tiny")
    hf.save_pretrained(d)
    with open(os.path.join(d, "vocab.txt"), "w") as f:
        f.write("\n".join(alphabet.all_toks) + "\n")
    seqs = [("a", "MKTAYIAKQRQISFVKSHFSRQ"), ("b", "GSHMLEDP")]
    _, _, tokens = alphabet.get_batch_converter()(seqs)
    tokens[0, 4] = alphabet.mask_idx
    with torch.no_grad():
        r_ref = ref(tokens, repr_layers=[2], return_contacts=True)
        r_hf = hf(input_ids=tokens, attention_mask=tokens.ne(1).long(), output_hidden_states=True)
    hf_logits = r_hf.logits.numpy()
    diff = np.abs(hf_logits - r_ref["logits"].numpy()).max()
    print(f"hf-tiny: transformers EsmForMaskedLM vs fair-esm logits max abs diff {diff:.2e}")
    save_file({"tokens": tokens.numpy().astype(np.int64), "logits": hf_logits, "contacts": r_ref["contacts"].numpy()},
              os.path.join(out_dir, "hf_tiny_expected.safetensors"))
    # The same weights as an ESM-AA-style torch checkpoint (for `allatom convert`).
    state = {}
    for k, v in ref.state_dict().items():
        if k.startswith("contact_head"):
            continue
        state["encoder.sentence_encoder." + k if not k.startswith("lm_head") else "encoder." + k] = v.clone()
    ns = argparse.Namespace(encoder_layers=2, encoder_embed_dim=40, encoder_attention_heads=4, token_dropout=True,
                            encoder_ffn_embed_dim=160)
    torch.save({"cfg": {"model": ns}, "model": state}, os.path.join(out_dir, "fairesm_tiny.pt"))


def esm_aa_checkpoint_case(out_dir, pdb):
    """A tiny ESM-AA torch checkpoint in the official layout (`encoder.sentence_encoder.` /
    `encoder.` prefixes, tied `lm_head.weight`, cfg.model Namespace) and its outputs."""
    cfg = dict(vocab_size=59, hidden_size=40, num_hidden_layers=2, num_attention_heads=4, intermediate_size=160,
               layer_norm_eps=1e-5, token_dropout=True, pair_bias=True, gaussian_kernels=128)
    names = esm_aa_names(cfg)
    W = {k: torch.from_numpy(det_values(k, tuple(s))) for k, s in names}
    toks, aa, xyz = code_switch_from_pdb(pdb, 10, {1, 4})
    T = len(toks)
    tokens = torch.tensor([toks])
    aa_mask = torch.tensor([aa])
    dist = torch.zeros((1, T, T))
    etype = torch.full((1, T, T), -1, dtype=torch.long)
    atoms = [i for i in range(T) if aa[i] == 0]
    for i in atoms:
        for j in atoms:
            dist[0, i, j] = float(np.float32(np.linalg.norm(xyz[i].astype(np.float32) - xyz[j].astype(np.float32))))
            etype[0, i, j] = toks[i] * 59 + toks[j]
    with torch.no_grad():
        logits, _, _, _, _ = esm_aa_forward(W, cfg, tokens, aa_mask, dist, etype, [])
    state = {}
    for k, v in W.items():
        if k.startswith("contact_head"):
            continue  # the released ESM-AA checkpoint has no contact regression
        state[("encoder." if k.startswith(("lm_head", "dist_head")) else "encoder.sentence_encoder.") + k] = v.clone()
    state["encoder.lm_head.weight"] = W["embed_tokens.weight"].clone()
    state["encoder.sentence_encoder.layers.0.self_attn.rot_emb.inv_freq"] = torch.zeros(5)
    ns = argparse.Namespace(encoder_layers=2, encoder_embed_dim=40, encoder_attention_heads=4, token_dropout=True)
    torch.save({"cfg": {"model": ns}, "model": state}, os.path.join(out_dir, "esm_aa_tiny.pt"))
    save_file({"tokens": tokens.numpy().astype(np.int64), "aa_mask": aa_mask.numpy().astype(np.int64),
               "coords": np.nan_to_num(xyz, nan=0.0).astype(np.float32)[None], "logits": logits.numpy()},
              os.path.join(out_dir, "esm_aa_tiny_expected.safetensors"))
    print(f"esm_aa_tiny.pt: {len(state)} tensors, {T} tokens")


def write_case(out_dir, tag, cfg, names, outputs, extra):
    meta = dict(config=cfg, params=names, **extra)
    with open(os.path.join(out_dir, f"{tag}.json"), "w") as f:
        json.dump(meta, f, indent=1)
    save_file({k: np.ascontiguousarray(v) for k, v in outputs.items()}, os.path.join(out_dir, f"{tag}_expected.safetensors"))
    print(f"{tag}: {len(names)} parameters, {sum(int(np.prod(s)) for _, s in names):,} values")


def main():
    out_dir, pdb = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(0)
    esm2_case(out_dir, "esm2_t6_8m", 6, 320, 20)
    esm2_case(out_dir, "esm2_t12_35m", 12, 480, 20)
    esm_aa_case(out_dir, "esm_aa_t6_8m", 6, 320, 20, pdb)
    esm_aa_case(out_dir, "esm_aa_t12_35m", 12, 480, 20, pdb)
    hf_case(out_dir)
    esm_aa_checkpoint_case(out_dir, pdb)


if __name__ == "__main__":
    main()
