"""Tables of models/RESULTS.md from an `allatom compare` output (results.json), beside the
GlycanML paper's Table 1 numbers (different data release, 50 epochs: not the same data).

    python3 models/results/paper_table.py runs/matrix/results.json
"""
import json
import statistics
import sys

rows = json.load(open(sys.argv[1]))["rows"]
LEVELS = ["domain", "kingdom", "phylum", "class", "order", "family", "genus", "species"]
PAPER = {
    "preglycanaa": [.661, .688, .502, .447, .297, .233, .203, .174, .850, .961, .297],
    "glycanaa": [.642, .683, .484, .429, .291, .221, .198, .157, .792, .950, .288],
    "rgcn": [.633, .647, .462, .373, .251, .203, .164, .146, .780, .948, .262],
}


def cell(enc, task, metric):
    v = [r["test"][metric] for r in rows if r["encoder"] == enc and r["task"] == task and metric in r["test"]]
    if not v:
        return "–"
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return f"{statistics.mean(v):.3f} ± {sd:.3f}" + ("" if len(v) == 3 else f" (n={len(v)})")


cols = [("taxonomy", f"macro_f1/taxonomy_{l}") for l in LEVELS] + [
    ("immunogenicity", "auprc"), ("glycan_type", "macro_f1"), ("interaction", "spearman")]
head = [l.capitalize() for l in LEVELS] + ["Immuno. AUPRC", "Glyc. type F1", "Interaction ρ"]
print("| encoder | " + " | ".join(head) + " |")
print("| --- |" + " --- |" * len(head))
for enc in ["preglycanaa", "glycanaa", "glycanaa_wp", "rgcn"]:
    print(f"| {enc} (ours) | " + " | ".join(cell(enc, t, m) for t, m in cols) + " |")
    if enc in PAPER:
        print(f"| {enc} (paper) | " + " | ".join(f"{x:.3f}" for x in PAPER[enc]) + " |")
print()
print("| encoder | DSSP accuracy | DSSP macro-F1 | ligand contact AUROC | ligand contact AUPRC | glycan mobility AUROC | glycan mobility AUPRC |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for enc in ["glycanaa_molecule", "vabs", "vabs_smpc", "esm_aa"]:
    print(f"| {enc} | " + " | ".join(cell(enc, t, m) for t, m in [
        ("dssp", "accuracy"), ("dssp", "macro_f1"), ("ligand_contact", "auroc"), ("ligand_contact", "auprc"),
        ("glycan_mobility", "auroc"), ("glycan_mobility", "auprc")]) + " |")
print()
print(f"{len(rows)} runs; {sum(r['seconds'] or 0 for r in rows):.0f} s of training calls in all")
