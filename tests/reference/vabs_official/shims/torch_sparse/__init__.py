"""Stand-in for `torch_sparse` (rusty1s/pytorch_sparse). Import-only."""


class SparseTensor:
    """Replaces `torch_sparse.SparseTensor`. Import-only: `vabs/models/layers.py` imports it
    but the released configuration never constructs one."""

    def __init__(self, *args, **kwargs):
        raise NotImplementedError("SparseTensor is not used by the released configuration")
