"""Stand-ins for `unicore.modules`."""
import numbers

import torch
import torch.nn.functional as F
from torch.nn import init
from torch.nn.parameter import Parameter


class LayerNorm(torch.nn.Module):
    """Replaces `unicore.modules.LayerNorm(normalized_shape, eps=1e-5)`. Same parameters
    (`weight` ones, `bias` zeros, same names) and, on CPU, the same computation the real
    module uses whenever its fused CUDA kernel is unavailable:
    `F.layer_norm(x, shape, weight.type(x.dtype), bias.type(x.dtype), eps)`. The fused
    kernel (CUDA, compute capability >= 7) implements the same formula."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True):
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        assert elementwise_affine
        self.normalized_shape = torch.Size(normalized_shape)
        self.eps = eps
        self.weight = Parameter(torch.empty(*normalized_shape))
        self.bias = Parameter(torch.empty(*normalized_shape))
        init.ones_(self.weight)
        init.zeros_(self.bias)

    def forward(self, x):
        return F.layer_norm(
            x, self.normalized_shape, self.weight.type(x.dtype), self.bias.type(x.dtype), self.eps
        )

    def extra_repr(self):
        return f"{tuple(self.normalized_shape)}, eps={self.eps}, elementwise_affine=True"


def softmax_dropout(*args, **kwargs):
    """Replaces `unicore.modules.softmax_dropout` (fused softmax + dropout). Import-only: the
    official Vabs-Net code calls it only in commented-out lines."""
    raise NotImplementedError("softmax_dropout is not used by the released configuration")


class SelfMultiheadAttention(torch.nn.Module):
    """Replaces `unicore.modules.SelfMultiheadAttention`. Import-only: never instantiated by
    the released configuration."""

    def __init__(self, *args, **kwargs):
        raise NotImplementedError("SelfMultiheadAttention is not used by the released configuration")


def init_bert_params(module):
    """Replaces `unicore.modules.init_bert_params`. Import-only: imported by vabs_net.py but
    never applied."""
    raise NotImplementedError("init_bert_params is not used by the released configuration")
