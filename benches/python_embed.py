"""Python against the CLI, and Ray with 2 single-threaded actors against 1, on the PreGlycanAA
set (40,781 glycans; `../shared/data/glycans/glycan_pretrain.csv`), back to back.

    cargo build --release -p allatom-cli
    target/python-tests/venv/bin/maturin build --release -m crates/allatom-py/Cargo.toml -o target/wheels-release
    target/python-tests/venv/bin/pip install --force-reinstall --no-deps target/wheels-release/allatom-*.whl
    target/python-tests/venv/bin/python benches/python_embed.py [repeats=3] [ray_glycans=8000]

(`cargo xtask python-tests` makes the venv, with ray.) Prints each run and the medians:
- `allatom embed --glycans FILE --out X.npy` (wall time of the process, model load included)
  against `Encoder.from_pretrained().embed(list)` (load included, the CSV read by Python), the
  two alternating, same threads (every core); the rows are also checked to be the same bytes;
- Ray Data (`allatom.ray_data.embed_dataset`) over the first `ray_glycans` glycans with 1 and
  with 2 actors of 1 thread each, on `ray.init(num_cpus=3)` (one logical CPU left for the read
  tasks), wall time of `materialize()`, alternating.
"""

import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import allatom

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT.parent / "shared" / "data" / "glycans" / "glycan_pretrain.csv"
CLI = ROOT / "target" / "release" / "allatom"
repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
ray_n = int(sys.argv[2]) if len(sys.argv) > 2 else 8000


def glycans():
    with open(CSV, newline="") as f:
        return [r["IUPAC Condensed"].strip() for r in csv.DictReader(f)]


def run_cli(out):
    t = time.perf_counter()
    p = subprocess.run([CLI, "embed", "--glycans", CSV, "--out", out], capture_output=True, text=True)
    dt = time.perf_counter() - t
    if p.returncode not in (0, 1):  # 1: some glycans failed (their records say why)
        raise SystemExit(p.stderr)
    return dt


def run_python():
    t = time.perf_counter()
    enc = allatom.Encoder.from_pretrained()
    x, records = enc.embed(glycans(), return_records=True)
    dt = time.perf_counter() - t
    return dt, x[[r.get("error") is None for r in records]]


def compare_cli_python():
    tmp = Path(tempfile.mkdtemp())
    cli_t, py_t = [], []
    for i in range(repeats):
        cli_t.append(run_cli(tmp / "cli.npy"))
        dt, x = run_python()
        py_t.append(dt)
        same = x.tobytes() == np.load(tmp / "cli.npy").tobytes()
        print(f"run {i}: CLI {cli_t[-1]:.2f} s, Python {dt:.2f} s, same bytes: {same}", flush=True)
    c, p = statistics.median(cli_t), statistics.median(py_t)
    n = len(glycans())
    print(f"median: CLI {c:.2f} s ({n / c:,.0f} glycans/s), Python {p:.2f} s ({n / p:,.0f} glycans/s), Python/CLI {p / c:.3f}")


def compare_ray():
    import ray
    import allatom.ray_data as ard

    tmp = Path(tempfile.mkdtemp())
    (tmp / "g.txt").write_text("\n".join(glycans()[:ray_n]) + "\n")
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    times = {1: [], 2: []}
    for i in range(repeats):
        for actors in (1, 2):
            ds = ray.data.read_text(str(tmp / "g.txt"))
            t = time.perf_counter()
            n = ard.embed_dataset(ds, concurrency=actors, num_cpus=1, threads=1, batch_size=1024).materialize().count()
            times[actors].append(time.perf_counter() - t)
            print(f"run {i}: {actors} actor(s) {times[actors][-1]:.2f} s for {n} glycans", flush=True)
    one, two = statistics.median(times[1]), statistics.median(times[2])
    print(f"median: 1 actor {one:.2f} s ({ray_n / one:,.0f}/s), 2 actors {two:.2f} s ({ray_n / two:,.0f}/s), speed-up {one / two:.2f}x")
    ray.shutdown()


if __name__ == "__main__":
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores")
    compare_cli_python()
    compare_ray()
