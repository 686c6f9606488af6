"""Lambda fidelity: how well the lam a model trains with tracks the true
label share, on the embedded dataset where object masks make it known."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_sumix._validation import check_int
from keras_sumix.data.occluded import OccludedObjects, label_share
from keras_sumix.layers import registry
from keras_sumix.layers.base import BaseMixer


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation (nan when either side is constant)."""
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _check_true_share(mixer: Any) -> None:
    if not isinstance(mixer, BaseMixer) or not mixer.true_share:
        supported = ", ".join(map(registry.label, registry.names(true_share=True)))
        raise TypeError(
            "`mixer` must be a mixer whose object masks, mixed as the images "
            "are, give the true label share (pixels kept, moved or blended, "
            f"never rescaled: {supported}). Received: {mixer!r}."
        )


def true_share(mixer: BaseMixer, params: dict[str, Any], masks: Any) -> np.ndarray:
    """The true label share of each mix `mixer` drew (`params`, from
    `mixer.draw`), from the clean batch's object masks.

    The masks are mixed exactly as the images were (`mixer.apply`), once with
    the partner zeroed (what stays visible of each image's own object) and
    once with the image zeroed (what is visible of the partner's), so moved
    pixels (PuzzleMix's transport) and soft masks count as they are.
    `true_share = vis_a / (vis_a + vis_b)`, the visible fractions of both
    objects (`keras_sumix.data.true_lam`).

    Args:
        mixer: a mixer with `true_share` (see `keras_sumix.layers.registry`).
        params: the draw (`mixer.draw(images)`) the mixes were made with.
        masks: bool `(N, H, W)` object masks of the clean batch.

    Returns:
        float32 `(N,)`.

    Example:

    >>> import numpy as np, keras_sumix
    >>> from keras_sumix.evaluation.fidelity import true_share
    >>> data = keras_sumix.data.occluded_objects(8, seed=0)
    >>> mixer = keras_sumix.layers.CutMix(seed=0)
    >>> share = true_share(mixer, mixer.draw(data.images), data.masks)
    >>> bool(((share >= 0) & (share <= 1)).all())
    True
    """
    _check_true_share(mixer)
    objects = np.asarray(masks, "float32")
    if objects.ndim != 3:
        raise ValueError(f"`masks` must be (N, H, W). Received {objects.shape}.")
    permutation = keras.ops.convert_to_numpy(params["permutation"])
    partner = objects[permutation]
    axis = 1 if mixer.data_format == "channels_first" else -1
    zeros = np.zeros_like(objects)

    def mixed(own, taken):
        result = mixer.apply(
            np.expand_dims(own, axis), params, partner=np.expand_dims(taken, axis)
        )
        return np.squeeze(keras.ops.convert_to_numpy(result.images), axis)

    return label_share(mixed(objects, zeros), mixed(zeros, partner), objects, partner)


def lam_fidelity(
    model: keras.Model,
    mixer: BaseMixer,
    data: OccludedObjects,
    batch_size: int = 128,
) -> dict[str, Any]:
    """Compare the lam `model` trains with to the true label share.

    Held-out images are mixed with `mixer`, the true share is computed from
    the object masks mixed the same way (`true_share`), and the model's
    training lam (`model.training_lam`, networks in inference mode) is taken
    on the same mixes. A mixer with `needs_saliency` (PuzzleMix) is given the
    model's saliency (`model.saliency`), one with `needs_features` (AutoMix)
    the model's momentum encoder features (`model.mix_features`), as in
    training; AutoMix's lam is its detached mask's mean, the mask the
    network trains on.

    Args:
        model: a `MixupModel` or `SUMixModel`.
        mixer: a mixer with `true_share` (CutMix, FMix, SaliencyMix,
            PuzzleMix, AutoMix:
            `keras_sumix.layers.registry.names(true_share=True)`); for
            AutoMix, the model's own mixer (its mix block is the model's).
        data: held-out `occluded_objects` data (channels-last).
        batch_size: mixing batch size (pairs are formed within a batch).

    Returns:
        `{"pearson", "mae", "true_lam", "lam", "area_lam", "mask_std"}`; the
        arrays are per held-out sample. `mask_std` is the standard deviation
        of each mix's kept mask over its pixels: 0 for a constant mask (a
        uniform blend, whose true share is its lam whatever the objects),
        0.5 for a hard mask keeping half.

    Raises:
        TypeError: `mixer` rescales the partner or blends every pixel
            (ResizeMix, MixUp), so the masks cannot give the true share.
    """
    _check_true_share(mixer)
    check_int("batch_size", batch_size, 2)
    truths, lams, areas, spreads = [], [], [], []
    for start in range(0, len(data.images) - 1, batch_size):
        images = data.images[start : start + batch_size]
        if len(images) < 2:
            break
        labels = data.labels[start : start + batch_size]
        context = {}
        if mixer.needs_saliency:
            context["saliency"] = model.saliency(images, labels)
        if mixer.needs_features:
            context["features"] = model.mix_features(images)
        params = mixer.draw(images, **context)
        mix = mixer.apply(images, params)
        truths.append(true_share(mixer, params, data.masks[start : start + batch_size]))
        lams.append(keras.ops.convert_to_numpy(model.training_lam(images, labels, mix)))
        areas.append(keras.ops.convert_to_numpy(mix.lam))
        mask = keras.ops.convert_to_numpy(mix.mask).reshape(len(images), -1)
        spreads.append(mask.std(axis=1))
    truth, lam = np.concatenate(truths), np.concatenate(lams)
    return {
        "pearson": pearson(truth, lam),
        "mae": float(np.abs(truth - lam).mean()),
        "true_lam": truth,
        "lam": lam,
        "area_lam": np.concatenate(areas),
        "mask_std": np.concatenate(spreads),
    }
