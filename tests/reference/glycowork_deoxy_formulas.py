"""Independent formulas of configuration-named deoxy sugars (6dAraHex, 6dLyxHex, 6dXylHex,
6dRibHex and their amino forms): every glycan of the PreGlycanAA set and of glycowork 1.11's
species table whose name has one, through glycowork's own SMILES writer
(`glycowork.motif.smiles.glycan_to_smiles`) and RDKit's formula — written to
crates/glycan-aa/tests/fixtures/glycowork_deoxy_formulas.csv (glycans glycowork cannot write
are left out).

    python3 -m venv /tmp/gly && /tmp/gly/bin/pip install glycowork==1.11.0 rdkit
    pip download --no-deps glycowork==1.11.0 -d /tmp/gw && (cd /tmp/gw && unzip -q glycowork-1.11.0-py3-none-any.whl -d gw)
    /tmp/gly/bin/python tests/reference/glycowork_deoxy_formulas.py ../shared/data/glycans/glycan_pretrain.csv \
        /tmp/gw/gw/glycowork/glycan_data/v12_df_species.csv crates/glycan-aa/tests/fixtures/glycowork_deoxy_formulas.csv
"""
import csv
import re
import sys

import pandas as pd
from glycowork.motif.smiles import glycan_to_smiles
from rdkit import Chem
from rdkit.Chem.rdMolDescriptors import CalcMolFormula

PATTERN = re.compile(r"\d*d(Ara|Lyx|Xyl|Rib)Hex")


def main():
    pretrain, species, out = sys.argv[1:4]
    glycans = {r[0] for r in csv.reader(open(pretrain)) if r and PATTERN.search(r[0])}
    glycans |= {str(g) for g in pd.read_csv(species)["glycan"].unique() if PATTERN.search(str(g))}
    rows = []
    for g in sorted(glycans):
        try:
            m = Chem.MolFromSmiles(glycan_to_smiles(g))
        except Exception:
            continue
        if m is not None:
            rows.append((g, CalcMolFormula(m)))
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["glycan", "formula"])
        w.writerows(rows)
    print(f"{len(rows)} of {len(glycans)} glycans written to {out}")


if __name__ == "__main__":
    main()
