"""A small real image dataset that installs offline: scikit-learn's bundled
handwritten digits (UCI optical digits, 1,797 grey 8x8 images, 10 classes),
upsampled to RGB images of a CNN-friendly size.

The images ship inside the scikit-learn wheel (`sklearn.datasets.load_digits`
reads a file of the installed package), so nothing is downloaded. Install
scikit-learn first: `pip install scikit-learn`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from keras_sumix._optional import optional_import
from keras_sumix._validation import check_choice, check_int, check_number

#: Number of classes (the digits 0-9).
DIGITS_NUM_CLASSES = 10


class DigitsSplit(NamedTuple):
    """One split of the digits.

    Attributes:
        images: float32 `(N, image_size, image_size, 3)` in [0, 1] (the grey
            level repeated on the three channels).
        labels: int32 `(N,)` in `[0, 10)`, the digit.
    """

    images: np.ndarray
    labels: np.ndarray


def _resize_matrix(size_in: int, size_out: int) -> np.ndarray:
    """`(size_out, size_in)` bilinear interpolation weights (pixel centres
    aligned, edges clamped), so that `A @ x @ A.T` resizes an image."""
    centres = (np.arange(size_out) + 0.5) * size_in / size_out - 0.5
    centres = np.clip(centres, 0, size_in - 1)
    low = np.floor(centres).astype(int)
    high = np.minimum(low + 1, size_in - 1)
    frac = centres - low
    matrix = np.zeros((size_out, size_in))
    matrix[np.arange(size_out), low] += 1 - frac
    matrix[np.arange(size_out), high] += frac
    return matrix


def _stratified_test_index(
    labels: np.ndarray, test_fraction: float, seed: int
) -> np.ndarray:
    """Boolean `(N,)`: True for the test samples, `round(test_fraction *
    count)` of every class, drawn with `seed`."""
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        is_test[members[: round(test_fraction * len(members))]] = True
    return is_test


def load_digits_split(
    split: str,
    image_size: int = 32,
    seed: int = 0,
    test_fraction: float = 0.5,
) -> DigitsSplit:
    """scikit-learn's handwritten digits as a fixed, stratified train/test split.

    Each class is split on its own (`round(test_fraction * class size)`
    images of every digit go to the test split, chosen with `seed`), so the
    two splits are disjoint, together hold all 1,797 images, and keep the
    class balance. The 8x8 grey images (levels 0-16) are scaled to [0, 1],
    resized bilinearly to `image_size` and repeated on three channels.
    Same arguments, same arrays.

    Args:
        split: `"train"` or `"test"`.
        image_size: output side in pixels (>= 8). Defaults to 32.
        seed: seed of the split. Defaults to 0.
        test_fraction: share of each class held out for `"test"`, in (0, 1).
            Defaults to 0.5 (899 training / 898 test images), which leaves
            top-1 of a small CNN below its ceiling so that methods can differ.

    Returns:
        A `DigitsSplit(images, labels)`.

    Raises:
        ImportError: scikit-learn is not installed.
        ValueError: an argument is out of range.

    Example:

    >>> from keras_sumix.data import load_digits_split
    >>> train = load_digits_split("train")  # doctest: +SKIP
    >>> train.images.shape, train.images.dtype  # doctest: +SKIP
    ((899, 32, 32, 3), dtype('float32'))
    """
    check_choice("split", split, ("train", "test"))
    image_size = check_int("image_size", image_size, 8)
    seed = check_int("seed", seed, 0)
    test_fraction = check_number(
        "test_fraction", test_fraction, 0.0, 1.0, include_high=False
    )
    datasets = optional_import(
        "sklearn.datasets",
        "load_digits_split reads the digits scikit-learn ships (no download) and",
    )
    digits = datasets.load_digits()
    images = digits.images.astype("float64") / 16.0
    labels = digits.target.astype("int32")
    keep = _stratified_test_index(labels, test_fraction, seed)
    if split == "train":
        keep = ~keep
    images, labels = images[keep], labels[keep]
    resize = _resize_matrix(images.shape[1], image_size)
    images = np.einsum("oh,nhw,pw->nop", resize, images, resize)
    images = np.repeat(np.clip(images, 0, 1)[..., None], 3, axis=-1)
    return DigitsSplit(images.astype("float32"), labels)
