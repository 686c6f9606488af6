"""The paper's vision transformers (Table 3): DeiT-Small and Swin-Tiny, built
on keras-hub's `ViTBackbone` / `DeiTBackbone` / `SwinTransformerBackbone`.

Both builders return a `keras.Model` from images to POOLED features, like
the CNN builders of `keras_sumix.models.backbones`: the class token for
DeiT (`TokenPooling("class_token")`), the mean of the last stage's tokens for
Swin (`TokenPooling("mean")`).

| builder | keras-hub backbone | feature_dim | params (224 px) |
| --- | --- | --- | --- |
| `deit_small()` | `ViTBackbone`, ViT-S/16 | 384 | 21,665,664 |
| `deit_small(distilled=True)` | `DeiTBackbone` (distilled) | 384 | 21,666,432 |
| `swin_tiny()` | `SwinTransformerBackbone`, Swin-T | 768 | 27,519,354 |

These counts (the tests pin them) equal timm's `vit_small_patch16_224`,
`deit_small_distilled_patch16_224` and `swin_tiny_patch4_window7_224`
without their 1000-class heads. Training from scratch at 224 px is what
the paper does; `image_size` and `patch_size` (and the depth and width
arguments) make CPU-sized variants, e.g. `deit_small(32, patch_size=4)`.

keras-hub needs to be installed (`pip install 'keras-sumix[hub]'`).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import keras

from keras_sumix._optional import optional_import
from keras_sumix.models.backbones import WeightsArg, _check_rate, _check_weights
from keras_sumix.models.pooling import TokenPooling

__all__ = ["deit_small", "swin_tiny"]

SizeArg = int | Sequence[int]


def _keras_hub(builder: str) -> Any:
    return optional_import(
        "keras_hub", f"keras_sumix.models.{builder} builds a keras-hub backbone and"
    )


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            f"`{name}` must be a positive int. Received: {name}={value!r}."
        )
    return int(value)


def _pair(name: str, value: Any) -> tuple[int, int]:
    """An int or an `(height, width)` pair of positive ints."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(
            f"`{name}` must be a positive int or a (height, width) pair. "
            f"Received: {name}={value!r}."
        )
    if len(value) != 2:
        raise ValueError(
            f"`{name}` must be a positive int or a (height, width) pair. "
            f"Received: {name}={value!r}."
        )
    return _positive(f"{name}[0]", value[0]), _positive(f"{name}[1]", value[1])


def _wrap(
    backbone: keras.Model,
    image_shape: tuple[int, int, int],
    mode: str,
    name: str,
    weights_path: str | None,
) -> keras.Model:
    inputs = keras.Input(shape=image_shape, name="images")
    features = TokenPooling(mode, name="token_pooling")(backbone(inputs))
    model = keras.Model(inputs, features, name=name)
    if weights_path is not None:
        model.load_weights(weights_path)
    return model


def deit_small(
    image_size: SizeArg = 224,
    patch_size: SizeArg = 16,
    *,
    distilled: bool = False,
    num_layers: int = 12,
    num_heads: int = 6,
    hidden_dim: int = 384,
    mlp_dim: int = 1536,
    dropout_rate: float = 0.0,
    weights: WeightsArg = None,
    name: str = "deit_small",
) -> keras.Model:
    """DeiT-Small, images -> the class token's 384 features.

    Which network: the paper trains DeiT-Small from scratch on CIFAR-100
    with the reference toolbox (OpenMixup), whose `deit-small` is a plain
    ViT-S/16 (12 layers, 6 heads, width 384, MLP 1536, one class token, no
    distillation token: DeiT is a training recipe on the ViT architecture).
    So by default `deit_small` is keras-hub's `ViTBackbone` of that shape,
    21,665,664 parameters. `distilled=True` builds keras-hub's
    `DeiTBackbone` instead (a class and a distillation token, 21,666,432
    parameters), the architecture of keras-hub's
    `deit_small_distilled_patch16_224_imagenet` preset; its features are the
    class token too (one linear head on it).

    Differences from the reference: keras-hub's ViT has no stochastic depth
    (the reference uses drop-path 0.1) and initialises its weights its own
    way.

    Args:
        image_size: image side (or `(height, width)`), divisible by
            `patch_size`. 224 in the paper; the tests use 32.
        patch_size: patch side (or `(height, width)`). 16 in the paper.
        distilled: build keras-hub's `DeiTBackbone` (with a distillation
            token) instead of the paper's plain ViT-S/16.
        num_layers: transformer layers (12 for DeiT-S).
        num_heads: attention heads (6).
        hidden_dim: token width (384), the feature dimension.
        mlp_dim: MLP width (1536).
        dropout_rate: dropout of the encoder, in [0, 1).
        weights: None (random initialisation) or a local `.weights.h5` file
            saved from this architecture.
        name: the model name.

    Returns:
        A `keras.Model` mapping images `(N, H, W, 3)` (`(N, 3, H, W)` when
        `keras.config.image_data_format()` is `"channels_first"`) to
        features `(N, hidden_dim)`.

    Example:

    ```python
    backbone = keras_sumix.models.deit_small()  # 224 px, 21,665,664 params
    small = keras_sumix.models.deit_small(32, patch_size=4)  # CPU-sized
    small.output_shape  # (None, 384)
    ```
    """
    keras_hub = _keras_hub("deit_small")
    height, width = _pair("image_size", image_size)
    patch = _pair("patch_size", patch_size)
    if height % patch[0] or width % patch[1]:
        raise ValueError(
            f"`image_size` must be divisible by `patch_size`. Received: "
            f"image_size={image_size!r}, patch_size={patch_size!r}."
        )
    if not isinstance(distilled, bool):
        raise TypeError(
            f"`distilled` must be a bool. Received: distilled={distilled!r}."
        )
    num_layers = _positive("num_layers", num_layers)
    num_heads = _positive("num_heads", num_heads)
    hidden_dim = _positive("hidden_dim", hidden_dim)
    mlp_dim = _positive("mlp_dim", mlp_dim)
    if hidden_dim % num_heads:
        raise ValueError(
            "`hidden_dim` must be divisible by `num_heads`. Received: "
            f"hidden_dim={hidden_dim}, num_heads={num_heads}."
        )
    dropout_rate = _check_rate("dropout_rate", dropout_rate)
    weights_path = _check_weights(weights)
    data_format = keras.config.image_data_format()
    channels_first = data_format == "channels_first"
    shape = (3, height, width) if channels_first else (height, width, 3)
    common = {
        "image_shape": shape,
        "patch_size": patch,
        "num_layers": num_layers,
        "num_heads": num_heads,
        "hidden_dim": hidden_dim,
        "dropout_rate": dropout_rate,
        "data_format": data_format,
    }
    if distilled:
        backbone = keras_hub.models.DeiTBackbone(
            intermediate_dim=mlp_dim, name=f"{name}_deit", **common
        )
    else:
        backbone = keras_hub.models.ViTBackbone(
            mlp_dim=mlp_dim, use_class_token=True, name=f"{name}_vit", **common
        )
    return _wrap(backbone, shape, "class_token", name, weights_path)


def swin_tiny(
    image_size: SizeArg = 224,
    patch_size: int = 4,
    window_size: int = 7,
    *,
    embed_dim: int = 96,
    depths: Sequence[int] = (2, 2, 6, 2),
    num_heads: Sequence[int] = (3, 6, 12, 24),
    drop_path: float = 0.2,
    weights: WeightsArg = None,
    name: str = "swin_tiny",
) -> keras.Model:
    """Swin-Tiny, images -> the mean of the last stage's 768-wide tokens.

    keras-hub's `SwinTransformerBackbone` with the Swin-T configuration
    (patch 4, window 7, width 96, depths 2-2-6-2, heads 3-6-12-24), 27,519,354
    parameters at 224 px; features are the average of the final stage's
    tokens after its layer norm, as Swin's own classifier pools them.
    `drop_path` defaults to 0.2, the reference configuration's stochastic
    depth for Swin-T.

    Every stage's resolution (`image_size / patch_size / 2**stage`) must be
    a multiple of `window_size` (keras-hub's windows do not pad): at 224 px
    that is 56, 28, 14, 7 for window 7; at 32 px use e.g. `patch_size=2,
    window_size=2` (16, 8, 4, 2), or fewer stages with a larger window.

    Args:
        image_size: image side (or `(height, width)`). 224 in the paper.
        patch_size: patch side of the patch embedding (4).
        window_size: attention window side (7).
        embed_dim: width of the first stage (96); the last is
            `embed_dim * 2**(len(depths) - 1)`, the feature dimension.
        depths: blocks per stage (2, 2, 6, 2).
        num_heads: attention heads per stage (3, 6, 12, 24).
        drop_path: stochastic depth rate, in [0, 1).
        weights: None (random initialisation) or a local `.weights.h5` file
            saved from this architecture.
        name: the model name.

    Returns:
        A `keras.Model` mapping channels-last images `(N, H, W, 3)` to
        features `(N, embed_dim * 2**(len(depths) - 1))`.

    Raises:
        ValueError: a bad argument, a resolution that the windows do not
            tile, or `keras.config.image_data_format()` is
            `"channels_first"` (keras-hub's Swin is channels-last only).

    Example:

    ```python
    backbone = keras_sumix.models.swin_tiny()  # 224 px, 27,519,354 params
    small = keras_sumix.models.swin_tiny(32, patch_size=2, window_size=2)
    small.output_shape  # (None, 768)
    ```
    """
    keras_hub = _keras_hub("swin_tiny")
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            "swin_tiny builds keras-hub's SwinTransformerBackbone, which takes "
            "channels-last images only; keras.config.image_data_format() is "
            f"{keras.config.image_data_format()!r}."
        )
    height, width = _pair("image_size", image_size)
    patch_size = _positive("patch_size", patch_size)
    window_size = _positive("window_size", window_size)
    embed_dim = _positive("embed_dim", embed_dim)
    for label, value in (("depths", depths), ("num_heads", num_heads)):
        if (
            isinstance(value, (str, bytes))
            or not isinstance(value, Sequence)
            or not value
        ):
            raise ValueError(
                f"`{label}` must be a non-empty sequence of positive ints, one "
                f"per stage. Received: {label}={value!r}."
            )
    if len(num_heads) != len(depths):
        raise ValueError(
            "`num_heads` must give one head count per stage of `depths`. "
            f"Received: depths={tuple(depths)!r}, num_heads={tuple(num_heads)!r}."
        )
    depths = tuple(_positive(f"depths[{i}]", d) for i, d in enumerate(depths))
    num_heads = tuple(_positive(f"num_heads[{i}]", h) for i, h in enumerate(num_heads))
    for stage, heads in enumerate(num_heads):
        if (embed_dim * 2**stage) % heads:
            raise ValueError(
                f"Stage {stage} is {embed_dim * 2**stage} wide, which "
                f"`num_heads[{stage}]`={heads} does not divide. Received: "
                f"embed_dim={embed_dim}, num_heads={num_heads!r}."
            )
    drop_path = _check_rate("drop_path", drop_path)
    weights_path = _check_weights(weights)
    for side, label in ((height, "height"), (width, "width")):
        if side % (patch_size * 2 ** (len(depths) - 1)):
            raise ValueError(
                f"The image {label} ({side}) must be divisible by patch_size * "
                f"2**(stages - 1) = {patch_size * 2 ** (len(depths) - 1)} (each "
                "stage but the last halves the resolution). Received: "
                f"image_size={image_size!r}, patch_size={patch_size}, "
                f"depths={depths!r}."
            )
        resolutions = [side // patch_size // 2**i for i in range(len(depths))]
        if any(r % window_size or r < window_size for r in resolutions):
            raise ValueError(
                f"`window_size`={window_size} must tile every stage's {label} "
                f"{resolutions} (keras-hub's windows do not pad). Received: "
                f"image_size={image_size!r}, patch_size={patch_size}; choose a "
                "window dividing all of them (e.g. 7 at 224 px with patch 4, "
                "2 at 32 px with patch 2)."
            )
    shape = (height, width, 3)
    backbone = keras_hub.models.SwinTransformerBackbone(
        image_shape=shape,
        embed_dim=embed_dim,
        depths=depths,
        num_heads=num_heads,
        window_size=window_size,
        patch_size=patch_size,
        drop_path=drop_path,
        name=f"{name}_swin",
    )
    return _wrap(backbone, shape, "mean", name, weights_path)
