"""Loaders for datasets in their official on-disk layouts.

TensorFlow Datasets lacks FGVC-Aircraft, Tiny-ImageNet and CIFAR-100-C (and
its CUB-200-2011 needs a download), so these read the archives as their
authors distribute them, once extracted. Nothing here downloads anything: a
missing file raises `FileNotFoundError` naming the dataset's official page
and the exact layout looked for; a `data_dir` that is not a path raises a
TypeError; annotation files that are malformed, name unknown classes or
list no image for the split raise a ValueError (never an empty dataset).

`load_image_folder` reads the most common layout of a user's own images,
one subfolder per class (the layout of Keras's
`image_dataset_from_directory` and torchvision's `ImageFolder`).

Image loaders return `(dataset, class_names)`: a `tf.data.Dataset` of
`(image, label)` with `image` uint8 `(H, W, 3)` (grayscale files are expanded
to three channels) and `label` int32 in `[0, len(class_names))`. Images are
decoded lazily, in parallel, in file-list order unless `shuffle=True`
(which shuffles the file list, not the decoded images: the cheap place to
shuffle large images). Every loader works whatever `KERAS_BACKEND` is:
`tf.data` always runs on TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from keras_sumix._validation import (
    check_choice,
    check_class_indices,
    check_int,
    check_number,
)
from keras_sumix.data.common import (
    check_bool,
    check_epoch,
    for_epoch,
    require_tensorflow,
)

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = [
    "CIFAR100_C_CORRUPTIONS",
    "load_cifar100_c",
    "load_cub200_2011",
    "load_fgvc_aircraft",
    "load_image_folder",
    "load_tiny_imagenet",
]

#: The 19 corruptions of CIFAR-100-C (Hendrycks & Dietterich, 2019), in the
#: alphabetical order of their file names.
CIFAR100_C_CORRUPTIONS: tuple[str, ...] = (
    "brightness",
    "contrast",
    "defocus_blur",
    "elastic_transform",
    "fog",
    "frost",
    "gaussian_blur",
    "gaussian_noise",
    "glass_blur",
    "impulse_noise",
    "jpeg_compression",
    "motion_blur",
    "pixelate",
    "saturate",
    "shot_noise",
    "snow",
    "spatter",
    "speckle_noise",
    "zoom_blur",
)

#: Height in pixels of the copyright banner at the bottom of every
#: FGVC-Aircraft image.
AIRCRAFT_BANNER_HEIGHT = 20

_AIRCRAFT_URL = "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/"
_CUB_URL = "https://www.vision.caltech.edu/datasets/cub_200_2011/"
_TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
_CIFAR_C_URL = "https://zenodo.org/records/3555552"

_AIRCRAFT_LAYOUT = """\
fgvc-aircraft-2013b/
  data/variants.txt                 (the 100 class names, one per line)
  data/images_variant_<split>.txt   ("<image_id> <class name>"; <split> is
                                     train, val, trainval or test)
  data/images/<image_id>.jpg
  (annotation="family" / "manufacturer" read families.txt /
   manufacturers.txt and images_family_<split>.txt /
   images_manufacturer_<split>.txt instead)"""

_CUB_LAYOUT = """\
CUB_200_2011/
  images.txt                ("<image_id> <relative path>")
  image_class_labels.txt    ("<image_id> <class_id>", 1-based)
  train_test_split.txt      ("<image_id> <is_training_image>", 1 = train)
  classes.txt               ("<class_id> <class name>")
  images/<relative path>.jpg"""

_TINY_LAYOUT = """\
tiny-imagenet-200/
  wnids.txt                          (the 200 WordNet ids)
  train/<wnid>/images/*.JPEG
  val/val_annotations.txt            ("<file>\\t<wnid>\\t<box>...")
  val/images/*.JPEG"""

_CIFAR_C_LAYOUT = """\
CIFAR-100-C/
  <corruption>.npy    (uint8, (5 * 10000, 32, 32, 3): severities 1..5 stacked)
  labels.npy          (5 * 10000 integer labels)"""


# ---------------------------------------------------------------------- #
# Shared helpers
# ---------------------------------------------------------------------- #
def _check_dir(name: str, value: Any) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(
            f"`{name}` must be a path (str or os.PathLike). Received: "
            f"{name}={value!r} of type {type(value).__name__}."
        )
    return os.path.abspath(os.path.expanduser(os.fspath(value)))


def _missing(dataset: str, url: str, layout: str, root: str, missing: str) -> str:
    return (
        f"{dataset} not found: {missing!r} does not exist (looked under "
        f"{root!r}). Download {dataset} from {url} and extract it; pass as "
        "`data_dir` the extracted folder or its parent. Expected layout:\n"
        f"{layout}"
    )


def _resolve_root(
    data_dir: str, folder: str, marker: str, dataset: str, url: str, layout: str
) -> str:
    """`data_dir` itself, or `data_dir/folder`, whichever holds `marker`."""
    for root in (data_dir, os.path.join(data_dir, folder)):
        if os.path.isfile(os.path.join(root, marker)):
            return root
    root = (
        os.path.join(data_dir, folder)
        if os.path.isdir(os.path.join(data_dir, folder))
        else data_dir
    )
    raise FileNotFoundError(
        _missing(dataset, url, layout, data_dir, os.path.join(root, marker))
    )


def _require_file(path: str, dataset: str, url: str, layout: str, root: str) -> str:
    if not os.path.isfile(path):
        raise FileNotFoundError(_missing(dataset, url, layout, root, path))
    return path


def _read_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\r\n") for line in handle if line.strip()]


def _split_first(line: str, path: str, number: int) -> tuple[str, str]:
    """Split "<key> <value possibly with spaces>" on the first space."""
    key, sep, value = line.strip().partition(" ")
    if not sep or not value.strip():
        raise ValueError(
            f"Malformed line {number} of {path!r}: expected '<id> <value>'. "
            f"Received: {line!r}."
        )
    return key, value.strip()


def _check_images_exist(
    paths: Sequence[str], dataset: str, url: str, layout: str, root: str
) -> None:
    if not paths:
        raise ValueError(
            f"The {dataset} annotation files under {root!r} list no image for "
            "this split (empty or truncated files?): the dataset would be "
            f"empty. Re-extract the archive from {url}. Expected layout:\n{layout}"
        )
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        shown = ", ".join(repr(p) for p in missing[:3])
        raise FileNotFoundError(
            f"{len(missing)} of {len(paths)} {dataset} images listed in the "
            f"annotation files are missing (e.g. {shown}). The archive may be "
            f"incompletely extracted; re-download it from {url}. Expected "
            f"layout:\n{layout}"
        )


def _image_dataset(
    paths: Sequence[str],
    labels: Sequence[int],
    shuffle: bool,
    seed: int | None,
    epoch: Any = None,
    crop_bottom: int = 0,
) -> tf.data.Dataset:
    """`(uint8 image, int32 label)` decoded lazily from `paths`, the file
    list shuffled when `shuffle` (per `(seed, epoch)` with an `epoch`)."""
    tf = require_tensorflow()
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(list(paths), tf.string), tf.constant(labels, tf.int32))
    )

    def shuffled(ds, seed, every_iteration):
        return ds.shuffle(
            len(paths), seed=seed, reshuffle_each_iteration=every_iteration
        )

    if shuffle:
        ds = for_epoch(tf, ds, seed, epoch, shuffled)

    def load(path, label):
        image = tf.io.decode_image(
            tf.io.read_file(path), channels=3, expand_animations=False
        )
        if crop_bottom:
            image = image[:-crop_bottom]
        image.set_shape((None, None, 3))
        return image, label

    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _check_loader_args(shuffle: Any, seed: Any, epoch: Any) -> tuple[bool, Any]:
    """The arguments every `tf.data` loader shares, as `(shuffle, epoch)`;
    TensorFlow is asked for first, so a missing install fails before any
    file is read."""
    tf = require_tensorflow()
    shuffle = check_bool("shuffle", shuffle)
    check_int("seed", seed, 0, allow_none=True)
    return shuffle, check_epoch(tf, epoch, seed)


# ---------------------------------------------------------------------- #
# FGVC-Aircraft
# ---------------------------------------------------------------------- #
_AIRCRAFT_SPLITS = ("train", "val", "trainval", "test")
_AIRCRAFT_ANNOTATIONS = {
    "variant": "variants.txt",
    "family": "families.txt",
    "manufacturer": "manufacturers.txt",
}


def load_fgvc_aircraft(
    data_dir: str | os.PathLike,
    split: str = "trainval",
    annotation: str = "variant",
    crop_banner: bool = True,
    shuffle: bool = False,
    seed: int | None = None,
    epoch: int | tf.Variable | None = None,
) -> tuple[tf.data.Dataset, list[str]]:
    """FGVC-Aircraft 2013b from its official archive.

    Reads `data/images_<annotation>_<split>.txt` (lines "<image_id> <class
    name>", split on the first space since names hold spaces, e.g.
    "1034 Boeing 737-300"), loads `data/images/<image_id>.jpg` and, by
    default, crops the 20-pixel copyright banner at the bottom of every
    image. Class indices follow the order of `data/variants.txt` (or
    `families.txt` / `manufacturers.txt`).

    Args:
        data_dir: the extracted `fgvc-aircraft-2013b/` folder, or its parent.
        split: `"trainval"` (6,667 images, the usual training set),
            `"train"`, `"val"` or `"test"` (3,333 images).
        annotation: `"variant"` (100 classes, the benchmark), `"family"` (70)
            or `"manufacturer"` (30).
        crop_banner: remove the bottom 20 rows (the banner). Defaults to
            True.
        shuffle: shuffle the file list (reshuffled every epoch).
        seed: seed of that shuffle.
        epoch: None (default), an int, or an integer scalar `tf.Variable`
            holding the current epoch (needs `seed`), as
            `make_pipeline(epoch=...)`: each iteration's file order is then
            a function of `(seed, epoch)` alone (a resumed run replays the
            order of the epoch it resumes). With None, the order changes
            every time the dataset is iterated.

    Returns:
        `(dataset, class_names)`: a `tf.data.Dataset` of `(image uint8
        (H, W, 3), label int32)` and the list of class names.

    Raises:
        FileNotFoundError: the layout above is not found.

    Example:

    >>> ds, names = load_fgvc_aircraft("~/data/fgvc-aircraft-2013b")  # doctest: +SKIP
    >>> len(names)  # doctest: +SKIP
    100
    """
    data_dir = _check_dir("data_dir", data_dir)
    check_choice("split", split, _AIRCRAFT_SPLITS)
    check_choice("annotation", annotation, tuple(_AIRCRAFT_ANNOTATIONS))
    crop_banner = check_bool("crop_banner", crop_banner)
    shuffle, epoch = _check_loader_args(shuffle, seed, epoch)
    info = ("FGVC-Aircraft", _AIRCRAFT_URL, _AIRCRAFT_LAYOUT)
    classes_file = os.path.join("data", _AIRCRAFT_ANNOTATIONS[annotation])
    root = _resolve_root(data_dir, "fgvc-aircraft-2013b", classes_file, *info)
    class_names = [
        line.strip() for line in _read_lines(os.path.join(root, classes_file))
    ]
    index = {name: i for i, name in enumerate(class_names)}
    list_path = _require_file(
        os.path.join(root, "data", f"images_{annotation}_{split}.txt"), *info, root
    )
    paths, labels = [], []
    for number, line in enumerate(_read_lines(list_path), start=1):
        image_id, name = _split_first(line, list_path, number)
        if name not in index:
            raise ValueError(
                f"Line {number} of {list_path!r} names class {name!r}, which "
                f"is not in {classes_file!r}."
            )
        paths.append(os.path.join(root, "data", "images", f"{image_id}.jpg"))
        labels.append(index[name])
    _check_images_exist(paths, *info, root)
    dataset = _image_dataset(
        paths,
        labels,
        shuffle,
        seed,
        epoch,
        crop_bottom=AIRCRAFT_BANNER_HEIGHT if crop_banner else 0,
    )
    return dataset, class_names


# ---------------------------------------------------------------------- #
# CUB-200-2011
# ---------------------------------------------------------------------- #
def load_cub200_2011(
    data_dir: str | os.PathLike,
    split: str = "train",
    shuffle: bool = False,
    seed: int | None = None,
    epoch: int | tf.Variable | None = None,
) -> tuple[tf.data.Dataset, list[str]]:
    """CUB-200-2011 from its official archive (a local alternative to
    `load_caltech_birds2011`, which goes through TensorFlow Datasets).

    The official split of `train_test_split.txt` (1 = train): 5,994 training
    and 5,794 test images of 200 species. Labels of `image_class_labels.txt`
    are 1-based; they are returned 0-based, so `class_names[label]` is the
    name on line `label + 1` of `classes.txt` (e.g.
    "001.Black_footed_Albatross").

    Args:
        data_dir: the extracted `CUB_200_2011/` folder, or its parent.
        split: `"train"` or `"test"`.
        shuffle: shuffle the file list (reshuffled every epoch).
        seed: seed of that shuffle.
        epoch: None (default), an int, or an integer scalar `tf.Variable`
            holding the current epoch (needs `seed`), as
            `make_pipeline(epoch=...)`: each iteration's file order is then
            a function of `(seed, epoch)` alone (a resumed run replays the
            order of the epoch it resumes). With None, the order changes
            every time the dataset is iterated.

    Returns:
        `(dataset, class_names)`: a `tf.data.Dataset` of `(image uint8
        (H, W, 3), label int32 in [0, 200))` and the 200 class names.

    Raises:
        FileNotFoundError: the layout above is not found.

    Example:

    >>> ds, names = load_cub200_2011("~/data/CUB_200_2011", "test")  # doctest: +SKIP
    >>> names[0]  # doctest: +SKIP
    '001.Black_footed_Albatross'
    """
    data_dir = _check_dir("data_dir", data_dir)
    check_choice("split", split, ("train", "test"))
    shuffle, epoch = _check_loader_args(shuffle, seed, epoch)
    info = ("CUB-200-2011", _CUB_URL, _CUB_LAYOUT)
    root = _resolve_root(data_dir, "CUB_200_2011", "images.txt", *info)

    def table(name: str) -> dict[str, str]:
        path = _require_file(os.path.join(root, name), *info, root)
        return dict(
            _split_first(line, path, n)
            for n, line in enumerate(_read_lines(path), start=1)
        )

    classes = table("classes.txt")
    class_ids = sorted(classes, key=int)
    class_names = [classes[c] for c in class_ids]
    position = {c: i for i, c in enumerate(class_ids)}
    images, labels, is_train = (
        table("images.txt"),
        table("image_class_labels.txt"),
        table("train_test_split.txt"),
    )
    want = "1" if split == "train" else "0"
    paths, targets = [], []
    for image_id in sorted(images, key=int):
        if image_id not in labels or image_id not in is_train:
            raise ValueError(
                f"CUB-200-2011 image id {image_id} of images.txt has no entry in "
                "image_class_labels.txt or train_test_split.txt."
            )
        if is_train[image_id] != want:
            continue
        if labels[image_id] not in position:
            raise ValueError(
                f"CUB-200-2011 image id {image_id} has class "
                f"{labels[image_id]!r}, which is not in classes.txt."
            )
        paths.append(os.path.join(root, "images", images[image_id]))
        targets.append(position[labels[image_id]])
    _check_images_exist(paths, *info, root)
    return _image_dataset(paths, targets, shuffle, seed, epoch), class_names


# ---------------------------------------------------------------------- #
# Tiny-ImageNet
# ---------------------------------------------------------------------- #
def load_tiny_imagenet(
    data_dir: str | os.PathLike,
    split: str = "train",
    shuffle: bool = False,
    seed: int | None = None,
    epoch: int | tf.Variable | None = None,
) -> tuple[tf.data.Dataset, list[str]]:
    """Tiny-ImageNet-200 from its official archive.

    `"train"`: 100,000 images, `train/<wnid>/images/*.JPEG`; `"val"`: 10,000
    images, `val/images/*.JPEG` labelled by `val/val_annotations.txt`
    (tab-separated "<file>\\t<wnid>\\t..."). The official test split has no
    labels and is not offered; papers report the val split. Classes are the
    200 WordNet ids of `wnids.txt`, sorted (the order torchvision's
    `ImageFolder` gives `train/`); `words.txt` maps them to readable names.
    Images are 64x64 (some grayscale, returned as 3 channels).

    Args:
        data_dir: the extracted `tiny-imagenet-200/` folder, or its parent.
        split: `"train"` or `"val"`.
        shuffle: shuffle the file list (reshuffled every epoch).
        seed: seed of that shuffle.
        epoch: None (default), an int, or an integer scalar `tf.Variable`
            holding the current epoch (needs `seed`), as
            `make_pipeline(epoch=...)`: each iteration's file order is then
            a function of `(seed, epoch)` alone (a resumed run replays the
            order of the epoch it resumes). With None, the order changes
            every time the dataset is iterated.

    Returns:
        `(dataset, class_names)`: a `tf.data.Dataset` of `(image uint8
        (64, 64, 3), label int32 in [0, 200))` and the sorted wnids.

    Raises:
        FileNotFoundError: the layout above is not found.

    Example:

    >>> ds, wnids = load_tiny_imagenet("tiny-imagenet-200", "val")  # doctest: +SKIP
    """
    data_dir = _check_dir("data_dir", data_dir)
    check_choice("split", split, ("train", "val"))
    shuffle, epoch = _check_loader_args(shuffle, seed, epoch)
    info = ("Tiny-ImageNet-200", _TINY_URL, _TINY_LAYOUT)
    root = _resolve_root(data_dir, "tiny-imagenet-200", "wnids.txt", *info)
    wnids = sorted({w.strip() for w in _read_lines(os.path.join(root, "wnids.txt"))})
    index = {w: i for i, w in enumerate(wnids)}
    paths, labels = [], []
    if split == "train":
        train = os.path.join(root, "train")
        for wnid in wnids:
            folder = os.path.join(train, wnid, "images")
            if not os.path.isdir(folder):
                raise FileNotFoundError(_missing(*info, root, folder + os.sep))
            names = sorted(
                f for f in os.listdir(folder) if f.lower().endswith((".jpeg", ".jpg"))
            )
            paths += [os.path.join(folder, f) for f in names]
            labels += [index[wnid]] * len(names)
    else:
        notes = _require_file(
            os.path.join(root, "val", "val_annotations.txt"), *info, root
        )
        for number, line in enumerate(_read_lines(notes), start=1):
            fields = line.split("\t")
            if len(fields) < 2 or fields[1].strip() not in index:
                raise ValueError(
                    f"Malformed line {number} of {notes!r}: expected "
                    f"'<file>\\t<wnid>\\t...' with a wnid of wnids.txt. "
                    f"Received: {line!r}."
                )
            paths.append(os.path.join(root, "val", "images", fields[0].strip()))
            labels.append(index[fields[1].strip()])
    if not paths:
        raise FileNotFoundError(
            _missing(*info, root, os.path.join(root, split, "..."))
            + "\n(no images found)"
        )
    _check_images_exist(paths, *info, root)
    return _image_dataset(paths, labels, shuffle, seed, epoch), wnids


# ---------------------------------------------------------------------- #
# A folder of class subfolders (the user's own images)
# ---------------------------------------------------------------------- #
#: File extensions `load_image_folder` reads (those of Keras's
#: `image_dataset_from_directory`), compared case-insensitively.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
#: Names of the split subfolders `load_image_folder` recognises: a training
#: folder and a held-out one (the first that exists).
FOLDER_SPLITS = ("train", ("val", "validation", "test"))
#: Share of each class held out when the folder has no split subfolders.
DEFAULT_VALIDATION_FRACTION = 0.2

_FOLDER_LAYOUT = """\
DATA_DIR/<class name>/**/<image>       (one subfolder per class; the held-out
                                        images are a per-class fraction)
or
DATA_DIR/train/<class name>/**/<image>
DATA_DIR/val/<class name>/**/<image>   (or validation/ or test/)
(images: .bmp, .gif, .jpeg, .jpg or .png, any size)"""


def _visible_dirs(folder: str) -> list[str]:
    return sorted(
        name
        for name in os.listdir(folder)
        if not name.startswith(".") and os.path.isdir(os.path.join(folder, name))
    )


def _class_images(folder: str) -> list[str]:
    """The image files under `folder` (recursively), sorted."""
    found = []
    for parent, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [
            os.path.join(parent, name)
            for name in sorted(files)
            if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")
        ]
    return found


def _folder_tree(root: str, class_names: Sequence[str] | None) -> dict[str, list]:
    """`{class name: image paths}` of the class subfolders of `root` (those
    of `class_names` when given); a class without images, or fewer than two
    classes, raise a ValueError."""
    names = _visible_dirs(root) if class_names is None else list(class_names)
    if class_names is None and len(names) < 2:
        raise ValueError(
            f"`data_dir` {root!r} must hold one subfolder per class (at least "
            f"two classes). Found {len(names)}: {names}. Expected layout:\n"
            f"{_FOLDER_LAYOUT}"
        )
    tree = {}
    for name in names:
        folder = os.path.join(root, name)
        tree[name] = _class_images(folder) if os.path.isdir(folder) else []
        if class_names is None and not tree[name]:
            raise ValueError(
                f"Class folder {folder!r} holds no image (extensions "
                f"{', '.join(IMAGE_EXTENSIONS)}). Remove it or add its images."
            )
    return tree


def _held_out(paths: Sequence[str], fraction: float) -> set[str]:
    """The held-out share of one class's files: `round(fraction * n)`, at
    least one and at most `n - 1` (none of a single-image class), picked by
    a fixed permutation, so every run splits the folder alike."""
    count = len(paths)
    if count < 2:
        return set()
    keep = min(count - 1, max(1, round(fraction * count)))
    order = np.random.default_rng(0).permutation(count)
    return {paths[i] for i in order[:keep]}


def folder_layout(data_dir: str | os.PathLike) -> str:
    """`"split"` if `data_dir` holds `train/` and `val/` (or `validation/`
    or `test/`) subfolders, else `"classes"` (class subfolders, split by a
    validation fraction).

    Args:
        data_dir: the folder.

    Returns:
        `"split"` or `"classes"`.

    Raises:
        FileNotFoundError: `data_dir` is not a folder.
    """
    root = _check_dir("data_dir", data_dir)
    if not os.path.isdir(root):
        raise FileNotFoundError(
            f"`data_dir` {root!r} is not a folder. Expected layout:\n{_FOLDER_LAYOUT}"
        )
    train, held_out = FOLDER_SPLITS
    has = set(_visible_dirs(root))
    return "split" if train in has and has.intersection(held_out) else "classes"


def load_image_folder(
    data_dir: str | os.PathLike,
    split: str = "train",
    validation_fraction: float | None = None,
    shuffle: bool = False,
    seed: int | None = None,
    epoch: int | tf.Variable | None = None,
) -> tuple[tf.data.Dataset, list[str]]:
    """A folder of your own images, one subfolder per class.

    Two layouts are read (`folder_layout` says which a folder has):

    - `DATA_DIR/<class>/...`: every class subfolder is split, class by
      class, into training images and held-out `"val"` images, a
      `validation_fraction` of each class (at least one image, and never a
      single-image class's only one), picked by a fixed permutation of the
      sorted file names: the same folder always splits the same way;
    - `DATA_DIR/train/<class>/...` and `DATA_DIR/val/<class>/...` (or
      `validation/`, or `test/`): the two splits as given. The classes are
      those of `train/`; a held-out class missing from it raises a
      ValueError.

    Classes are the subfolder names, sorted (label `i` is `class_names[i]`);
    images are found recursively inside them (`.bmp`, `.gif`, `.jpeg`,
    `.jpg`, `.png`; hidden files and folders are skipped), at any size and
    in any of these formats (grayscale and RGBA are read as RGB). Images of
    different sizes are resized by the pipeline (`make_pipeline`'s
    `image_size`), as the recipes do.

    Args:
        data_dir: the folder.
        split: `"train"` or `"val"` (the held-out images).
        validation_fraction: share of each class held out, in (0, 1), for
            the class-subfolder layout. Defaults to 0.2. Given with the
            `train/` + `val/` layout it raises a ValueError (it would not be
            used).
        shuffle: shuffle the file list (reshuffled every epoch).
        seed: seed of that shuffle.
        epoch: None (default), an int, or an integer scalar `tf.Variable`
            holding the current epoch (needs `seed`), as
            `make_pipeline(epoch=...)`: each iteration's file order is then
            a function of `(seed, epoch)` alone (a resumed run replays the
            order of the epoch it resumes). With None, the order changes
            every time the dataset is iterated.

    Returns:
        `(dataset, class_names)`: a `tf.data.Dataset` of `(image uint8
        (H, W, 3), label int32)` and the sorted class names.

    Raises:
        FileNotFoundError: `data_dir` is not a folder.
        ValueError: fewer than two class folders, a class folder without
            images, an empty split, a held-out class unknown to `train/`,
            or a `validation_fraction` outside (0, 1) or given with the
            `train/` + `val/` layout.

    Example:

    >>> ds, names = load_image_folder("~/photos", "train")  # doctest: +SKIP
    >>> names  # doctest: +SKIP
    ['cats', 'dogs']
    """
    check_choice("split", split, ("train", "val"))
    shuffle, epoch = _check_loader_args(shuffle, seed, epoch)
    layout = folder_layout(data_dir)
    root = _check_dir("data_dir", data_dir)
    if layout == "split":
        if validation_fraction is not None:
            raise ValueError(
                f"`validation_fraction` does not apply to {root!r}: it holds "
                "train/ and val/ subfolders, the split as given. Received: "
                f"validation_fraction={validation_fraction!r}."
            )
        train_dir = os.path.join(root, FOLDER_SPLITS[0])
        tree = _folder_tree(train_dir, None)
        class_names = list(tree)
        if split == "val":
            present = set(_visible_dirs(root))
            held_out = next(n for n in FOLDER_SPLITS[1] if n in present)
            held_dir = os.path.join(root, held_out)
            unknown = sorted(set(_visible_dirs(held_dir)) - set(class_names))
            if unknown:
                raise ValueError(
                    f"{held_dir!r} has class folders that {train_dir!r} lacks: "
                    f"{unknown}. Both splits must use the training classes."
                )
            tree = _folder_tree(held_dir, class_names)
    else:
        fraction = (
            DEFAULT_VALIDATION_FRACTION
            if validation_fraction is None
            else validation_fraction
        )
        check_number(
            "validation_fraction", fraction, low=0.0, high=1.0, include_high=False
        )
        tree = _folder_tree(root, None)
        class_names = list(tree)
        for name, paths in tree.items():
            held = _held_out(paths, fraction)
            tree[name] = [p for p in paths if (p in held) == (split == "val")]
    paths, labels = [], []
    for label, name in enumerate(class_names):
        paths += tree[name]
        labels += [label] * len(tree[name])
    if not paths:
        raise ValueError(
            f"The {split!r} split of {root!r} holds no image. Expected "
            f"layout:\n{_FOLDER_LAYOUT}"
        )
    return _image_dataset(paths, labels, shuffle, seed, epoch), class_names


# ---------------------------------------------------------------------- #
# CIFAR-100-C
# ---------------------------------------------------------------------- #
def load_cifar100_c(
    data_dir: str | os.PathLike,
    corruption: str,
    severity: int,
    as_dataset: bool = False,
) -> tuple[np.ndarray, np.ndarray] | tf.data.Dataset:
    """One corruption at one severity of CIFAR-100-C (Hendrycks &
    Dietterich, 2019): the 10,000 CIFAR-100 test images, corrupted.

    Each `<corruption>.npy` stacks the five severities (rows
    `(severity - 1) * n` to `severity * n`, `n = len / 5`, 10,000 in the
    official files); `labels.npy` repeats the labels accordingly. Only the
    requested slice is read (the file is memory-mapped).

    Args:
        data_dir: the extracted `CIFAR-100-C/` folder, or its parent.
        corruption: one of `CIFAR100_C_CORRUPTIONS`.
        severity: 1 (mildest) to 5.
        as_dataset: return a `tf.data.Dataset` of `(image, label)` instead of
            arrays.

    Returns:
        `(images, labels)`: uint8 `(n, 32, 32, 3)` and int32 `(n,)`; or, with
        `as_dataset=True`, a `tf.data.Dataset` of their rows.

    Raises:
        FileNotFoundError: the layout above is not found.
        ValueError: files that would be misread: not `(5 * n, H, W, 3)`
            images with `5 * n` labels, images not uint8 (a cast would wrap
            or truncate them), labels not integers in `[0, 100)`.

    Example:

    >>> x, y = load_cifar100_c("~/data/CIFAR-100-C", "fog", 3)  # doctest: +SKIP
    >>> x.shape, y.shape  # doctest: +SKIP
    ((10000, 32, 32, 3), (10000,))
    """
    data_dir = _check_dir("data_dir", data_dir)
    check_choice("corruption", corruption, CIFAR100_C_CORRUPTIONS)
    check_int("severity", severity, 1)
    if severity > 5:
        raise ValueError(f"`severity` must be in 1..5. Received: severity={severity}.")
    as_dataset = check_bool("as_dataset", as_dataset)
    info = ("CIFAR-100-C", _CIFAR_C_URL, _CIFAR_C_LAYOUT)
    root = _resolve_root(data_dir, "CIFAR-100-C", "labels.npy", *info)
    path = _require_file(os.path.join(root, f"{corruption}.npy"), *info, root)
    images = np.load(path, mmap_mode="r")
    labels = np.load(os.path.join(root, "labels.npy"), mmap_mode="r")
    total = images.shape[0]
    if (
        images.ndim != 4
        or images.shape[-1] != 3
        or total == 0
        or total % 5
        or labels.shape != (total,)
    ):
        raise ValueError(
            f"{path!r} must hold (5 * n, H, W, 3) images with labels.npy of "
            f"length 5 * n. Received shapes {images.shape} and {labels.shape}."
        )
    # A cast would silently wrap or truncate other dtypes (float images in
    # [0, 1] would all become 0).
    if images.dtype != np.uint8 or labels.dtype.kind not in "iu":
        raise ValueError(
            f"{path!r} must hold uint8 images and labels.npy integer labels. "
            f"Received dtypes {images.dtype} and {labels.dtype}."
        )
    n = total // 5
    rows = slice((severity - 1) * n, severity * n)
    images = np.ascontiguousarray(images[rows])
    labels = np.asarray(labels[rows])
    check_class_indices("labels.npy", labels, 100, "CIFAR-100 has 100 classes")
    labels = labels.astype("int32")
    if as_dataset:
        return require_tensorflow().data.Dataset.from_tensor_slices((images, labels))
    return images, labels
