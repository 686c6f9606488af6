"""Pictures of what the mixers do (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_sumix._optional import optional_import
from keras_sumix.layers.base import MixResult


def _to_numpy(x: Any) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(x))


def mix_grid(
    images: Any,
    results: Mapping[str, MixResult],
    path: str | Path,
    annotations: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
    data_format: str = "channels_last",
) -> Path:
    """Save a PNG grid: the clean batch, then one row per mixer, each mixed
    image captioned with its lam (and any extra per-sample values) and, for
    a mixer with a mask (`MixResult.mask`), outlined where the kept share
    crosses one half (the border of what was taken from the partner).

    Args:
        images: the clean batch `(N, H, W, C)` (values in [0, 1] or [0, 255]).
        results: row name -> the `MixResult` of mixing `images`.
        path: output PNG path (parent folders are created).
        annotations: optional row name -> {label: per-sample values}, drawn
            under lam (e.g. `{"CutMix": {"true": [...], "sumix": [...]}}`).
        data_format: layout of `images` and of the results' images.

    Returns:
        The path written.

    Example:

    >>> import numpy as np, keras_sumix
    >>> x = np.random.rand(4, 16, 16, 3)
    >>> res = {"CutMix": keras_sumix.layers.CutMix(seed=0).mix(x)}
    >>> keras_sumix.viz.mix_grid(x, res, "/tmp/grid.png").name
    'grid.png'
    """
    plt = _pyplot()
    if not results:
        raise ValueError("`results` must hold at least one mixer's MixResult.")
    annotations = annotations or {}

    def prepare(batch):
        batch = _to_numpy(batch).astype("float32")
        if data_format == "channels_first":
            batch = np.transpose(batch, (0, 2, 3, 1))
        if batch.max() > 1.5:
            batch = batch / 255.0
        batch = np.clip(batch, 0, 1)
        return batch[..., 0] if batch.shape[-1] == 1 else batch

    clean = prepare(images)
    n = clean.shape[0]
    rows = [("clean", clean, None, None, {}, None)]
    for name, result in results.items():
        mask = None
        if result.mask is not None:
            mask = _to_numpy(result.mask).astype("float32")
            mask = mask[:, 0] if data_format == "channels_first" else mask[..., 0]
        rows.append(
            (
                name,
                prepare(result.images),
                _to_numpy(result.lam),
                _to_numpy(result.permutation),
                annotations.get(name, {}),
                mask,
            )
        )
    fig, axes = plt.subplots(
        len(rows), n, figsize=(1.6 * n, 1.9 * len(rows)), squeeze=False
    )
    for r, (name, batch, lam, perm, extra, mask) in enumerate(rows):
        for i in range(n):
            ax = axes[r, i]
            ax.imshow(batch[i], cmap="gray" if batch.ndim == 3 else None)
            if mask is not None and mask[i].min() < 0.5 < mask[i].max():
                ax.contour(mask[i], levels=[0.5], colors="white", linewidths=0.7)
            ax.set_xticks([])
            ax.set_yticks([])
            if lam is not None:
                lines = [f"λ={lam[i]:.2f} ←{perm[i]}"]
                lines += [f"{k}={float(v[i]):.2f}" for k, v in extra.items()]
                ax.set_xlabel("\n".join(lines), fontsize=7)
            elif r == 0:
                ax.set_title(f"#{i}", fontsize=8)
        axes[r, 0].set_ylabel(name, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------- #
# Lambda histograms, occlusion curves
# ---------------------------------------------------------------------- #
def _pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend."""
    optional_import("matplotlib", "keras_sumix.viz draws with matplotlib and").use(
        "Agg"
    )
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _lam_values(name: str, values: Any) -> np.ndarray:
    try:
        array = _to_numpy(values).astype("float64").reshape(-1)
    except Exception as error:
        raise TypeError(
            f"`{name}` must be an array of lam values. Received: {name} of type "
            f"{type(values).__name__}."
        ) from error
    if array.size == 0:
        raise ValueError(f"`{name}` must hold at least one value.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` must hold finite values.")
    return array


def lam_histograms(
    area_lam: Any,
    corrected_lam: Any,
    path: str | Path,
    true_lam: Any | None = None,
    bins: int = 20,
) -> Path:
    """Save overlaid histograms of the area lam and the corrected (SUMix)
    lam, and of the true label share when known, e.g. over an epoch's
    mixes or a held-out set.

    Args:
        area_lam: per-sample area lam (what the mixer drew / cut).
        corrected_lam: per-sample lam the model trains with
            (`model.training_lam`).
        path: output PNG path (parent folders are created).
        true_lam: optional per-sample true label share (e.g.
            `keras_sumix.evaluation.lam_fidelity(...)["true_lam"]`).
        bins: number of bins over [0, 1].

    Returns:
        The path written.

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> lam_histograms(rng.random(64), rng.random(64), "/tmp/lam.png").name
    'lam.png'
    """
    from keras_sumix._validation import check_int

    bins = check_int("bins", bins, 1)
    series = {
        "area lam": _lam_values("area_lam", area_lam),
        "corrected lam": _lam_values("corrected_lam", corrected_lam),
    }
    if true_lam is not None:
        series["true lam"] = _lam_values("true_lam", true_lam)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    edges = np.linspace(0.0, 1.0, bins + 1)
    for label, values in series.items():
        ax.hist(
            np.clip(values, 0, 1),
            bins=edges,
            alpha=0.45,
            label=f"{label} (mean {values.mean():.2f})",
        )
    ax.set_xlabel("λ")
    ax.set_ylabel("samples")
    ax.set_xlim(0, 1)
    ax.legend(fontsize=8)
    return _save(fig, path)


def occlusion_curves(
    runs: Mapping[str, Mapping[Any, float]],
    path: str | Path,
    title: str | None = "Occlusion robustness",
) -> Path:
    """Save top-1 vs occlusion ratio curves of several runs on one plot
    (the paper's Fig. 5).

    Args:
        runs: run name -> `{ratio: top1}`, as `occlusion_robustness` returns
            (or as read back from JSON: string keys such as `"0.1"` work).
        path: output PNG path (parent folders are created).
        title: plot title (None: none).

    Returns:
        The path written.

    Example:

    >>> curves = {"MCE": {0.0: 0.8, 0.5: 0.4}, "SUMix": {0.0: 0.82, 0.5: 0.5}}
    >>> occlusion_curves(curves, "/tmp/occlusion.png").name
    'occlusion.png'
    """
    if not isinstance(runs, Mapping) or not runs:
        raise ValueError(
            "`runs` must be a non-empty mapping {name: {ratio: top1}}. "
            f"Received: runs={runs!r}."
        )
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for name, scores in runs.items():
        if not isinstance(scores, Mapping) or not scores:
            raise ValueError(
                f"`runs[{name!r}]` must be a non-empty mapping {{ratio: top1}}. "
                f"Received: {scores!r}."
            )
        try:
            points = sorted((float(r), float(a)) for r, a in scores.items())
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"`runs[{name!r}]` must map numeric ratios to numeric top-1. "
                f"Received: {scores!r}."
            ) from error
        ratios, top1 = zip(*points, strict=True)
        ax.plot(ratios, [100 * a for a in top1], marker="o", label=str(name))
    ax.set_xlabel("occlusion ratio")
    ax.set_ylabel("top-1 (%)")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


# ---------------------------------------------------------------------- #
# Class activation maps
# ---------------------------------------------------------------------- #
_POOLING = ("GlobalAveragePooling2D",)


def feature_map_model(model: Any) -> Any:
    """The model from images to the last 4-D feature map of a MixingModel's
    backbone (the map its features are the global average of).

    A backbone with a 4-D output is taken as is; one ending in a global
    average pooling (e.g. `small_cnn`, `resnet18_cifar`) is cut before it:
    `keras.Model(backbone.inputs, pooling_layer.input)`.

    Raises:
        ValueError: the backbone has no 4-D feature map feeding a global
            average pooling (CAM is then undefined).
    """
    import keras

    backbone = getattr(model, "backbone", None)
    if backbone is None or not hasattr(model, "classifier"):
        raise TypeError(
            "`model` must be a MixingModel (MixupModel / SUMixModel) with "
            f"`backbone` and `classifier`. Received: {type(model).__name__}."
        )
    try:
        inputs, outputs = backbone.inputs, backbone.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs or len(outputs) != 1:
        raise ValueError(
            "CAM needs a functional backbone with one output (a 4-D feature "
            f"map or its global average). Received backbone {backbone.name!r}."
        )
    if len(outputs[0].shape) == 4:
        return backbone
    last = backbone.layers[-1]
    map_tensor = None
    if type(last).__name__ in _POOLING:
        try:
            map_tensor = last.input
        except (AttributeError, ValueError):
            map_tensor = None
    if map_tensor is None or len(map_tensor.shape) != 4:
        raise ValueError(
            "CAM needs a 4-D feature map followed by global average pooling "
            f"and the linear classifier; backbone {backbone.name!r} ends in "
            f"{type(last).__name__} with output shape {tuple(outputs[0].shape)} "
            "and no 4-D map feeding a GlobalAveragePooling2D was found."
        )
    inputs = inputs[0] if len(inputs) == 1 else inputs
    return keras.Model(inputs, map_tensor, name=f"{backbone.name}_feature_map")


def class_activation_map(
    model: Any,
    images: Any,
    classes: Any | None = None,
    upsample: bool = False,
) -> np.ndarray:
    """Class activation maps (Zhou et al., 2016) of a trained MixingModel:
    `cam_c(x, y) = sum_k W[k, c] * f_k(x, y)`, with `f` the backbone's last
    4-D feature map and `W` the kernel of `model.classifier` (no bias).
    With global average pooling, the mean of `cam_c` plus the bias is the
    logit of class `c`. Backend-agnostic (`keras.ops`), no gradients.

    (Grad-CAM is not offered: for a global-average-pooled map followed by a
    linear classifier, its channel weights are `W[:, c] / (h * w)`, so it
    equals CAM up to a constant factor.)

    Args:
        model: a `MixupModel` or `SUMixModel` (see `feature_map_model`).
        images: a batch of model inputs `(N, H, W, C)` (or channels-first,
            following `model.mixer.data_format`).
        classes: the class of each map, `(N,)` ints; None: the predicted
            class.
        upsample: bilinearly resize the maps to the image size.

    Returns:
        float32 `(N, h, w)` (or `(N, H, W)` with `upsample=True`), unscaled.

    Example:

    >>> cams = class_activation_map(model, x[:4], upsample=True)  # doctest: +SKIP
    """
    from keras import ops

    fmap_model = feature_map_model(model)
    images = ops.convert_to_tensor(_to_numpy(images).astype("float32"))
    channels_first = getattr(model.mixer, "data_format", "") == "channels_first"
    fmap = fmap_model(images, training=False)
    if channels_first:
        fmap = ops.transpose(fmap, (0, 2, 3, 1))
    kernel = ops.convert_to_tensor(model.classifier.kernel)
    if fmap.shape[-1] != kernel.shape[0]:
        raise ValueError(
            f"The feature map has {fmap.shape[-1]} channels but the classifier "
            f"takes {kernel.shape[0]} features: the map found is not the one "
            "the classifier pools."
        )
    n = int(fmap.shape[0])
    if classes is None:
        classes = np.argmax(_to_numpy(model(images, training=False)), axis=-1)
    classes = _to_numpy(classes).astype("int32").reshape(-1)
    if classes.shape != (n,):
        raise ValueError(
            f"`classes` must hold one class per image ({n}). Received shape "
            f"{classes.shape}."
        )
    if classes.min() < 0 or classes.max() >= kernel.shape[1]:
        raise ValueError(f"`classes` must be in [0, {kernel.shape[1]}).")
    weights = ops.transpose(ops.take(kernel, classes, axis=1))  # (N, K)
    cams = ops.einsum("nhwk,nk->nhw", ops.cast(fmap, "float32"), weights)
    if upsample:
        size = images.shape[2:4] if channels_first else images.shape[1:3]
        cams = ops.image.resize(
            cams[..., None],
            tuple(int(s) for s in size),
            interpolation="bilinear",
            data_format="channels_last",
        )[..., 0]
    return _to_numpy(cams).astype("float32")


def _display(batch: np.ndarray, channels_first: bool) -> np.ndarray:
    """Images for display: channels-last, each scaled into [0, 1]."""
    batch = batch.astype("float32")
    if channels_first:
        batch = np.transpose(batch, (0, 2, 3, 1))
    low = batch.min(axis=(1, 2, 3), keepdims=True)
    high = batch.max(axis=(1, 2, 3), keepdims=True)
    outside = (low < 0) | (high > 1)
    scaled = (batch - low) / np.maximum(high - low, 1e-6)
    batch = np.where(outside, scaled, batch)
    return batch[..., 0] if batch.shape[-1] == 1 else batch


def class_activation_maps(
    model: Any,
    images: Any,
    path: str | Path,
    labels: Any | None = None,
    mixed: Any | None = None,
    alpha: float = 0.5,
) -> Path:
    """Save a grid of class activation maps of a trained MixingModel over
    `images` (and `mixed` images), the paper's Figs. 6-7.

    Each row shows the images, then their CAM (of the label when given, of
    the predicted class otherwise) as a heat map over the image. With
    `mixed` (e.g. `model.mixer.mix(images).images`), two more rows show the
    mixed images and their CAM of the predicted class.

    Args:
        model: a `MixupModel` or `SUMixModel` whose backbone ends in a 4-D
            feature map (or its global average pooling, see
            `feature_map_model`).
        images: model inputs `(N, H, W, C)` (normalised inputs are rescaled
            per image for display).
        path: output PNG path (parent folders are created).
        labels: optional integer `(N,)` labels: their CAM is shown.
        mixed: optional mixed images, same shape as `images`.
        alpha: heat map opacity.

    Returns:
        The path written.

    Example:

    >>> class_activation_maps(model, x[:6], "cam.png", labels=y[:6])  # doctest: +SKIP
    """
    images_np = _to_numpy(images)
    if images_np.ndim != 4 or len(images_np) == 0:
        raise ValueError(
            f"`images` must be a non-empty 4-D batch. Received shape {images_np.shape}."
        )
    channels_first = getattr(model.mixer, "data_format", "") == "channels_first"
    rows = [("images", images_np, labels)]
    if mixed is not None:
        mixed_np = _to_numpy(mixed)
        if mixed_np.shape != images_np.shape:
            raise ValueError(
                f"`mixed` must have the shape of `images` {images_np.shape}. "
                f"Received {mixed_np.shape}."
            )
        rows.append(("mixed", mixed_np, None))
    n = len(images_np)
    plt = _pyplot()
    fig, axes = plt.subplots(
        2 * len(rows), n, figsize=(1.6 * n, 1.7 * 2 * len(rows)), squeeze=False
    )
    for r, (name, batch, classes) in enumerate(rows):
        cams = class_activation_map(model, batch, classes, upsample=True)
        low = cams.min(axis=(1, 2), keepdims=True)
        high = cams.max(axis=(1, 2), keepdims=True)
        cams = (cams - low) / np.maximum(high - low, 1e-6)
        shown = _display(batch, channels_first)
        gray = "gray" if shown.ndim == 3 else None
        for i in range(n):
            top, bottom = axes[2 * r, i], axes[2 * r + 1, i]
            top.imshow(shown[i], cmap=gray)
            bottom.imshow(shown[i], cmap=gray)
            bottom.imshow(cams[i], cmap="jet", alpha=alpha, vmin=0, vmax=1)
            for ax in (top, bottom):
                ax.set_xticks([])
                ax.set_yticks([])
        axes[2 * r, 0].set_ylabel(name, fontsize=9)
        axes[2 * r + 1, 0].set_ylabel(f"CAM ({name})", fontsize=9)
    return _save(fig, path)
