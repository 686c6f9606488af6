"""A small CNN for CPU-sized experiments (the demo, tests, tutorials)."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_sumix._validation import check_int


def small_cnn(
    input_shape: tuple[int, int, int] = (32, 32, 3),
    widths: Sequence[int] = (32, 64, 128),
    name: str = "small_cnn",
) -> keras.Model:
    """Conv-BN-ReLU-MaxPool stages, then global average pooling.

    Batch norm uses momentum 0.9 so that its inference statistics keep up
    with short runs (Keras's default 0.99 lags by hundreds of steps, which
    makes a briefly trained model look untrained at evaluation).

    Args:
        input_shape: `(H, W, C)` (channels-last).
        widths: filters of each stage.
        name: model name.

    Returns:
        A `keras.Model` from images to pooled features `(N, widths[-1])`.

    Example:

    >>> import keras_sumix
    >>> keras_sumix.models.small_cnn().output_shape
    (None, 128)
    """
    if len(input_shape) != 3:
        raise ValueError(
            f"`input_shape` must be (H, W, C). Received: input_shape={input_shape!r}."
        )
    if not widths:
        raise ValueError("`widths` must name at least one stage.")
    inputs = keras.Input(input_shape)
    x = inputs
    for stage, width in enumerate(widths):
        x = keras.layers.Conv2D(
            check_int("widths", width, 1), 3, padding="same", use_bias=False
        )(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.Activation("relu")(x)
        x = keras.layers.MaxPooling2D()(x)
        # Named for AutoMix's `feature_layer` (weightless).
        x = keras.layers.Identity(name=f"stage{stage + 1}")(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, outputs, name=name)
