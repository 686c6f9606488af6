"""Occlusion robustness: top-1 when a share of each image's patches is
masked out (zeroed), the paper's occlusion protocol (ViT-style 16x16
patches on ImageNet; a coarser grid for small images)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from keras_sumix._validation import check_choice, check_int, check_number
from keras_sumix.evaluation.reporting import (
    _as_images,
    _as_labels,
    _check_model,
    _check_preprocess,
    _top1_of_batches,
)

__all__ = ["DEFAULT_OCCLUSION_RATIOS", "occlusion_masks", "occlusion_robustness"]

#: The masking ratios of the paper's occlusion plots: 0, 0.1, ..., 0.9.
DEFAULT_OCCLUSION_RATIOS: tuple[float, ...] = tuple(i / 10 for i in range(10))


def _patch_index(size: int, patch_size: int | None, cells: int | None) -> np.ndarray:
    """For each pixel along one axis, the index of its patch."""
    pixels = np.arange(size)
    if cells is not None:  # `cells` near-equal bands
        return pixels * cells // size
    return pixels // patch_size


def _check_grid(grid: Any, height: int, width: int) -> tuple[int, int]:
    if (
        not isinstance(grid, (tuple, list))
        or len(grid) != 2
        or any(
            isinstance(g, bool) or not isinstance(g, (int, np.integer)) for g in grid
        )
    ):
        raise TypeError(
            "`grid` must be a pair of ints (rows, cols) or None. "
            f"Received: grid={grid!r}."
        )
    rows, cols = int(grid[0]), int(grid[1])
    if not (1 <= rows <= height and 1 <= cols <= width):
        raise ValueError(
            f"`grid` must be (rows, cols) with 1 <= rows <= {height} and "
            f"1 <= cols <= {width} (the image size). Received: grid={grid!r}."
        )
    return rows, cols


def _layout(
    height: int, width: int, patch_size: Any, grid: Any
) -> tuple[int, int, np.ndarray, np.ndarray]:
    """`(rows, cols)` of patches and each pixel row's / column's patch."""
    if grid is None:
        patch_size = check_int("patch_size", patch_size, 1)
        rows, cols = -(-height // patch_size), -(-width // patch_size)
        return (
            rows,
            cols,
            _patch_index(height, patch_size, None),
            _patch_index(width, patch_size, None),
        )
    rows, cols = _check_grid(grid, height, width)
    return rows, cols, _patch_index(height, None, rows), _patch_index(width, None, cols)


def _check_ratios(ratios: Any) -> tuple[float, ...]:
    if isinstance(ratios, (str, bytes)) or not isinstance(ratios, Sequence):
        raise TypeError(
            "`ratios` must be a sequence of numbers in [0, 1]. "
            f"Received: ratios={ratios!r}."
        )
    if not ratios:
        raise ValueError("`ratios` must hold at least one ratio. Received: ratios=().")
    return tuple(check_number("ratios", r, 0.0, 1.0, include_low=True) for r in ratios)


def occlusion_masks(
    num_images: int,
    image_size: tuple[int, int],
    ratio: float,
    patch_size: int = 16,
    grid: tuple[int, int] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Keep-masks of the occlusion protocol: 0 on masked patches, 1 elsewhere.

    The image is split into `patch_size` x `patch_size` patches (the last row
    and column of patches are smaller when the side is not a multiple), or
    with `grid=(rows, cols)` into `rows` x `cols` near-equal cells. Each
    image gets its own random order of patches (one seeded draw); the first
    `round(ratio * num_patches)` patches in that order are masked, so with
    one seed the masks are nested: what is masked at 0.3 is also masked at
    0.5.

    Args:
        num_images: number of masks `N`.
        image_size: `(H, W)`.
        ratio: share of patches to mask, in [0, 1].
        patch_size: patch side in pixels (ignored when `grid` is given).
        grid: `(rows, cols)` cells instead of fixed-size patches; handy for
            small images (e.g. `(4, 4)` on 32x32 CIFAR images).
        seed: seed of the per-image patch order.

    Returns:
        float32 `(N, H, W)` masks of 0 (masked) and 1 (kept).

    Example:

    >>> masks = occlusion_masks(2, (32, 32), 0.25, patch_size=16)
    >>> masks.shape, (1 - masks).mean(axis=(1, 2)).tolist()
    ((2, 32, 32), [0.25, 0.25])
    """
    num_images = check_int("num_images", num_images, 0)
    if not isinstance(image_size, (tuple, list)) or len(image_size) != 2:
        raise TypeError(
            f"`image_size` must be (H, W). Received: image_size={image_size!r}."
        )
    height = check_int("image_size[0]", image_size[0], 1)
    width = check_int("image_size[1]", image_size[1], 1)
    ratio = check_number("ratio", ratio, 0.0, 1.0, include_low=True)
    check_int("seed", seed, 0)
    rows, cols, row_index, col_index = _layout(height, width, patch_size, grid)
    ranks = _patch_ranks(num_images, rows * cols, seed)
    return _keep(ranks, ratio, rows, cols, row_index, col_index)


def _patch_ranks(n: int, patches: int, seed: int) -> np.ndarray:
    """A random ranking of the patches of each image, `(n, patches)` int32
    (image `i` masks its patches of rank `< k`)."""
    scores = np.random.default_rng(seed).random((n, patches), dtype="float32")
    order = np.argsort(scores, axis=1, kind="stable")
    ranks = np.empty((n, patches), "int32")
    np.put_along_axis(ranks, order, np.arange(patches, dtype="int32")[None], axis=1)
    return ranks


def _keep(
    ranks: np.ndarray,
    ratio: float,
    rows: int,
    cols: int,
    row_index: np.ndarray,
    col_index: np.ndarray,
) -> np.ndarray:
    """float32 `(n, H, W)` keep-masks: patches of rank below the count masked."""
    masked = round(ratio * rows * cols)
    keep = (ranks >= masked).reshape(len(ranks), rows, cols)
    return keep[:, row_index][:, :, col_index].astype("float32")


def occlusion_robustness(
    model: keras.Model,
    images: Any,
    labels: Any,
    ratios: Sequence[float] = DEFAULT_OCCLUSION_RATIOS,
    patch_size: int = 16,
    grid: tuple[int, int] | None = None,
    seed: int = 0,
    batch_size: int = 256,
    fill_value: float = 0.0,
    preprocess: Callable[[np.ndarray], Any] | None = None,
    data_format: str | None = None,
) -> dict[float, float]:
    """Top-1 accuracy under random patch occlusion, per masking ratio.

    For every ratio, each image has `round(ratio * num_patches)` of its
    patches (see `occlusion_masks`) set to `fill_value` (0: masked out),
    then the model classifies it. Patches are chosen at random per image:
    one seeded random order of each image's patches is drawn once for all
    ratios, so results do not depend on `batch_size` and the masks are
    nested across ratios. Ratio 0 leaves
    every image unchanged, so its accuracy equals
    `top1_accuracy(model, images, labels, batch_size, preprocess)` exactly.

    Masking happens on `images` as given, before `preprocess`: pass images
    in the model's input space (e.g. already normalised, where 0 is the
    mean) or raw images plus the model's `preprocess` (0 is then black).

    Args:
        model: a `keras.Model` mapping images to logits or probabilities.
        images: `(N, H, W, C)` (or `(N, C, H, W)` with
            `data_format="channels_first"`).
        labels: integer `(N,)` or one-hot `(N, C)`.
        ratios: masking ratios in [0, 1]. Defaults to 0, 0.1, ..., 0.9.
        patch_size: patch side in pixels (16: the paper's ViT-style patches
            on 224x224 images). Ignored when `grid` is given.
        grid: `(rows, cols)` near-equal cells instead of fixed-size patches,
            for small images (e.g. `(4, 4)` or `(8, 8)` on 32x32).
        seed: seed of the patch choice.
        batch_size: evaluation batch size.
        fill_value: the value masked pixels take.
        preprocess: applied to each masked batch before the model (default:
            uint8 -> float32 in [0, 1], float unchanged).
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.

    Returns:
        A plain dict `{ratio: top1}` with float keys (the ratios, in the
        order given) and float values in [0, 1]. It is JSON-serialisable;
        `json.dumps` writes the keys as strings (`"0.1"`).

    Example:

    >>> scores = occlusion_robustness(model, x, y, grid=(4, 4))  # doctest: +SKIP
    >>> scores[0.0], scores[0.5]  # doctest: +SKIP
    (0.82, 0.41)
    """
    model = _check_model(model)
    images = _as_images(images, ndim=4)
    labels = _as_labels(labels, len(images))
    ratios = _check_ratios(ratios)
    batch_size = check_int("batch_size", batch_size, 1)
    seed = check_int("seed", seed, 0)
    fill_value = check_number("fill_value", fill_value)
    preprocess = _check_preprocess(preprocess)
    data_format = check_choice(
        "data_format",
        data_format or keras.config.image_data_format(),
        ("channels_last", "channels_first"),
    )
    channels_first = data_format == "channels_first"
    height, width = images.shape[2:4] if channels_first else images.shape[1:3]
    rows, cols, row_index, col_index = _layout(height, width, patch_size, grid)
    fill = np.asarray(fill_value).astype(images.dtype)
    ranks = _patch_ranks(len(images), rows * cols, seed)

    def batches(ratio: float):
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size]
            keep = _keep(
                ranks[start : start + batch_size],
                ratio,
                rows,
                cols,
                row_index,
                col_index,
            )
            keep = keep[:, None] if channels_first else keep[..., None]
            x = np.where(keep > 0, x, fill)
            yield preprocess(x), labels[start : start + batch_size]

    return {float(r): _top1_of_batches(model, batches(r)) for r in ratios}
