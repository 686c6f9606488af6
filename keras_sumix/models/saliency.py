"""The saliency step: the map a mixer with `needs_saliency` (PuzzleMix)
mixes by, `sqrt(mean over channels of (dL/dx)^2)`, `L` the cross-entropy of
the clean batch summed over it (so that each sample's map is its own loss's).

Two passes give it (`SUMixModel(saliency_pass=...)`): `separate`, one extra
forward and input-backward pass in inference mode, as the reference
PuzzleMix; and `from_raw_pass`, the gradient of a model's own training-mode
raw pass, whose outputs are then trained on. The input gradient is the
backend primitive `keras_sumix.models.backend.gradient_wrt_inputs`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keras import ops

from keras_sumix.models import cross_entropy
from keras_sumix.models.backend import gradient_wrt_inputs


def saliency_of(gradient: Any, data_format: str) -> Any:
    """The saliency map of an input gradient: `sqrt(mean over channels of
    gradient^2)`, float32 `(N, H, W)`."""
    axis = 1 if data_format == "channels_first" else -1
    return ops.sqrt(ops.mean(ops.square(gradient), axis=axis))


def separate(
    logits_of: Callable[[Any], Any], images: Any, dense: Any, data_format: str
) -> Any:
    """The saliency of a separate pass (no gradient flows through it).

    Args:
        logits_of: the classifier in inference mode, images to logits.
        images: the clean batch.
        dense: its one-hot labels `(N, C)`.
        data_format: the images' layout.

    Returns:
        float32 `(N, H, W)`.
    """

    def loss(x):
        return cross_entropy.summed(logits_of(x), dense)

    gradient = gradient_wrt_inputs(loss, ops.cast(images, "float32"))
    return saliency_of(gradient, data_format)


def from_raw_pass(
    outputs_of: Callable[[Any], tuple[Any, ...]],
    images: Any,
    dense: Any,
    data_format: str,
) -> tuple[tuple[Any, ...], Any]:
    """The raw pass's outputs (with gradient, to train on) and the saliency
    of its summed cross-entropy, from one forward pass.

    Args:
        outputs_of: the raw pass, images to a tuple whose first entry is the
            logits.
        images: the clean batch.
        dense: its one-hot labels `(N, C)`.
        data_format: the images' layout.

    Returns:
        `(outputs, saliency)`.
    """

    def loss(x):
        outputs = outputs_of(x)
        return cross_entropy.summed(outputs[0], dense), outputs

    gradient, outputs = gradient_wrt_inputs(
        loss, ops.cast(images, "float32"), has_aux=True
    )
    return outputs, saliency_of(gradient, data_format)
