"""Lambda fidelity: how well the lam a model trains with tracks the true
label share, on the embedded dataset where object masks make it known."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_sumix._validation import check_int
from keras_sumix.data.occluded import OccludedObjects, true_lam
from keras_sumix.layers.base import MixingLayer
from keras_sumix.layers.cut_mix import CutMix
from keras_sumix.layers.f_mix import FMix
from keras_sumix.layers.saliency_mix import SaliencyMix

#: Mixers whose kept pixels stay where they were in both images, so the true
#: share follows from the masks. Not MixUp (no kept pixels) nor ResizeMix (it
#: shrinks the partner, so the partner's mask is not pasted in place).
IN_PLACE_MIXERS = (CutMix, FMix, SaliencyMix)


def kept_mask(
    images: Any, mixed: Any, data_format: str = "channels_last"
) -> np.ndarray:
    """Where a cutting mixer kept the original pixel: `(N, H, W)` float32,
    1 where every channel of `mixed` equals `images` (exact for hard masks;
    a pixel equal in both images counts as kept)."""
    images, mixed = np.asarray(images), np.asarray(mixed)
    axis = 1 if data_format == "channels_first" else -1
    return np.all(images == mixed, axis=axis).astype("float32")


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation (nan when either side is constant)."""
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def lam_fidelity(
    model: keras.Model,
    mixer: MixingLayer,
    data: OccludedObjects,
    batch_size: int = 128,
) -> dict[str, Any]:
    """Compare the lam `model` trains with to the true label share.

    Held-out images are mixed with `mixer` (a cutting mixer), the true share
    is computed from the object masks (`keras_sumix.data.true_lam`), and the
    model's training lam (`model.training_lam`, networks in inference mode)
    is taken on the same mixes.

    Args:
        model: a `MixupModel` or `SUMixModel`.
        mixer: a mixer that pastes pixels in place (`IN_PLACE_MIXERS`:
            CutMix, FMix, SaliencyMix).
        data: held-out `occluded_objects` data (channels-last).
        batch_size: mixing batch size (pairs are formed within a batch).

    Returns:
        `{"pearson", "mae", "true_lam", "lam", "area_lam"}`; the arrays are
        per held-out sample.

    Raises:
        TypeError: `mixer` does not paste pixels in place (MixUp, ResizeMix,
            ...), so the masks cannot give the true share.
    """
    if not isinstance(mixer, IN_PLACE_MIXERS):
        raise TypeError(
            "`mixer` must paste pixels in place ("
            + ", ".join(cls.__name__ for cls in IN_PLACE_MIXERS)
            + f") for the masks to give the true label share. Received: {mixer!r}."
        )
    check_int("batch_size", batch_size, 2)
    truths, lams, areas = [], [], []
    for start in range(0, len(data.images) - 1, batch_size):
        images = data.images[start : start + batch_size]
        if len(images) < 2:
            break
        mix = mixer.mix(images)
        mixed = keras.ops.convert_to_numpy(mix.images)
        perm = keras.ops.convert_to_numpy(mix.permutation)
        kept = kept_mask(images, mixed)
        truths.append(true_lam(data.masks[start : start + batch_size], perm, kept))
        labels = data.labels[start : start + batch_size]
        lams.append(keras.ops.convert_to_numpy(model.training_lam(images, labels, mix)))
        areas.append(keras.ops.convert_to_numpy(mix.lam))
    truth, lam = np.concatenate(truths), np.concatenate(lams)
    return {
        "pearson": pearson(truth, lam),
        "mae": float(np.abs(truth - lam).mean()),
        "true_lam": truth,
        "lam": lam,
        "area_lam": np.concatenate(areas),
    }
