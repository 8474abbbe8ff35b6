"""PyTorch AdamW on fixed parameters and gradients, the fixture for aa-pretrain's optimiser test.

Two parameter groups (encoder at lr_scale 0.1 with weight decay 0.05, head at 1.0 with 0.0),
four steps with the gradients below, learning rates 1e-2, 1e-2, 5e-3, 5e-3. Writes
crates/aa-pretrain/tests/fixtures/adamw_reference.json.

    /tmp/refenv/bin/python tests/reference/adamw_reference.py
"""
import json
import math
import pathlib

import torch

torch.set_default_dtype(torch.float64)


def values(n, seed):
    return [math.sin(seed * 1.7 + i * 0.91) * (1 + (i % 3)) for i in range(n)]


enc = torch.tensor(values(12, 1)).reshape(3, 4).requires_grad_()
head = torch.tensor(values(5, 2)).requires_grad_()
base_lr = 1e-2
opt = torch.optim.AdamW(
    [
        {"params": [enc], "lr": base_lr * 0.1, "weight_decay": 0.05},
        {"params": [head], "lr": base_lr, "weight_decay": 0.0},
    ],
    lr=base_lr, betas=(0.9, 0.999), eps=1e-8,
)
lrs = [1e-2, 1e-2, 5e-3, 5e-3]
steps = []
for t, lr in enumerate(lrs):
    opt.param_groups[0]["lr"] = lr * 0.1
    opt.param_groups[1]["lr"] = lr
    g_enc = torch.tensor(values(12, 10 + t)).reshape(3, 4)
    g_head = torch.tensor(values(5, 20 + t)) * 1e-3
    enc.grad, head.grad = g_enc, g_head
    opt.step()
    steps.append({
        "lr": lr,
        "grad_enc": g_enc.flatten().tolist(),
        "grad_head": g_head.tolist(),
        "enc": enc.detach().flatten().tolist(),
        "head": head.detach().tolist(),
    })
out = {
    "torch": torch.__version__,
    "enc0": values(12, 1),
    "head0": values(5, 2),
    "steps": steps,
}
path = pathlib.Path(__file__).resolve().parents[2] / "crates/aa-pretrain/tests/fixtures/adamw_reference.json"
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps(out, indent=1))
print("wrote", path)
