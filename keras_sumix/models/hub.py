"""keras-hub backbones for MixupModel / SUMixModel: `from_hub(preset)`.

A keras-hub preset is either a NAME (e.g. `"resnet_18_imagenet"`, or a
`kaggle://` / `hf://` handle), which keras-hub downloads from Kaggle (or
Hugging Face) the first time and then reads from its cache, or a local preset
DIRECTORY (`config.json`, `model.weights.h5`, `metadata.json`), as
`backbone.save_to_preset(directory)` writes it. Without network, only a
directory (or a name already in the kagglehub cache) can be loaded; a name
that needs a download raises a `ConnectionError` that says so and how to
point at a local directory instead.

keras-hub has no ResNeXt-50 preset: for the paper's ResNeXt-50 rows build
`keras_sumix.models.resnext50_32x4d(weights="rx50.weights.h5")` from a local
`.weights.h5` (converted torchvision weights) instead.
"""

from __future__ import annotations

import difflib
import os
import socket
from typing import Any

import keras

from keras_sumix._optional import optional_import

__all__ = ["from_hub"]

_REMOTE_SCHEMES = ("kaggle://", "hf://", "modelscope://", "gs://")
_NETWORK_ERROR_NAMES = (
    "ConnectionError",
    "ConnectTimeout",
    "ReadTimeout",
    "Timeout",
    "MaxRetryError",
    "NewConnectionError",
    "NameResolutionError",
    "OfflineModeIsEnabled",
    "LocalEntryNotFoundError",
)


def _is_network_error(error: BaseException) -> bool:
    """True when `error` (or an exception it was raised from) says the
    network could not be reached."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ConnectionError, TimeoutError, socket.gaierror)):
            return True
        if any(name in type(current).__name__ for name in _NETWORK_ERROR_NAMES):
            return True
        current = current.__cause__ or current.__context__
    return False


def _looks_like_path(preset: str) -> bool:
    return (
        os.sep in preset
        or "/" in preset
        or preset.startswith((".", "~"))
        or preset.endswith((".h5", ".keras", ".json"))
    )


def _resnext_error(preset: str) -> ValueError:
    return ValueError(
        f"keras-hub has no ResNeXt-50 preset (received preset={preset!r}). "
        "For the paper's ResNeXt-50 rows use "
        "`keras_sumix.models.resnext50_32x4d(weights='rx50.weights.h5')` "
        "(`--backbone resnext50_32x4d --weights rx50.weights.h5`) with a local "
        "`.weights.h5` of converted torchvision weights."
    )


def from_hub(
    preset: str | os.PathLike, *, load_weights: bool = True, **kwargs: Any
) -> keras.Model:
    """A keras-hub backbone, for `MixupModel` / `SUMixModel` or `classifier`.

    The backbone is returned as keras-hub builds it: its output is a 4-D
    feature map for CNNs (ResNet, ...) and `(N, L, D)` tokens for
    transformers, which the training models pool (global average, the class
    token of ViT/DeiT, the token mean otherwise; see
    `keras_sumix.models.pooling`). keras-hub's image converter (the
    preset's resizing and rescaling) is not part of the backbone and is not
    applied: the keras-sumix fine-grained pipeline normalises with the
    ImageNet mean and std, the usual input of ImageNet CNNs; compare with
    the preset's `image_converter` configuration when in doubt.

    Args:
        preset: a local preset directory (what `backbone.save_to_preset(dir)`
            writes; read offline), or a keras-hub preset name such as
            `"resnet_18_imagenet"` (or a `kaggle://` / `hf://` handle),
            which keras-hub downloads from Kaggle the first time.
            keras-hub has no ResNeXt-50 preset (see the module docstring).
        load_weights: load the preset's weights (True) or only build its
            architecture with random weights (False).
        **kwargs: passed to `keras_hub.models.Backbone.from_preset` (e.g.
            `dtype`, or config overrides such as `image_shape`).

    Returns:
        The `keras_hub.models.Backbone`.

    Raises:
        ImportError: keras-hub is not installed (names the `hub` extra).
        TypeError: `preset` is not a string or path.
        FileNotFoundError: `preset` looks like a path that does not exist.
        ValueError: a directory that is not a keras-hub preset, an unknown
            preset name (close names are suggested), or a ResNeXt preset.
        ConnectionError: the preset must be downloaded and Kaggle (or
            Hugging Face) cannot be reached; the message names the preset,
            where it downloads from, and how to use a local directory.

    Example:

    ```python
    backbone = keras_sumix.models.from_hub("resnet_18_imagenet")  # download
    backbone.save_to_preset("presets/resnet_18_imagenet")  # keep it
    backbone = keras_sumix.models.from_hub("presets/resnet_18_imagenet")
    model = keras_sumix.SUMixModel(backbone, 200, keras_sumix.layers.CutMix(0.2))
    ```
    """
    if isinstance(preset, os.PathLike):
        preset = os.fspath(preset)
    if not isinstance(preset, str) or not preset.strip():
        raise TypeError(
            "`preset` must be a keras-hub preset name (e.g. 'resnet_18_imagenet') "
            f"or a local preset directory. Received: preset={preset!r}."
        )
    if not isinstance(load_weights, bool):
        raise TypeError(
            f"`load_weights` must be a bool. Received: load_weights={load_weights!r}."
        )
    keras_hub = optional_import(
        "keras_hub", "keras_sumix.models.from_hub loads a keras-hub preset and"
    )
    backbone_cls = keras_hub.models.Backbone
    path = os.path.expanduser(preset)
    if os.path.exists(path):
        return _from_directory(backbone_cls, preset, path, load_weights, kwargs)
    if "resnext" in preset.lower():
        raise _resnext_error(preset)
    remote = preset.startswith(_REMOTE_SCHEMES)
    if not remote and _looks_like_path(preset):
        raise FileNotFoundError(
            f"`preset` {preset!r} looks like a local preset directory, but it "
            "does not exist. Write one with `backbone.save_to_preset(directory)`."
        )
    known = backbone_cls.presets
    if not remote and preset not in known:
        close = difflib.get_close_matches(preset, list(known), n=5, cutoff=0.6)
        hint = f" Close names: {close}." if close else ""
        raise ValueError(
            f"`preset` {preset!r} is neither a local preset directory nor a "
            f"keras-hub preset name.{hint} Image backbones include "
            "'resnet_18_imagenet', 'resnet_50_imagenet', "
            "'deit_small_distilled_patch16_224_imagenet' and "
            "'swin_tiny_patch4_window7_224' (see `keras_hub.models.Backbone."
            "presets`)."
        )
    handle = known[preset].get("kaggle_handle", preset) if not remote else preset
    try:
        return backbone_cls.from_preset(preset, load_weights=load_weights, **kwargs)
    except Exception as error:  # re-raised below unless a network error
        if not _is_network_error(error):
            raise
        source = "Hugging Face" if str(handle).startswith("hf://") else "Kaggle"
        raise ConnectionError(
            f"The keras-hub preset {preset!r} is downloaded from {source} "
            f"({handle}), which cannot be reached from here "
            f"({type(error).__name__}), and it is not in the local cache. Where "
            "there is network, run `keras_hub.models.Backbone.from_preset("
            f"{preset!r}).save_to_preset('DIR')` once, copy DIR here and pass "
            "the directory instead: `keras_sumix.models.from_hub('DIR')`, or "
            "`--weights hub:DIR` on the command line."
        ) from error


def _from_directory(
    backbone_cls: Any,
    preset: str,
    path: str,
    load_weights: bool,
    kwargs: dict[str, Any],
) -> keras.Model:
    if not os.path.isdir(path):
        raise ValueError(
            f"`preset` {preset!r} is a file, not a keras-hub preset directory. "
            "A `.weights.h5` file goes to a builder's `weights=` argument "
            "(e.g. `keras_sumix.models.resnet18(weights=...)`, `--weights "
            "FILE`); a preset directory holds config.json and model.weights.h5, "
            "as `backbone.save_to_preset(directory)` writes them."
        )
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise ValueError(
            f"`preset` {preset!r} is a directory but not a keras-hub preset: it "
            "has no config.json. Write one with `backbone.save_to_preset("
            "directory)`."
        )
    return backbone_cls.from_preset(path, load_weights=load_weights, **kwargs)
