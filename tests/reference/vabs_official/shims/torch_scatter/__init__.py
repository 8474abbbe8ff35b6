"""Minimal stand-in for `torch_scatter` 2.1.x (rusty1s/pytorch_scatter; the official env.sh
installs 2.1.1) written with plain torch ops, so the official Vabs-Net code runs without the
compiled extension. Semantics follow torch_scatter 2.1.x; see each docstring."""
from typing import Optional, Tuple

import torch


def broadcast(src: torch.Tensor, other: torch.Tensor, dim: int) -> torch.Tensor:
    """Replaces `torch_scatter.utils.broadcast`: a 1-D `src` is unsqueezed in front up to
    `dim`, then trailing singleton dimensions are added up to `other.dim()`, then it is
    expanded to `other.size()`. Exact (pure shape bookkeeping)."""
    if dim < 0:
        dim = other.dim() + dim
    if src.dim() == 1:
        for _ in range(dim):
            src = src.unsqueeze(0)
    for _ in range(src.dim(), other.dim()):
        src = src.unsqueeze(-1)
    return src.expand(other.size())


def _out_size(src, index, dim, dim_size):
    size = list(src.size())
    if dim_size is not None:
        size[dim] = dim_size
    elif index.numel() == 0:
        size[dim] = 0
    else:
        size[dim] = int(index.max()) + 1
    return size


def scatter_sum(src: torch.Tensor, index: torch.Tensor, dim: int = -1,
                out: Optional[torch.Tensor] = None,
                dim_size: Optional[int] = None) -> torch.Tensor:
    """Replaces `torch_scatter.scatter_sum`. Exact: 2.1.x is itself
    `zeros(size).scatter_add_(dim, broadcast(index, src, dim), src)` (a TorchScript Python
    function, not a compiled kernel), which is what this does."""
    index = broadcast(index, src, dim)
    if out is None:
        out = torch.zeros(_out_size(src, index, dim, dim_size), dtype=src.dtype, device=src.device)
    return out.scatter_add_(dim, index, src)


scatter_add = scatter_sum


def scatter_mean(src: torch.Tensor, index: torch.Tensor, dim: int = -1,
                 out: Optional[torch.Tensor] = None,
                 dim_size: Optional[int] = None) -> torch.Tensor:
    """Replaces `torch_scatter.scatter_mean`: scatter_sum divided by the per-group count
    (count clamped to >= 1), as 2.1.x does. Only used by code paths the released
    configuration does not run."""
    out = scatter_sum(src, index, dim, out, dim_size)
    dim_size = out.size(dim)
    index_dim = dim
    if index_dim < 0:
        index_dim = index_dim + src.dim()
    if index.dim() <= index_dim:
        index_dim = index.dim() - 1
    ones = torch.ones(index.size(), dtype=src.dtype, device=src.device)
    count = scatter_sum(ones, index, index_dim, None, dim_size)
    count[count < 1] = 1
    count = broadcast(count, out, dim)
    if torch.is_floating_point(out):
        out.div_(count)
    else:
        out.div_(count, rounding_mode="floor")
    return out


def scatter_max(src: torch.Tensor, index: torch.Tensor, dim: int = -1,
                out: Optional[torch.Tensor] = None,
                dim_size: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Replaces `torch_scatter.scatter_max` (compiled op in 2.1.x). The values are exact: a
    maximum does not depend on the reduction order, and groups without elements are 0 as in
    the compiled op. The arg output (index of a maximal element; `src.size(dim)` for empty
    groups) takes the first maximal element on ties, which the compiled op does not
    guarantee; the released configuration only uses the values (inside scatter_softmax)."""
    if out is not None:
        raise NotImplementedError("scatter_max(out=...) is not used by the released configuration")
    index = broadcast(index, src, dim)
    size = _out_size(src, index, dim, dim_size)
    vals = torch.zeros(size, dtype=src.dtype, device=src.device)
    vals = vals.scatter_reduce(dim, index, src, reduce="amax", include_self=False)
    n = src.size(dim)
    pos_shape = [1] * src.dim()
    pos_shape[dim] = n
    pos = torch.arange(n, device=src.device).view(pos_shape).expand(src.size())
    hit = src == vals.gather(dim, index)
    cand = torch.where(hit, pos, torch.full_like(pos, n))
    arg = torch.full(size, n, dtype=torch.long, device=src.device)
    arg = arg.scatter_reduce(dim, index, cand, reduce="amin", include_self=True)
    return vals, arg


def scatter(src: torch.Tensor, index: torch.Tensor, dim: int = -1,
            out: Optional[torch.Tensor] = None, dim_size: Optional[int] = None,
            reduce: str = "sum") -> torch.Tensor:
    """Replaces `torch_scatter.scatter`: dispatches on `reduce` exactly as 2.1.x does
    ("sum"/"add" -> scatter_sum, "mean" -> scatter_mean, "max" -> scatter_max values). The
    official Attention uses reduce="sum" with a 1-D index broadcast along dim 1, which is
    exact (see scatter_sum)."""
    if reduce in ("sum", "add"):
        return scatter_sum(src, index, dim, out, dim_size)
    if reduce == "mean":
        return scatter_mean(src, index, dim, out, dim_size)
    if reduce == "max":
        return scatter_max(src, index, dim, out, dim_size)[0]
    raise NotImplementedError(f"scatter(reduce={reduce!r}) is not used by the released configuration")


from . import composite  # noqa: E402  (the official code calls torch_scatter.composite.scatter_softmax)
from .composite import scatter_softmax  # noqa: E402,F401
