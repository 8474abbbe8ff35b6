"""Reference for the compatibility featurisation: per-residue atoms of the official GlycanAA code.

The official code (kasawa1234/GlycanAA, module/custom_data/all_atom_glycan.py) builds each
residue's atoms from a table `glycan2smiles` (core name -> SMILES of the free monosaccharide)
with RDKit via TorchDrug (heavy atoms only; bond types single/double/triple/aromatic). This
script reads that table out of the official source file (with `ast`, nothing is executed) and
writes, per core, the heavy-atom element counts and bond-type counts RDKit gives.

    /tmp/refenv/bin/python tests/reference/official_compat_units.py \
        <path to GlycanAA>/module/custom_data/all_atom_glycan.py \
        --out crates/glycan-aa/data/official_compat_units.csv
"""
import argparse
import ast
import csv
from collections import Counter

from rdkit import Chem


def read_table(path):
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "glycan2smiles" for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit(f"no glycan2smiles table in {path}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("source")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    table = read_table(a.source)
    with open(a.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["core", "heavy_atoms", "elements", "single", "double", "triple", "aromatic"])
        for core, smi in table.items():
            if not smi:
                w.writerow([core, 0, "", 0, 0, 0, 0])
                continue
            m = Chem.MolFromSmiles(smi)
            el = Counter(at.GetSymbol() for at in m.GetAtoms())
            bt = Counter(str(b.GetBondType()) for b in m.GetBonds())
            w.writerow([core, m.GetNumAtoms(), " ".join(f"{k}{v}" for k, v in sorted(el.items())),
                        bt["SINGLE"], bt["DOUBLE"], bt["TRIPLE"], bt["AROMATIC"]])


if __name__ == "__main__":
    main()
