"""keras-sumix: mixup augmentation layers and SUMix for Keras 3."""

from keras_sumix import callbacks, data, evaluation, layers, models, viz
from keras_sumix.layers import MixResult
from keras_sumix.losses import decoupled_regularizer, sumix_loss
from keras_sumix.models import MixupModel, SUMixModel, UncertaintyHead

__version__ = "0.1.0"

__all__ = [
    "MixResult",
    "MixupModel",
    "SUMixModel",
    "UncertaintyHead",
    "__version__",
    "callbacks",
    "data",
    "decoupled_regularizer",
    "evaluation",
    "layers",
    "models",
    "sumix_loss",
    "viz",
]
