"""The `allatom` Python package against the `allatom` CLI (same rows, bit for bit), its errors,
pickling, threads and the GIL, and the molecule and structure readers.

Run by `cargo xtask python-tests`, which builds the wheel and the CLI and sets ALLATOM_CLI.
"""

import csv
import doctest
import json
import os
import pickle
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import allatom

ROOT = Path(__file__).resolve().parents[3]
CLI = os.environ.get("ALLATOM_CLI", str(ROOT / "target" / "debug" / "allatom"))
ESM_TINY = ROOT / "crates" / "aa-codeswitch" / "tests" / "fixtures" / "hf-tiny"
STRUCTURE = ROOT / "data" / "fetched" / "structures" / "biopython" / "7DDO.pdb"
GLYCAN_TASK = ROOT / "data" / "tasks" / "glycan_type.csv"


def real_glycans(n=300, step=70):
    with open(GLYCAN_TASK, newline="") as f:
        rows = [r["glycan"] for r in csv.DictReader(f)]
    return rows[::step][:n]


def cli(*args, ok=True):
    p = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True)
    if ok:
        assert p.returncode == 0, p.stderr
    return p


@pytest.fixture(scope="module")
def enc():
    return allatom.Encoder.from_pretrained()


def test_cli_binary_present():
    assert Path(CLI).is_file(), f"build the CLI first (cargo build -p allatom-cli) or set ALLATOM_CLI; {CLI}"


def test_glycans_equal_the_cli_bit_for_bit(enc, tmp_path):
    glycans = real_glycans()
    assert len(glycans) > 250
    (tmp_path / "g.txt").write_text("\n".join(glycans) + "\n")
    # A small chunk: several chunks, as in a large job.
    cli("embed", "--glycans", tmp_path / "g.txt", "--chunk", "100", "--out", tmp_path / "g.npy")
    want = np.load(tmp_path / "g.npy")
    got = enc.embed(glycans, chunk=100)
    assert got.dtype == np.float32 and got.shape == want.shape == (len(glycans), enc.dim)
    assert got.tobytes() == want.tobytes()
    # The default chunk too, and other notations of the same glycans read as their IUPAC form.
    cli("embed", "--glycans", tmp_path / "g.txt", "--out", tmp_path / "h.npy")
    assert enc.embed(glycans).tobytes() == np.load(tmp_path / "h.npy").tobytes()


def test_unit_level_equals_the_cli(enc, tmp_path):
    glycans = real_glycans(40)
    (tmp_path / "g.txt").write_text("\n".join(glycans) + "\n")
    cli("embed", "--glycans", tmp_path / "g.txt", "--level", "unit", "--out", tmp_path / "u.safetensors")
    from_cli = _safetensors(tmp_path / "u.safetensors")
    e = enc.embed(glycans, level="unit")
    assert isinstance(e, allatom.Embeddings) and len(e) == len(glycans)
    assert e.values.tobytes() == from_cli["embeddings"].tobytes()
    assert np.array_equal(e.input_index, from_cli["input_index"])
    assert np.array_equal(e.unit_index, from_cli["unit_index"])
    meta = [json.loads(l) for l in (tmp_path / "u.jsonl").read_text().splitlines()]
    assert e.metadata == meta
    for i, r in enumerate(meta):
        assert e[i].shape[0] == r["rows"][1] - r["rows"][0] == len(r["units"])


def _safetensors(path):
    """A safetensors file of F32/U32 tensors, read with NumPy (no torch, no safetensors)."""
    b = Path(path).read_bytes()
    n = int.from_bytes(b[:8], "little")
    head = json.loads(b[8 : 8 + n])
    out = {}
    for name, t in head.items():
        if name == "__metadata__":
            continue
        lo, hi = t["data_offsets"]
        dt = {"F32": np.float32, "U32": np.uint32}[t["dtype"]]
        out[name] = np.frombuffer(b[8 + n + lo : 8 + n + hi], dtype=dt).reshape(t["shape"])
    return out


def test_esm_sequences_equal_the_cli(tmp_path):
    esm = allatom.Encoder.from_pretrained(ESM_TINY)
    assert esm.family == "esm"
    seqs = ["MKTAYIAKQRQISFVKSHFSRQ", "GSHMLEDPVDAFQ", "MVLSPADKTNVKAAWGKVGAHAGEYGAEALERMFLSFPTTKTYFPHF"]
    (tmp_path / "s.fasta").write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    cli("embed", "--model", ESM_TINY, "--fasta", tmp_path / "s.fasta", "--out", tmp_path / "s.npy")
    got = esm.embed(seqs)  # strings are sequences for an ESM model
    assert got.tobytes() == np.load(tmp_path / "s.npy").tobytes()
    one = esm.embed(seqs[0])
    assert one.shape == (esm.dim,)
    cli("embed", "--model", ESM_TINY, "--sequence", seqs[0], "--out", tmp_path / "one.npy")
    assert one.tobytes() == np.load(tmp_path / "one.npy")[0].tobytes()


@pytest.mark.skipif(not STRUCTURE.is_file(), reason="run `cargo xtask fetch-data` first")
def test_a_structure_equals_the_cli(enc, tmp_path):
    for model in [None, ESM_TINY]:
        args = ["--model", model] if model else []
        cli("embed", *args, "--structure", STRUCTURE, "--out", tmp_path / "x.npy")
        e = allatom.Encoder.from_pretrained(model) if model else enc
        got = e.embed([STRUCTURE])  # a path: a structure
        assert got.tobytes() == np.load(tmp_path / "x.npy").tobytes(), model
        # One path: still a row per chain / glycan tree.
        assert e.embed(str(STRUCTURE), kind="structure").tobytes() == got.tobytes()


def test_bad_inputs_raise_the_named_exceptions(enc, tmp_path):
    with pytest.raises(allatom.GlycanParseError) as err:
        enc.embed("Gal(b1-4")
    assert err.value.position == 3 and err.value.input == "Gal(b1-4"
    assert "at character 4" in str(err.value)
    bad = tmp_path / "bad.pdb"
    bad.write_text("this is not a structure\n")
    with pytest.raises(allatom.StructureError):
        allatom.read_structure(bad)
    with pytest.raises(allatom.StructureError):
        enc.embed(bad)
    with pytest.raises(allatom.StructureError):
        allatom.read_structure(tmp_path / "missing.cif")
    with pytest.raises(allatom.ModelError):
        allatom.Encoder.from_pretrained(tmp_path / "no-such-package")
    # A package whose weights do not fit its configuration.
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "config.json").write_text(json.dumps(enc.config))
    (pkg / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(allatom.ModelError):
        allatom.Encoder.from_pretrained(pkg)
    with pytest.raises(ValueError):
        enc.embed(["Gal"], level="residue")
    with pytest.raises(TypeError):
        enc.embed([1, 2])
    assert issubclass(allatom.GlycanParseError, allatom.AllatomError)
    assert issubclass(allatom.ModelError, allatom.AllatomError)


def test_open_link_glycans_are_read_and_unknown_names_refused():
    assert allatom.Glycan("GlcNAc(b1-").units == ["GlcNAc"]
    with pytest.raises(allatom.GlycanParseError):
        allatom.Glycan("Xyz(b1-4)Glc")


def test_a_bad_item_costs_its_own_row(enc):
    glycans = ["Neu5Ac(a2-3)Gal(b1-4)GlcNAc", "Gal(b1-4", "Fuc(a1-2)Gal"]
    with pytest.warns(allatom.InputWarning, match="input 1"):
        x = enc.embed(glycans)
    assert x.shape == (3, enc.dim)
    assert np.isnan(x[1]).all() and np.isfinite(x[[0, 2]]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        good = enc.embed([glycans[0], glycans[2]])
    assert np.isfinite(good).all()
    u = enc.embed(glycans, level="unit")
    assert u.errors[0] is None and "at character" in u.errors[1] and u.errors[2] is None
    assert u[1].shape == (0, enc.unit_dim)
    assert u[0].shape[0] == 3 and u[2].shape[0] == 2


def test_pickling_round_trip(enc, tmp_path):
    glycans = real_glycans(50)
    again = pickle.loads(pickle.dumps(enc))
    assert again.name == enc.name and again.dim == enc.dim
    assert again.embed(glycans).tobytes() == enc.embed(glycans).tobytes()
    esm = allatom.Encoder.from_pretrained(ESM_TINY, threads=1)
    esm2 = pickle.loads(pickle.dumps(esm))
    assert esm2.threads == 1
    assert esm2.embed(["MKTAYIAKQ"]).tobytes() == esm.embed(["MKTAYIAKQ"]).tobytes()


def _worker_names():
    """Names of this process's allatom worker threads (`allatom<pool>-<i>`)."""
    names = set()
    for t in os.listdir("/proc/self/task"):
        try:
            n = (Path("/proc/self/task") / t / "comm").read_text().strip()
        except OSError:  # a thread that ended meanwhile
            continue
        if n.startswith("allatom"):
            names.add(n)
    return names


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc")
def test_threads_setting_is_honoured():
    glycans = real_glycans(120)
    before = _worker_names()
    one = allatom.Encoder.from_pretrained(threads=1)
    mid = _worker_names()
    three = allatom.Encoder.from_pretrained(threads=3)
    after = _worker_names()
    assert (one.threads, three.threads) == (1, 3)
    # Each encoder starts a pool of its own, of exactly that many workers.
    assert len(mid - before) == 1 and len(after - mid) == 3, (before, mid, after)
    assert one.embed(glycans).tobytes() == three.embed(glycans).tobytes()
    with pytest.raises(ValueError):
        allatom.Encoder.from_pretrained(threads=0)
    # From the environment: RAYON_NUM_THREADS, else OMP_NUM_THREADS (what Ray sets).
    code = "import allatom; print(allatom.Encoder.from_pretrained().threads)"
    for env, want in [({"OMP_NUM_THREADS": "1"}, "1"), ({"RAYON_NUM_THREADS": "2", "OMP_NUM_THREADS": "1"}, "2")]:
        clean = {k: v for k, v in os.environ.items() if k not in ("RAYON_NUM_THREADS", "OMP_NUM_THREADS")}
        out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True)
        assert out.stdout.strip() == want, (env, out.stderr)


def test_the_gil_is_released_while_embedding(enc):
    glycans = real_glycans(300, step=20) * 4
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=tick)
    t.start()
    time.sleep(0.01)
    start = time.perf_counter()
    enc.embed(glycans)
    end = time.perf_counter()
    stop.set()
    t.join()
    during = [x for x in ticks if start < x < end]
    # Holding the GIL, the other thread could not run at all during the call.
    assert end - start > 0.05 and len(during) >= 5, (end - start, len(during))


def test_glycan_molecules():
    g = allatom.Glycan("Neu5Ac(a2-3)Gal(b1-4)GlcNAc")
    assert g.formula == "C25H42N2O19" and g.units == ["Neu5Ac", "Gal", "GlcNAc"]
    n = len(g)
    assert n == len(g.elements) == len(g.atom_names) == g.atomic_numbers.shape[0] == g.atom_unit.shape[0]
    assert g.bonds.shape[1] == 2 and g.bonds.max() < n and g.bond_orders.shape[0] == g.bonds.shape[0]
    assert g.links.shape == (2, 2) and g.rings == 3
    heavy = {"C": 25, "N": 2, "O": 19}
    assert {e: g.elements.count(e) for e in heavy} == heavy
    assert int(g.hydrogens.sum()) == 42
    sulfated = allatom.Glycan("GlcNAc6S(b1-3)Gal")
    plain = allatom.Glycan("GlcNAc(b1-3)Gal")
    assert "S" in sulfated.elements and "S" not in plain.elements
    assert len(sulfated) == len(plain) + 4  # S and three O
    # Other notations: the same molecule as the IUPAC-condensed form they are read as.
    short = allatom.Glycan("Galb1-4GlcNAcb-Sp8")
    assert short.iupac == "Gal(b1-4)GlcNAc(b1-" and short.aglycone == "Sp8"
    assert short.formula == allatom.Glycan(short.iupac).formula
    greek = allatom.Glycan("Galβ1-4GlcNAc")
    assert greek.formula == allatom.Glycan("Gal(b1-4)GlcNAc").formula
    with pytest.raises(ValueError):
        allatom.Glycan("Gal", format="smiles")


@pytest.mark.skipif(not STRUCTURE.is_file(), reason="run `cargo xtask fetch-data` first")
def test_read_structure():
    s = allatom.read_structure(STRUCTURE)
    assert s.chains == ["A", "C"] and s.residues == 791
    assert len(s.glycans) == 4 and all(g["attached_to"].startswith("ASN") for g in s.glycans)
    assert s.coordinates.shape == (len(s), 3) and s.coordinates.dtype == np.float32
    assert s.b_factors.shape == (len(s),) and s.atom_unit.max() < len(s.units)
    kinds = {u["kind"] for u in s.units}
    assert {"residue", "monosaccharide"} <= kinds
    first = s.glycans[0]["units"][0]
    assert s.units[first]["kind"] == "monosaccharide"


def test_docstring_examples():
    failures, tried = doctest.testmod(allatom, verbose=False)
    assert tried > 0 and failures == 0


def test_hub_ids_from_a_local_cache(tmp_path):
    """A hub id resolved from a huggingface_hub-layout cache (`cache_dir`), offline
    (`local_files_only`), at a branch or a `revision`; nothing cached is a ModelError."""
    import hashlib

    commits = {"main": "a" * 40, "v1": "b" * 40}
    repo = tmp_path / "models--someone--esm-tiny"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    for ref, commit in commits.items():
        snap = repo / "snapshots" / commit
        snap.mkdir(parents=True)
        for f in ESM_TINY.iterdir():
            # The hub layout: content in blobs/<sha256>, snapshots link to it.
            data = f.read_bytes()
            blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
            blob.write_bytes(data)
            (snap / f.name).symlink_to(os.path.relpath(blob, snap))
        (repo / "refs" / ref).write_text(commit)
    seqs = ["MKTAYIAKQRQISFVKSHFSRQ", "GSHMLEDPVDAFQ"]
    want = allatom.Encoder.from_pretrained(ESM_TINY).embed(seqs)
    for revision in [None, "v1"]:
        e = allatom.Encoder.from_pretrained("someone/esm-tiny", revision=revision, cache_dir=tmp_path, local_files_only=True)
        assert e.family == "esm" and commits[revision or "main"] in e.origin
        assert e.embed(seqs).tobytes() == want.tobytes()
        assert pickle.loads(pickle.dumps(e)).embed(seqs).tobytes() == want.tobytes()
    with pytest.raises(allatom.ModelError):
        allatom.Encoder.from_pretrained("someone/other", cache_dir=tmp_path, local_files_only=True)
    with pytest.raises(allatom.ModelError, match="revision"):
        allatom.Encoder.from_pretrained("preglycanaa-small", revision="v1")
