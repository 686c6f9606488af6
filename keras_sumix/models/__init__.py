"""Networks of the SUMix paper (feature extractors), a classifier head, and
the mixing models that train them.

The mixing models (`sumix_model.py`) hold what every one needs; a mixer that
needs the model gets it from `saliency.py` (PuzzleMix) or `learned_mixer.py`
(AutoMix); every piece of backend-specific code is in `backend/`.
"""

from keras_sumix.models.backbones import (
    classifier,
    resnet18,
    resnet18_cifar,
    resnext50_32x4d,
    resnext50_cifar,
    wide_resnet28_8,
)
from keras_sumix.models.from_classifier import LogitHead
from keras_sumix.models.hub import from_hub
from keras_sumix.models.pooling import TokenPooling
from keras_sumix.models.pretrained import PretrainedBackbone, pretrain_backbone
from keras_sumix.models.small import small_cnn
from keras_sumix.models.sumix_model import (
    MixingModel,
    MixupModel,
    SUMixModel,
    UncertaintyHead,
)
from keras_sumix.models.transformers import deit_small, swin_tiny
from keras_sumix.models.transmix import attention_lam

__all__ = [
    "LogitHead",
    "MixingModel",
    "MixupModel",
    "PretrainedBackbone",
    "SUMixModel",
    "TokenPooling",
    "UncertaintyHead",
    "attention_lam",
    "classifier",
    "deit_small",
    "from_hub",
    "pretrain_backbone",
    "resnet18",
    "resnet18_cifar",
    "resnext50_32x4d",
    "resnext50_cifar",
    "small_cnn",
    "swin_tiny",
    "wide_resnet28_8",
]
