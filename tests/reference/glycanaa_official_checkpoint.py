"""Writes an official-style GlycanAA / PreGlycanAA checkpoint for the `allatom convert` test,
in PyTorch's zip checkpoint format (what `torch.save` writes since torch 1.6), without torch.

The checkpoint has the layout of a TorchDrug engine checkpoint of the official PreGlycanAA
task (kasawa1234/GlycanAA): `{"model": task.state_dict(), "optimizer": {}}`, the encoder's
tensors under `model.` (the official GlycanAA names: `model.embedding.weight`,
`model.atom_layers.0.linear.weight`, ...) and the masking head under `mlp.layers.{0,1}`. The
encoder's weights (and BatchNorm's int64 `num_batches_tracked`) are the random ones of `glycanaa_weights.safetensors` (the GlycanAA parity
fixture: 210 node types and 89 relations, the official vocabulary's shape); the head is random.

    /tmp/refenv/bin/pip install numpy safetensors
    /tmp/refenv/bin/python tests/reference/glycanaa_official_checkpoint.py \
        crates/glycan-aa/tests/fixtures/glycanaa_weights.safetensors \
        crates/allatom-cli/tests/fixtures/glycanaa_official_tiny.pth

torch's format, as `torch.serialization` writes it: a zip archive `<name>/data.pkl` (pickle
protocol 2 of the object; each tensor is `torch._utils._rebuild_tensor_v2(storage, offset,
size, stride, requires_grad, OrderedDict())`, each storage a persistent id `("storage",
torch.FloatStorage, key, "cpu", numel)`), the raw little-endian storages as `<name>/data/<key>`,
`<name>/byteorder` and `<name>/version`. Stand-in modules named `torch` and `torch._utils`
make the pickler write those global names.
"""
import collections
import io
import pickle
import sys
import types
import zipfile

import numpy as np
from safetensors.numpy import load_file

torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")


class FloatStorage:
    """Stands for torch.FloatStorage (only its name is pickled)."""


class LongStorage:
    """Stands for torch.LongStorage (only its name is pickled)."""


def _rebuild_tensor_v2(*args):
    """Stands for torch._utils._rebuild_tensor_v2 (only its name is pickled)."""
    raise NotImplementedError


FloatStorage.__module__ = "torch"
LongStorage.__module__ = "torch"
torch.LongStorage = LongStorage
_rebuild_tensor_v2.__module__ = "torch._utils"
torch.FloatStorage = FloatStorage
torch._utils = torch_utils
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch_utils


class Storage:
    def __init__(self, key, array):
        self.key, self.array = key, array


class Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce__(self):
        stride, acc = [], 1
        for n in reversed(self.shape):
            stride.insert(0, acc)
            acc *= n
        return (_rebuild_tensor_v2, (self.storage, 0, tuple(self.shape), tuple(stride), False, collections.OrderedDict()))


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            kind = LongStorage if obj.array.dtype == np.int64 else FloatStorage
            return ("storage", kind, obj.key, "cpu", obj.array.size)
        return None


def save(state, path, name="archive"):
    storages = []

    def wrap(x):
        if isinstance(x, dict):
            return collections.OrderedDict((k, wrap(v)) for k, v in x.items())
        if isinstance(x, np.ndarray):
            dtype = "<i8" if x.dtype == np.int64 else "<f4"
            s = Storage(str(len(storages)), np.ascontiguousarray(x, dtype=dtype))
            storages.append(s)
            return Tensor(s, list(x.shape))
        return x

    obj = wrap(state)
    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(obj)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{name}/data.pkl", buf.getvalue())
        z.writestr(f"{name}/byteorder", "little")
        for s in storages:
            z.writestr(f"{name}/data/{s.key}", s.array.tobytes())
        z.writestr(f"{name}/version", "3\n")


def main():
    weights = load_file(sys.argv[1])
    rng = np.random.default_rng(0)
    model = collections.OrderedDict()
    for k in sorted(weights):
        model[f"model.{k}"] = weights[k]
        # BatchNorm's step counter, an int64 scalar in every torch state dict.
        if k.endswith("batch_norm.running_var"):
            model[f"model.{k[: -len('running_var')]}num_batches_tracked"] = np.array(1234, dtype=np.int64)
    d = weights["embedding.weight"].shape[1] * 3  # concatenated hidden states
    model["mlp.layers.0.weight"] = rng.normal(0, 0.1, (d, d)).astype(np.float32)
    model["mlp.layers.0.bias"] = np.zeros(d, np.float32)
    model["mlp.layers.1.weight"] = rng.normal(0, 0.1, (weights["embedding.weight"].shape[0], d)).astype(np.float32)
    model["mlp.layers.1.bias"] = np.zeros(weights["embedding.weight"].shape[0], np.float32)
    save({"model": model, "optimizer": {}}, sys.argv[2])
    print(f"{len(model)} tensors in {sys.argv[2]}")


if __name__ == "__main__":
    main()
