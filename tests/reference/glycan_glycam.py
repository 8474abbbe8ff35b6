"""Writes the GLYCAM fixture: real glycans of the PreGlycanAA set (every 20th) in GLYCAM
condensed notation (GLYCAM-Web's builder input, `DGalpb1-4DGlcpNAcb1-OH`), written by two tools
independent of this workspace — glycowork 1.11.0's `glycan_to_glycam` and crabwurcs 0.3.3's
`convert(..., "glycam")` — each kept only where the *other* tool reads it back into the same
glycan (crabwurcs's GLYCAM reader for glycowork's strings, glycowork's `glycam_to_iupac` for
crabwurcs's, compared after `canonicalize_iupac`, the reducing-end link left out), so that a
tool's own bug does not become a test case. The counts are written into the fixture.

    python -m venv /tmp/gly && /tmp/gly/bin/pip install crabwurcs==0.3.3 glycowork==1.11.0
    /tmp/gly/bin/python tests/reference/glycan_glycam.py \
        ../shared/data/glycans/glycan_pretrain.csv crates/glycan-aa/tests/fixtures/glycam.json
"""
import csv
import json
import sys

import crabwurcs
from glycowork.motif.processing import glycam_to_iupac, glycan_to_glycam

from glycan_notations import STRIDE, canon  # the same sample and comparison as the WURCS/GlycoCT fixture


def main(src, out):
    rows = list(csv.DictReader(open(src)))
    glycans = [r["IUPAC Condensed"] for r in rows][::STRIDE]
    stats = {"sampled": len(glycans), "glycowork_written": 0, "glycowork_kept": 0, "crabwurcs_written": 0, "crabwurcs_kept": 0}
    records = []
    for g in glycans:
        ref = canon(g)
        if ref is None:
            continue
        rec = {"iupac": g}
        try:
            s = glycan_to_glycam(g)
            stats["glycowork_written"] += 1
            if canon(crabwurcs.convert(s, "iupac-condensed", "glycam")) == ref:
                rec["glycowork"] = s
                stats["glycowork_kept"] += 1
        except Exception:
            pass
        try:
            s = crabwurcs.convert(g, "glycam", "iupac-condensed")
            stats["crabwurcs_written"] += 1
            if canon(glycam_to_iupac(s)) == ref:
                rec["crabwurcs"] = s
                stats["crabwurcs_kept"] += 1
        except Exception:
            pass
        if len(rec) > 1:
            records.append(rec)
    json.dump({"source": "glycowork 1.11.0 glycan_to_glycam, crabwurcs 0.3.3 convert; cross-checked", "stats": stats, "glycans": records},
              open(out, "w"), indent=0)
    print(stats)


if __name__ == "__main__":
    main(*sys.argv[1:3])
