"""CIFAR-100 and CUB-200-2011 through TensorFlow Datasets.

`tensorflow_datasets` is imported only when a loader is called (install it
with the `data` extra: `pip install 'keras-sumix[data]'`). Loaders never
touch the network unless asked: `download=False` by default, and data that
is not prepared in `data_dir` raises `FileNotFoundError` saying how to get
it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from keras_sumix._optional import optional_import
from keras_sumix._validation import check_int
from keras_sumix.data.common import check_bool, require_tensorflow

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = ["load_caltech_birds2011", "load_cifar100"]

_SPLITS = ("train", "test")


def _check_split(split: Any) -> str | list[str]:
    """A split string (TFDS slicing allowed, e.g. "train[:90%]") or a list
    of them; base names must be "train" or "test"."""
    if isinstance(split, (list, tuple)):
        if not split:
            raise ValueError("`split` must not be an empty list.")
        return [_check_split(s) for s in split]
    if not isinstance(split, str):
        raise TypeError(
            "`split` must be a string such as 'train', 'test' or "
            f"'train[:10%]', or a list of them. Received: split={split!r} of "
            f"type {type(split).__name__}."
        )
    for part in split.split("+"):
        base = part.split("[", 1)[0].strip()
        if base not in _SPLITS:
            raise ValueError(
                f"`split` must name the splits {_SPLITS} (TFDS slicing such as "
                f"'train[:90%]' and 'train+test' is allowed). Received: "
                f"split={split!r}."
            )
    return split


def _load(
    name: str,
    pretty: str,
    split: Any,
    data_dir: Any,
    download: Any,
    shuffle_files: Any,
    seed: Any,
) -> Any:
    split = _check_split(split)
    if data_dir is not None:
        if not isinstance(data_dir, (str, os.PathLike)):
            raise TypeError(
                "`data_dir` must be a path (str or os.PathLike) or None. "
                f"Received: data_dir={data_dir!r} of type {type(data_dir).__name__}."
            )
        data_dir = os.path.expanduser(os.fspath(data_dir))
    download = check_bool("download", download)
    shuffle_files = check_bool("shuffle_files", shuffle_files)
    check_int("seed", seed, 0, allow_none=True)
    tf = require_tensorflow()
    tfds = optional_import("tensorflow_datasets", f"Loading {pretty} through TFDS")
    read_config = tfds.ReadConfig(shuffle_seed=seed) if seed is not None else None
    try:
        loaded = tfds.load(
            name,
            split=split,
            data_dir=data_dir,
            download=download,
            as_supervised=True,
            shuffle_files=shuffle_files,
            read_config=read_config,
        )
    except AssertionError as error:
        if "could not find data" not in str(error):
            raise
        where = data_dir or "the default TFDS folder (~/tensorflow_datasets)"
        raise FileNotFoundError(
            f"{pretty} (TFDS name {name!r}) is not prepared in {where}. Pass "
            "`download=True` to download and prepare it (needs internet), or "
            f"run `tfds build {name}` once, or point `data_dir` at a folder "
            f"holding `{name}/<version>/` as TFDS writes it."
        ) from error

    def cast(image, label):
        return image, tf.cast(label, tf.int32)

    def finish(ds):
        return ds.map(cast, num_parallel_calls=tf.data.AUTOTUNE)

    if isinstance(loaded, (list, tuple)):
        return [finish(ds) for ds in loaded]
    return finish(loaded)


def load_cifar100(
    split: str | list[str] = "train",
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    shuffle_files: bool = False,
    seed: int | None = None,
) -> tf.data.Dataset | list[tf.data.Dataset]:
    """CIFAR-100 (50,000 training and 10,000 test 32x32 images, 100 fine
    classes) from TensorFlow Datasets.

    Args:
        split: `"train"`, `"test"`, a TFDS slice such as `"train[:90%]"`, or
            a list of them (one dataset each).
        data_dir: the TFDS data folder; None uses TFDS's default
            (`~/tensorflow_datasets`).
        download: download and prepare the data if it is missing. Defaults to
            False: nothing touches the network unless asked.
        shuffle_files: shuffle the order of the TFDS shards.
        seed: seed of that shard shuffle.

    Returns:
        A `tf.data.Dataset` of `(image uint8 (32, 32, 3), label int32 in
        [0, 100))` (the fine label), or a list of them for a list of splits.

    Raises:
        ImportError: `tensorflow_datasets` is not installed.
        FileNotFoundError: the data is not prepared and `download=False`.

    Example:

    >>> train = load_cifar100("train", download=True)  # doctest: +SKIP
    >>> image, label = next(iter(train))  # doctest: +SKIP
    """
    return _load(
        "cifar100", "CIFAR-100", split, data_dir, download, shuffle_files, seed
    )


def load_caltech_birds2011(
    split: str | list[str] = "train",
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    shuffle_files: bool = False,
    seed: int | None = None,
) -> tf.data.Dataset | list[tf.data.Dataset]:
    """CUB-200-2011 (200 bird species; 5,994 training and 5,794 test images
    of varying size) from TensorFlow Datasets (`caltech_birds2011`).

    For an already extracted official archive, `load_cub200_2011` reads it
    without TFDS.

    Args:
        split: `"train"`, `"test"`, a TFDS slice such as `"train[:90%]"`, or
            a list of them (one dataset each).
        data_dir: the TFDS data folder; None uses TFDS's default
            (`~/tensorflow_datasets`).
        download: download and prepare the data if it is missing. Defaults to
            False: nothing touches the network unless asked.
        shuffle_files: shuffle the order of the TFDS shards.
        seed: seed of that shard shuffle.

    Returns:
        A `tf.data.Dataset` of `(image uint8 (H, W, 3), label int32 in
        [0, 200))`, or a list of them for a list of splits.

    Raises:
        ImportError: `tensorflow_datasets` is not installed.
        FileNotFoundError: the data is not prepared and `download=False`.

    Example:

    >>> test = load_caltech_birds2011("test", download=True)  # doctest: +SKIP
    """
    return _load(
        "caltech_birds2011",
        "CUB-200-2011",
        split,
        data_dir,
        download,
        shuffle_files,
        seed,
    )
