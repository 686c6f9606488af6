"""Mixing layers: one file per mixer over a shared base."""

from keras_sumix.layers.base import BaseMixer, MixingLayer, MixResult
from keras_sumix.layers.cut_mix import CutMix
from keras_sumix.layers.f_mix import FMix
from keras_sumix.layers.mix_up import MixUp
from keras_sumix.layers.random_choice import RandomChoice
from keras_sumix.layers.resize_mix import ResizeMix
from keras_sumix.layers.saliency_mix import SaliencyMix

__all__ = [
    "BaseMixer",
    "CutMix",
    "FMix",
    "MixResult",
    "MixUp",
    "MixingLayer",
    "RandomChoice",
    "ResizeMix",
    "SaliencyMix",
]
