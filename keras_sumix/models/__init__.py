"""Networks of the SUMix paper (feature extractors) and a classifier head."""

from keras_sumix.models.backbones import (
    classifier,
    resnet18,
    resnet18_cifar,
    resnext50_32x4d,
    resnext50_cifar,
    wide_resnet28_8,
)
from keras_sumix.models.small import small_cnn
from keras_sumix.models.sumix_model import (
    MixingModel,
    MixupModel,
    SUMixModel,
    UncertaintyHead,
)

__all__ = [
    "MixingModel",
    "MixupModel",
    "SUMixModel",
    "UncertaintyHead",
    "classifier",
    "resnet18",
    "resnet18_cifar",
    "resnext50_32x4d",
    "resnext50_cifar",
    "small_cnn",
    "wide_resnet28_8",
]
