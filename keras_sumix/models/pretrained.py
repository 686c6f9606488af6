"""A pretrained backbone made here: `pretrain_backbone`, `keras-sumix pretrain`.

Fine-tuning (the paper's CUB-200 / FGVC-Aircraft rows) starts from weights
that already know something. Without a download, this module makes such
weights on the CPU in a few minutes: a small keras-hub ResNet
(`keras_hub.models.ResNetBackbone`, basic blocks, three stages) trained to
classify the embedded `occluded_objects` (10 coarse classes: 5 shapes x 2
colour families) at the size the fine-grained set uses. It is saved twice:

- as a keras-hub preset directory (`backbone.save_to_preset`), which
  `keras_sumix.models.from_hub(DIR)`, `TrainConfig(weights="hub:DIR")`, the
  `*-hub` recipes and `keras-sumix train --weights hub:DIR` load;
- as a `.weights.h5` of the same backbone (`backbone.load_weights` on the
  architecture, e.g. `from_hub(DIR, load_weights=False)`).

A keras-hub `Backbone` is used (not `keras_sumix.models.resnet18`) because
only a keras-hub backbone has `save_to_preset`, the format the hub path
reads. The images are fed as `occluded_objects` gives them, floats in
[0, 1], with no normalisation: fine-tune on inputs of the same range.

Results are cached in `<cache>/pretrained/<key>/`, where `<cache>` is
`$KERAS_SUMIX_CACHE` (else `~/.cache/keras_sumix`) and `<key>` is a hash of
the settings: the first call trains (in a temporary folder renamed into
place when complete, so an interrupted run leaves nothing half-written),
every later call with the same settings reads the folder.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import keras
import numpy as np

from keras_sumix._optional import optional_import
from keras_sumix._validation import check_int, check_number
from keras_sumix.data.occluded import OCCLUDED_NUM_CLASSES, occluded_objects
from keras_sumix.models.backbones import classifier

__all__ = ["PretrainedBackbone", "default_cache_dir", "pretrain_backbone"]

CACHE_ENV = "KERAS_SUMIX_CACHE"
#: Bumped when the recipe below changes, so that old caches are not reused.
_FORMAT = 1
_PRESET, _WEIGHTS, _INFO = "preset", "backbone.weights.h5", "pretrain.json"
_HELD_OUT = 512  # held-out occluded images the pretraining accuracy is measured on


class PretrainedBackbone(NamedTuple):
    """Where `pretrain_backbone` saved its backbone.

    Attributes:
        preset: the keras-hub preset directory (`from_hub(preset)`,
            `weights=f"hub:{preset}"`).
        weights: the backbone's `.weights.h5`.
        info: the settings, the cache key, the backend that trained it, the
            pretraining time and `held_out_accuracy`, the top-1 on 512
            held-out `occluded_objects` images (10 classes; chance 10%).
    """

    preset: Path
    weights: Path
    info: dict[str, Any]


def default_cache_dir() -> Path:
    """`$KERAS_SUMIX_CACHE/pretrained` if the variable is set, else
    `~/.cache/keras_sumix/pretrained`."""
    root = os.environ.get(CACHE_ENV) or os.path.join("~", ".cache", "keras_sumix")
    return Path(os.path.expanduser(root)) / "pretrained"


def _backbone() -> keras.Model:
    keras_hub = optional_import(
        "keras_hub", "keras_sumix.models.pretrain_backbone saves a keras-hub preset and"
    )
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 128, 256],
        stackwise_num_blocks=[1, 1, 1],
        stackwise_num_strides=[1, 2, 2],
        block_type="basic_block",
        use_pre_activation=False,
        image_shape=(None, None, 3),
    )


def _train(settings: dict[str, Any], folder: Path, verbose: int) -> dict[str, Any]:
    """Train the backbone with a linear head on `occluded_objects`; save the
    preset and the weights under `folder`; return the run's information."""
    start = time.perf_counter()
    keras.utils.set_random_seed(settings["seed"])
    data = occluded_objects(
        settings["num_images"] + _HELD_OUT,
        image_size=settings["image_size"],
        seed=settings["seed"],
    )
    n = settings["num_images"]
    backbone = _backbone()
    model = classifier(backbone, OCCLUDED_NUM_CLASSES)
    model.compile(
        optimizer=keras.optimizers.Adam(settings["learning_rate"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(
        data.images[:n],
        data.labels[:n],
        batch_size=settings["batch_size"],
        epochs=settings["epochs"],
        verbose=verbose,
    )
    logits = model.predict(data.images[n:], batch_size=256, verbose=0)
    accuracy = float(np.mean(np.argmax(logits, -1) == data.labels[n:]))
    backbone.save_to_preset(str(folder / _PRESET))
    backbone.save_weights(str(folder / _WEIGHTS))
    return {
        "settings": settings,
        "backend": keras.backend.backend(),
        "backbone": type(backbone).__name__,
        "parameters": int(backbone.count_params()),
        "held_out_accuracy": accuracy,
        "seconds": round(time.perf_counter() - start, 1),
    }


def pretrain_backbone(
    image_size: int = 64,
    num_images: int = 2048,
    epochs: int = 3,
    batch_size: int = 64,
    learning_rate: float = 2e-3,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    verbose: int = 0,
) -> PretrainedBackbone:
    """Pretrain a small keras-hub ResNet on `occluded_objects`, once.

    The backbone is a `keras_hub.models.ResNetBackbone`: a 3 x 3 stem of 64
    filters, then three stages of one basic block each (64, 128, 256
    filters; 1.2 M parameters; keras-hub's ResNet needs 64 filters in the
    first stage). It is trained with a linear head (`classifier`) and Adam
    on `num_images` images of the embedded 10-class `occluded_objects` at
    `image_size` px, fed in [0, 1]. The defaults take about 100 s on a
    2-core CPU (JAX) and reach about 72% held-out top-1 on that task. The
    result is cached under `cache_dir/<key>` (see the module docstring),
    `<key>` a hash of every setting: the first call trains and saves, later
    calls read. When it trains, the global Keras seeds are set
    from `seed` (`keras.utils.set_random_seed`).

    Args:
        image_size: side of the pretraining images, at least 32; use the
            size you fine-tune at (64 for `fine_grained_objects`).
        num_images: training images, at least 2.
        epochs: passes over them, at least 1.
        batch_size: at least 2 and at most `num_images`.
        learning_rate: Adam's learning rate, positive.
        seed: the data's and the weights' seed, a non-negative integer.
        cache_dir: the folder of the cached backbones; defaults to
            `default_cache_dir()` (`$KERAS_SUMIX_CACHE/pretrained`, else
            `~/.cache/keras_sumix/pretrained`).
        verbose: Keras's `fit` verbosity while training (0, 1 or 2).

    Returns:
        A `PretrainedBackbone(preset, weights, info)`.

    Raises:
        TypeError, ValueError: an invalid setting (the message names it).
        ImportError: keras-hub is not installed (names the `hub` extra).

    Example:

    ```python
    import keras_sumix
    from keras_sumix.models import from_hub, pretrain_backbone

    pretrained = pretrain_backbone(image_size=32, num_images=64, epochs=1)
    backbone = from_hub(pretrained.preset)
    model = keras_sumix.SUMixModel(backbone, 64, keras_sumix.layers.CutMix(0.2))
    ```
    """
    settings, root = _check(
        image_size, num_images, epochs, batch_size, learning_rate, seed, cache_dir
    )
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"`verbose` must be 0, 1 or 2. Received: verbose={verbose!r}.")
    return _make(settings, root, verbose)


def _check(
    image_size: Any,
    num_images: Any,
    epochs: Any,
    batch_size: Any,
    learning_rate: Any,
    seed: Any,
    cache_dir: Any,
) -> tuple[dict[str, Any], Path]:
    """The validated settings (what the cache key hashes) and cache folder."""
    check_int("image_size", image_size, 32)
    check_int("num_images", num_images, 2)
    check_int("epochs", epochs, 1)
    check_int("batch_size", batch_size, 2)
    check_int("seed", seed, 0)
    check_number("learning_rate", learning_rate, low=0.0)
    if batch_size > num_images:
        raise ValueError(
            "`batch_size` must be at most `num_images`. Received: "
            f"batch_size={batch_size!r}, num_images={num_images!r}."
        )
    if cache_dir is None:
        root = default_cache_dir()
    elif isinstance(cache_dir, (str, os.PathLike)) and os.fspath(cache_dir).strip():
        root = Path(os.path.expanduser(os.fspath(cache_dir)))
    else:
        raise TypeError(
            "`cache_dir` must be a folder path or None. "
            f"Received: cache_dir={cache_dir!r}."
        )
    settings = {
        "format": _FORMAT,
        "task": "occluded_objects",
        "image_size": int(image_size),
        "num_images": int(num_images),
        "epochs": int(epochs),
        "batch_size": int(batch_size),
        "learning_rate": float(learning_rate),
        "seed": int(seed),
    }
    return settings, root


def _make(settings: dict[str, Any], root: Path, verbose: int) -> PretrainedBackbone:
    """Read `root/<key>`, or train into a temporary folder and rename it
    there (atomic: a folder is either complete or absent)."""
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    final = root / key[:16]
    if not (final / _INFO).is_file():
        root.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{key[:16]}-", dir=root))
        try:
            info = {"key": key[:16], **_train(settings, building, verbose)}
            (building / _INFO).write_text(json.dumps(info, indent=1) + "\n")
            try:
                os.rename(building, final)
            except OSError:  # made meanwhile by another process: keep theirs
                if not (final / _INFO).is_file():
                    raise
        finally:
            shutil.rmtree(building, ignore_errors=True)
    info = json.loads((final / _INFO).read_text())
    return PretrainedBackbone(final / _PRESET, final / _WEIGHTS, info)


# --------------------------------------------------------------------------
# `keras-sumix pretrain`
# --------------------------------------------------------------------------


def add_command(commands: Any) -> None:
    """Add `keras-sumix pretrain` to the sub-command parsers `commands`."""
    pretrain = commands.add_parser(
        "pretrain",
        help="pretrain the small keras-hub ResNet on occluded_objects (a few CPU "
        "minutes, cached); print its preset directory (--weights hub:DIR) and "
        ".weights.h5.",
    )
    default = {
        name: parameter.default
        for name, parameter in inspect.signature(pretrain_backbone).parameters.items()
    }
    for name in ("image_size", "num_images", "epochs", "batch_size", "seed"):
        pretrain.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=int,
            default=default[name],
            help=f"default {default[name]}",
        )
    pretrain.add_argument(
        "--learning-rate",
        dest="learning_rate",
        type=float,
        default=default["learning_rate"],
        help=f"Adam's learning rate (default {default['learning_rate']})",
    )
    pretrain.add_argument(
        "--cache-dir",
        dest="cache_dir",
        default=None,
        help=f"cache folder (default: ${CACHE_ENV}/pretrained, else "
        "~/.cache/keras_sumix/pretrained)",
    )
    pretrain.add_argument("--quiet", action="store_true", help="no progress bars")
    pretrain.set_defaults(prepare=_prepare)


def _prepare(args: argparse.Namespace) -> Callable[[], int]:
    settings, root = _check(
        args.image_size,
        args.num_images,
        args.epochs,
        args.batch_size,
        args.learning_rate,
        args.seed,
        args.cache_dir,
    )
    return lambda: _report(_make(settings, root, 0 if args.quiet else 2))


def _report(pretrained: PretrainedBackbone) -> int:
    info = pretrained.info
    print(
        f"{info['backbone']} ({info['parameters']:,} parameters) pretrained on "
        f"occluded_objects: held-out top-1 {100 * info['held_out_accuracy']:.1f}% "
        f"(10 classes, chance 10%; {info['backend']}, {info['seconds']} s)"
    )
    print(f"preset:  {pretrained.preset}  (--weights hub:{pretrained.preset})")
    print(f"weights: {pretrained.weights}")
    return 0
