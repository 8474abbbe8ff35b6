"""Independent reference for glycan chemistry: IUPAC-condensed -> SMILES (glyles) -> RDKit.

Writes a CSV fixture with, per glycan, the molecular formula (with H), heavy-atom count,
heavy-heavy bond count and ring count as RDKit computes them from glyles' SMILES. The Rust
test `crates/glycan-aa/tests/reference_formulas.rs` compares our molecules against it.

Regenerate (needs network access to PyPI once; keep torch/rdkit out of CI):
    python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install rdkit glyles
    /tmp/refenv/bin/python tests/reference/glyles_formulas.py \
        --out crates/glycan-aa/tests/fixtures/glyles_reference.csv --n 1500 --seed 7 \
        ../shared/data/glycans/glycan_pretrain.csv <path to glycowork>/glycan_data/v12_df_species.csv

glyles versions used for the committed fixture: see the header line of the CSV.
"""
import argparse
import csv
import random
import sys
import logging

logging.disable(logging.CRITICAL)

from glyles import convert  # noqa: E402
from rdkit import Chem, RDLogger  # noqa: E402
from rdkit.Chem.rdMolDescriptors import CalcMolFormula  # noqa: E402

RDLogger.DisableLog("rdApp.*")


def read_glycans(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    col = header.index("IUPAC Condensed") if "IUPAC Condensed" in header else header.index("glycan")
    seen, out = set(), []
    for r in rows[1:]:
        g = r[col].strip()
        if g and g not in seen:
            seen.add(g)
            out.append(g)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=1000, help="glycans sampled per input file")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("inputs", nargs="+")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    import glyles, rdkit
    with open(a.out, "w", newline="") as f:
        f.write(f"# glyles {getattr(glyles, '__version__', '?')} rdkit {rdkit.__version__} seed {a.seed} n {a.n}\n")
        w = csv.writer(f)
        w.writerow(["source", "glycan", "formula", "heavy_atoms", "heavy_bonds", "rings"])
        for path in a.inputs:
            gs = read_glycans(path)
            sample = rng.sample(gs, min(a.n, len(gs)))
            kept = 0
            for g in sample:
                try:
                    smi = convert(g, returning=True)[0][1]
                except Exception:
                    continue
                if not smi:
                    continue
                m = Chem.MolFromSmiles(smi)
                if m is None:
                    continue
                w.writerow([path.split("/")[-1], g, CalcMolFormula(m), m.GetNumAtoms(),
                            m.GetNumBonds(), m.GetRingInfo().NumRings()])
                kept += 1
            print(f"{path}: {kept}/{len(sample)} converted by glyles", file=sys.stderr)


if __name__ == "__main__":
    main()
