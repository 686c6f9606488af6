"""Mixing layers: one file per mixer over a shared base."""

from keras_sumix.layers.base import BaseMixer, MixingLayer, MixResult
from keras_sumix.layers.cut_mix import CutMix
from keras_sumix.layers.f_mix import FMix
from keras_sumix.layers.mix_up import MixUp
from keras_sumix.layers.random_choice import RandomChoice
from keras_sumix.layers.resize_mix import ResizeMix
from keras_sumix.layers.saliency_mix import SaliencyMix

MIXERS: dict[str, type[BaseMixer]] = {
    "mixup": MixUp,
    "cutmix": CutMix,
    "fmix": FMix,
    "saliencymix": SaliencyMix,
    "resizemix": ResizeMix,
}


def get_mixer(name: str, **kwargs) -> BaseMixer:
    """Build a mixer by name (`"mixup"`, `"cutmix"`, `"fmix"`,
    `"saliencymix"`, `"resizemix"`; case-insensitive).

    Args:
        name: the mixer's name.
        **kwargs: its constructor arguments.

    Returns:
        The mixing layer.
    """
    key = str(name).lower().replace("_", "").replace("-", "")
    if key not in MIXERS:
        raise ValueError(f"Unknown mixer {name!r}. Expected one of {sorted(MIXERS)}.")
    return MIXERS[key](**kwargs)


__all__ = [
    "MIXERS",
    "BaseMixer",
    "CutMix",
    "FMix",
    "MixResult",
    "MixUp",
    "MixingLayer",
    "RandomChoice",
    "ResizeMix",
    "SaliencyMix",
    "get_mixer",
]
