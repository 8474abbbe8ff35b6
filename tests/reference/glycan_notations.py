"""Writes the notation fixture: real glycans of the PreGlycanAA set in IUPAC-condensed, with
WURCS 2.0 written by crabwurcs 0.3.3 and GlycoCT condensed written by glycowork 1.11.0 — two
tools independent of this workspace.

A conversion is kept only where the other tool reads it back into the same glycan
(glycowork's wurcs_to_iupac for crabwurcs's WURCS, glycowork's glycoct_to_iupac for its own
GlycoCT, both compared after canonicalize_iupac): crabwurcs 0.3.3 drops some modifications when
it reads IUPAC (Glc6P → plain Glc, Neu5,9Ac2 → 9-O-acetyl neuraminic acid, alditols), so an
unchecked conversion would test its bugs, not ours. The counts of dropped conversions are
written into the fixture. The reducing end's anomer is left out of the comparison (glycowork's
wurcs_to_iupac drops it; it is not part of the molecule).

    python -m venv /tmp/gly && /tmp/gly/bin/pip install crabwurcs==0.3.3 glycowork==1.11.0
    /tmp/gly/bin/python tests/reference/glycan_notations.py \
        ../shared/data/glycans/glycan_pretrain.csv crates/glycan-aa/tests/fixtures/notations.json
"""
import csv
import json
import re
import sys

import crabwurcs
from glycowork.motif.processing import canonicalize_iupac, glycan_to_glycoct, glycoct_to_iupac, wurcs_to_iupac

STRIDE = 20


def canon(g):
    """glycowork's canonical form without the reducing-end link: glycowork's wurcs_to_iupac
    drops the reducing end's anomer, which is not part of the molecule."""
    try:
        return re.sub(r"\([ab?]\d?-\??\)?$", "", canonicalize_iupac(g))
    except Exception:
        return None


def main(src, out):
    rows = list(csv.DictReader(open(src)))
    glycans = [r["IUPAC Condensed"] for r in rows][::STRIDE]
    records, stats = [], {"sampled": len(glycans), "wurcs_written": 0, "wurcs_kept": 0, "glycoct_written": 0, "glycoct_kept": 0}
    for g in glycans:
        ref = canon(g)
        rec = {"iupac": g}
        try:
            w = crabwurcs.convert(g, "wurcs", "iupac")
            stats["wurcs_written"] += 1
            back = wurcs_to_iupac(w)
            if ref is not None and canon(back) == ref:
                rec["wurcs"] = w
                stats["wurcs_kept"] += 1
        except Exception:
            pass
        try:
            c = glycan_to_glycoct(g)
            stats["glycoct_written"] += 1
            if c and ref is not None and canon(glycoct_to_iupac(c)) == ref:
                rec["glycoct"] = c
                stats["glycoct_kept"] += 1
        except Exception:
            pass
        if len(rec) > 1:
            records.append(rec)
    json.dump({"source": "PreGlycanAA glycan_pretrain.csv, every %dth row" % STRIDE,
               "tools": {"wurcs": "crabwurcs 0.3.3 convert(iupac -> wurcs)", "glycoct": "glycowork 1.11.0 glycan_to_glycoct"},
               "stats": stats, "records": records}, open(out, "w"), indent=0)
    print(stats)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
