"""Stand-ins for `unicore.models`."""
import torch.nn as nn


class BaseUnicoreModel(nn.Module):
    """Replaces `unicore.models.BaseUnicoreModel`. Exact for this use: the real class is a
    plain `nn.Module` whose extra methods (`add_args`, `build_model`, `load_state_dict`
    forwarding to `nn.Module.load_state_dict`, `set_num_updates`) add no state and no
    forward behaviour; MDProteinModel overrides `add_args`, `build_model`,
    `set_num_updates` itself."""

    @classmethod
    def add_args(cls, parser):
        pass

    def load_state_dict(self, state_dict, strict=True, model_args=None):
        return super().load_state_dict(state_dict, strict)


MODEL_REGISTRY = {}
ARCH_CONFIG_REGISTRY = {}


def register_model(name):
    """Replaces `unicore.models.register_model`. The real decorator records the class in a
    registry and returns it unchanged; this one does the same (the registry is only used
    by unicore's command-line machinery)."""

    def wrap(cls):
        MODEL_REGISTRY[name] = cls
        return cls

    return wrap


def register_model_architecture(model_name, arch_name):
    """Replaces `unicore.models.register_model_architecture`: records the architecture
    function and returns it unchanged (the real one does the same)."""

    def wrap(fn):
        ARCH_CONFIG_REGISTRY[arch_name] = fn
        return fn

    return wrap
