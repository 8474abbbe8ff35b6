"""fair-esm (PyTorch) side of the ESM speed comparison: ESM-2 35M forward at batch 1 x 256 and
32 x 256 tokens, and a matmul of the FFN's shape, on the same threads as the Rust bench.

    /tmp/refenv/bin/python benches/esm_speed.py [threads=2]

Prints medians of repeated runs and tokens/s; `cargo bench -p allatom-benches --bench esm` is
the allatom side (run them back to back on a quiet machine).
"""
import statistics
import sys
import time

import esm
import torch

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
torch.set_num_threads(threads)
torch.set_grad_enabled(False)
alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
model = esm.model.esm2.ESM2(num_layers=12, embed_dim=480, attention_heads=20, alphabet=alphabet, token_dropout=True).eval()


def batch(b):
    t = torch.empty((b, 256), dtype=torch.long)
    for k in range(b):
        t[k, 0] = alphabet.cls_idx
        t[k, 1:255] = torch.tensor([4 + ((i * 7 + k * 13) % 20) for i in range(254)])
        t[k, 255] = alphabet.eos_idx
    return t


def median_seconds(fn, reps):
    fn()
    times = []
    for _ in range(reps):
        s = time.perf_counter()
        fn()
        times.append(time.perf_counter() - s)
    return statistics.median(times)


for b, reps in [(1, 30), (32, 5)]:
    x = batch(b)
    s = median_seconds(lambda: model(x)["logits"], reps)
    print(f"fair-esm esm2_t12_35M batch {b}x256: median {s * 1e3:.1f} ms, {b * 256 / s:,.0f} tokens/s ({threads} threads)")
a = torch.randn(8192, 480)
w = torch.randn(480, 1920)
s = median_seconds(lambda: a @ w, 10)
print(f"torch matmul 8192x480x1920: median {s * 1e3:.1f} ms, {2 * 8192 * 480 * 1920 / s / 1e9:.1f} GFLOP/s")
