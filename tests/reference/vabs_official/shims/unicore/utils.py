"""Stand-ins for `unicore.utils`."""
import torch
import torch.nn.functional as F


def get_activation_fn(activation):
    """Replaces `unicore.utils.get_activation_fn`. Exact: Uni-Core maps "relu" -> F.relu,
    "gelu" -> F.gelu (erf GELU), "tanh" -> torch.tanh, "linear" -> identity. The official
    TransformerEncoderLayer stores the result (activation "gelu") but never calls it."""
    if activation == "relu":
        return F.relu
    if activation == "gelu":
        return F.gelu
    if activation == "tanh":
        return torch.tanh
    if activation == "linear":
        return lambda x: x
    raise RuntimeError(f"--activation-fn {activation} not supported")


def permute_final_dims(tensor, inds):
    """Replaces `unicore.utils.permute_final_dims`: permute the last len(inds) dimensions by
    `inds`, keeping the leading ones. Exact (pure index bookkeeping). Only used by code paths
    the released configuration does not run."""
    zero_index = -1 * len(inds)
    first_inds = list(range(len(tensor.shape[:zero_index])))
    return tensor.permute(first_inds + [zero_index + i for i in inds])


def checkpoint_sequential(*args, **kwargs):
    """Replaces `unicore.utils.checkpoint_sequential` (activation checkpointing). Import-only:
    the official layers reference it only in commented-out code."""
    raise NotImplementedError("checkpoint_sequential is not used by the released configuration")
