"""A small CNN for CPU-sized experiments (the demo, tests, tutorials)."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_sumix._validation import check_int
from keras_sumix.models.backbones import (
    ShapeArg,
    _check_data_format,
    _check_input_shape,
)

# The channel counts `small_cnn` takes (RGB, the default, first).
_CHANNELS = (3, 1, 4)


def small_cnn(
    input_shape: ShapeArg = None,
    widths: Sequence[int] = (32, 64, 128),
    name: str = "small_cnn",
) -> keras.Model:
    """Conv-BN-ReLU-MaxPool stages, then global average pooling.

    Batch norm uses momentum 0.9 so that its inference statistics keep up
    with short runs (Keras's default 0.99 lags by hundreds of steps, which
    makes a briefly trained model look untrained at evaluation).

    Args:
        input_shape: `(height, width, channels)` (`(channels, height,
            width)` when `keras.config.image_data_format()` is
            `"channels_first"`), with 1, 3 or 4 channels; height and width
            may be None. None means 32x32 RGB.
        widths: filters of each stage.
        name: model name.

    Returns:
        A `keras.Model` from images to pooled features `(N, widths[-1])`.

    Raises:
        ValueError: `input_shape` is not such a shape, e.g. a channels-first
            `(3, 32, 32)` given to a channels-last network (the message
            names the layout expected), or `widths` is empty.

    Example:

    >>> import keras_sumix
    >>> keras_sumix.models.small_cnn().output_shape
    (None, 128)
    """
    data_format = _check_data_format()
    shape = _check_input_shape(input_shape, 32, data_format, _CHANNELS)
    if not widths:
        raise ValueError("`widths` must name at least one stage.")
    inputs = keras.Input(shape)
    x = inputs
    for stage, width in enumerate(widths):
        x = keras.layers.Conv2D(
            check_int("widths", width, 1),
            3,
            padding="same",
            use_bias=False,
            data_format=data_format,
        )(x)
        x = keras.layers.BatchNormalization(
            axis=1 if data_format == "channels_first" else -1, momentum=0.9
        )(x)
        x = keras.layers.Activation("relu")(x)
        x = keras.layers.MaxPooling2D(data_format=data_format)(x)
        # Named for AutoMix's `feature_layer` (weightless).
        x = keras.layers.Identity(name=f"stage{stage + 1}")(x)
    outputs = keras.layers.GlobalAveragePooling2D(data_format=data_format)(x)
    return keras.Model(inputs, outputs, name=name)
