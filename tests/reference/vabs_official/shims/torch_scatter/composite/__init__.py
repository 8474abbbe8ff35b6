"""Stand-in for `torch_scatter.composite`."""
from typing import Optional

import torch

from .. import broadcast, scatter_max, scatter_sum


def scatter_softmax(src: torch.Tensor, index: torch.Tensor, dim: int = -1,
                    dim_size: Optional[int] = None) -> torch.Tensor:
    """Replaces `torch_scatter.composite.scatter_softmax` of 2.1.x (a Python function there
    too). Same steps in the same order: broadcast the index, subtract the per-group maximum
    (scatter_max values, gathered back), exp, divide by the per-group sum (scatter_sum,
    gathered back). No epsilon in the denominator (2.0.x added one; 2.1.x does not)."""
    if not torch.is_floating_point(src):
        raise ValueError("`scatter_softmax` can only be computed over tensors with floating point data types.")
    index = broadcast(index, src, dim)
    max_per_src = scatter_max(src, index, dim=dim, dim_size=dim_size)[0].gather(dim, index)
    exp = (src - max_per_src).exp_()
    norm = scatter_sum(exp, index, dim, dim_size=dim_size).gather(dim, index)
    return exp.div(norm)
