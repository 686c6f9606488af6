"""Mixing layers: one file per mixer over a shared base.

Each mixer's file registers it (its name and facts, `registry`); importing
the file is all it takes for `get_mixer`, the CLI and the study to know it.
"""

from keras_sumix.layers.auto_mix import AutoMix, MixBlock
from keras_sumix.layers.base import BaseMixer, MixingLayer, MixResult
from keras_sumix.layers.cut_mix import CutMix
from keras_sumix.layers.f_mix import FMix
from keras_sumix.layers.manifold_mix import ManifoldMix
from keras_sumix.layers.mix_up import MixUp
from keras_sumix.layers.puzzle_mix import PuzzleMix
from keras_sumix.layers.random_choice import RandomChoice
from keras_sumix.layers.registry import MIXERS, get_mixer
from keras_sumix.layers.resize_mix import ResizeMix
from keras_sumix.layers.saliency_mix import SaliencyMix

__all__ = [
    "MIXERS",
    "AutoMix",
    "BaseMixer",
    "CutMix",
    "FMix",
    "ManifoldMix",
    "MixBlock",
    "MixResult",
    "MixUp",
    "MixingLayer",
    "PuzzleMix",
    "RandomChoice",
    "ResizeMix",
    "SaliencyMix",
    "get_mixer",
]
