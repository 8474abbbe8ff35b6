"""Independent count of the glycan-mobility labels and two label-free baselines.

Reads glycontact's UniLectin table as `cargo xtask fetch-data` leaves it
(data/fetched/glycontact/glycontact/unilectin_data.json and the PDB files written from it in
data/fetched/glycontact/unilectin/), recomputes the labels of `protein_aa::tasks::
sugar_mobility_labels` in plain Python (per residue: mean heavy-atom B-factor; label 1 when above
the structure's mean over residues; structures with < 2 residues or a B-factor spread < 0.01 Å²
skipped), and scores two baselines by AUROC over every labelled residue (all splits):
fewer glycosidic neighbours = more mobile (terminal residues), and distance of the residue's
centroid from the glycan's centroid.

Run: python3 tests/reference/glycan_mobility_baselines.py (standard library only).
"""
import collections
import json
import math
import pathlib

root = pathlib.Path(__file__).resolve().parents[2] / "data/fetched/glycontact"
data = json.load(open(root / "glycontact/unilectin_data.json"))
rows = (root / "unilectin/index.csv").read_text().splitlines()[1:]


def auroc(scores, labels):
    pos = sorted(s for s, l in zip(scores, labels) if l)
    neg = sorted(s for s, l in zip(scores, labels) if not l)
    # Mann-Whitney U by counting, ties count one half.
    wins = 0.0
    for p in pos:
        wins += sum(1.0 if p > n else 0.5 if p == n else 0.0 for n in neg)
    return wins / (len(pos) * len(neg))


degree_score, distance_score, labels = [], [], []
for row in rows:
    fname, key = row.split(",", 1)
    key = json.loads(key)
    k = int(fname.split("_")[1].split(".")[0])
    _, links = data[key][k]
    residues = collections.defaultdict(list)
    for line in open(root / "unilectin" / fname):
        if line.startswith("HETATM") and line[76:78].strip() != "H":
            xyz = [float(line[30 + 8 * i : 38 + 8 * i]) for i in range(3)]
            residues[(line[21], int(line[22:26]))].append((float(line[60:66]), xyz))
    if len(residues) < 2:
        continue
    b = {r: sum(x[0] for x in v) / len(v) for r, v in residues.items()}
    if max(b.values()) - min(b.values()) < 0.01:
        continue
    mean = sum(b.values()) / len(b)
    # `links`: "<n>_<RES>" -> ["<n>_(<link>)"], "<n>_(<link>)" -> ["<m>_<RES>"].
    degree = collections.Counter()
    for src, dsts in links.items():
        if src.split("_", 1)[1].startswith("("):
            continue
        for link in dsts:
            for acceptor in links.get(link, []):
                degree[int(src.split("_")[0])] += 1
                degree[int(acceptor.split("_")[0])] += 1
    every = [p for v in residues.values() for _, p in v]
    centre = [sum(p[i] for p in every) / len(every) for i in range(3)]
    for r, v in residues.items():
        c = [sum(p[i] for _, p in v) / len(v) for i in range(3)]
        degree_score.append(-degree[r[1]])
        distance_score.append(math.dist(c, centre))
        labels.append(b[r] > mean)

print(f"{len(labels)} labelled residues, {sum(labels)} more mobile than their structure's mean")
print(f"AUROC, fewer glycosidic neighbours = more mobile: {auroc(degree_score, labels):.3f}")
print(f"AUROC, distance from the glycan centroid: {auroc(distance_score, labels):.3f}")
