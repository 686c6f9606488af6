"""keras-sumix: mixup augmentation layers and SUMix for Keras 3."""

from keras_sumix import layers
from keras_sumix.layers import MixResult

__version__ = "0.1.0"

__all__ = ["MixResult", "__version__", "layers"]
