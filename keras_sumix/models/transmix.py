"""TransMix (Chen et al., CVPR 2022): the label lam of a vision transformer
from its class token's attention.

With a mixer that cuts (CutMix, FMix, SaliencyMix, ResizeMix, PuzzleMix,
AutoMix: any mixer whose `MixResult` has a pixel `mask`), a mixed image's
label is weighted by how much of the class token's attention falls on the
patches taken from each image, not by the pasted area:

    a       = mean over heads of the last block's attention, class-token
              row, patch columns                                  (N, P)
    k       = each patch's kept share: `mask` averaged over the patch (N, P)
    lam_att = sum(a * k) / sum(a)
    lam     = (lam_area + lam_att) / 2       (`label_lam="attention"`)

as in the reference code (Beckschen/TransMix and OpenMixup's `transmix`,
both with `ratio=0.5`). Like the reference, the attention is the pre-dropout
softmax of the last block, read from the mixed pass the step runs anyway,
and no gradient flows through `lam_att` (the reference detaches it). One
difference: the reference samples the pixel mask at one pixel per patch
(nearest), then truncates it to 0/1; here each patch counts with the share
of its pixels kept (average pooling), which is the same on a box aligned to
the patch grid and keeps a patch the box cuts through, and soft masks
(AutoMix, PuzzleMix), in proportion.

Which backbones: keras-hub's `ViTBackbone` built with its class token and
`DeiTBackbone` (whose distillation token is left out with the class token),
given directly (the study's small ViT) or inside a model (`deit_small`,
`from_hub`). Swin has no class token; a CNN has no attention: both raise a
ValueError when the model is built with `label_lam="attention"`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import numbers
import threading
from collections.abc import Iterator
from typing import Any

import keras
from keras import ops

from keras_sumix.layers.mix_up import MixUp
from keras_sumix.models.backend import replicas
from keras_sumix.models.pooling import token_pooling_of

__all__ = [
    "LABEL_LAMS",
    "AttentionSource",
    "attention_lam",
    "attention_source",
    "check_mixer",
]

#: The lams a mixing model can mix its labels with: the mixer's pasted
#: area, or TransMix's (the area's and the class token's attention's mean).
LABEL_LAMS = ("area", "attention")
#: The weight of the area lam in TransMix's label lam (`ratio` of the
#: reference code, 0.5 in Beckschen/TransMix and OpenMixup).
AREA_SHARE = 0.5
#: The keras-hub encoders whose last block's attention is read, and how
#: many tokens each puts before its patches (class, distillation).
_PREFIX_TOKENS = {"ViTBackbone": 1, "DeiTBackbone": 2}


def _positive_int(value: Any) -> bool:
    return (
        isinstance(value, numbers.Integral)
        and not isinstance(value, bool)
        and value > 0
    )


def _pair(value: Any) -> tuple[int, int]:
    """A positive int or a `(height, width)` pair of them, as a pair."""
    if _positive_int(value):
        return int(value), int(value)
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(_positive_int(v) for v in value)
    ):
        return int(value[0]), int(value[1])
    raise ValueError(
        "`patch_size` must be a positive int or a (height, width) pair of "
        f"positive ints. Received: patch_size={value!r}."
    )


def attention_lam(
    scores: Any,
    mask: Any,
    patch_size: int | tuple[int, int],
    num_prefix_tokens: int = 1,
    data_format: str | None = None,
) -> Any:
    """The share of the class token's attention on the patches each image
    keeps: TransMix's attention lam (see the module docstring).

    `a` is the class token's row of `scores`, its patch columns, averaged
    over the heads; each patch counts with the share of its pixels that
    `mask` keeps (`mask` averaged over the patch); the result is
    `sum(a * kept) / sum(a)`, without gradient.

    Args:
        scores: attention probabilities `(N, heads, L, L)` (what
            `keras.layers.MultiHeadAttention(..., return_attention_scores=True)`
            returns), whose first `num_prefix_tokens` tokens are the class
            token (token 0) and any other non-patch token, then the patches
            in row-major order.
        mask: the kept share of each pixel, `MixResult.mask`: `(N, H, W, 1)`
            (`(N, 1, H, W)` for channels-first), 1 kept from `images[i]`, 0
            taken from its partner.
        patch_size: the patch side, or `(height, width)`; `H` and `W` must be
            multiples of it and the patch grid must have `L -
            num_prefix_tokens` cells.
        num_prefix_tokens: tokens before the patches (1 for a ViT's class
            token, 2 for DeiT's class and distillation tokens), `>= 1`.
        data_format: the layout of `mask`; defaults to
            `keras.config.image_data_format()`.

    Returns:
        float32 `(N,)` in [0, 1], with no gradient.

    Raises:
        ValueError: the shapes disagree (ranks, the patch grid against the
            tokens, `H` or `W` not a multiple of the patch).

    Example:

    >>> import numpy as np
    >>> scores = np.zeros((1, 1, 5, 5), "float32")
    >>> scores[0, 0, 0] = [0.2, 0.1, 0.1, 0.1, 0.5]  # class token's row
    >>> mask = np.ones((1, 4, 4, 1), "float32")
    >>> mask[0, 2:, 2:] = 0.0  # the bottom-right patch is pasted
    >>> np.asarray(attention_lam(scores, mask, 2, data_format="channels_last"))
    array([0.375], dtype=float32)
    """
    patch_h, patch_w = _pair(patch_size)
    if isinstance(num_prefix_tokens, bool) or not isinstance(num_prefix_tokens, int):
        raise TypeError(
            "`num_prefix_tokens` must be an int. Received: "
            f"num_prefix_tokens={num_prefix_tokens!r}."
        )
    if num_prefix_tokens < 1:
        raise ValueError(
            "`num_prefix_tokens` must be >= 1 (the class token is token 0). "
            f"Received: num_prefix_tokens={num_prefix_tokens}."
        )
    data_format = data_format or keras.config.image_data_format()
    if len(scores.shape) != 4 or len(mask.shape) != 4:
        raise ValueError(
            "`scores` must be (N, heads, L, L) and `mask` (N, H, W, 1) or "
            f"(N, 1, H, W). Received: scores of shape {tuple(scores.shape)}, "
            f"mask of shape {tuple(mask.shape)}."
        )
    mask = ops.cast(mask, "float32")
    if data_format == "channels_first":
        mask = ops.transpose(mask, (0, 2, 3, 1))
    height, width = mask.shape[1], mask.shape[2]
    grid_h, grid_w = height // patch_h, width // patch_w
    tokens = scores.shape[-1]
    if (
        height % patch_h
        or width % patch_w
        or grid_h * grid_w + num_prefix_tokens != tokens
    ):
        raise ValueError(
            f"A {height}x{width} mask in {patch_h}x{patch_w} patches does not "
            f"match {tokens} tokens with {num_prefix_tokens} before the "
            f"patches. Received: scores of shape {tuple(scores.shape)}, mask "
            f"of shape {tuple(mask.shape)}, patch_size={patch_size!r}."
        )
    # The kept share of each patch, in the tokens' row-major order.
    kept = ops.reshape(mask, (-1, grid_h, patch_h, grid_w, patch_w))
    kept = ops.reshape(ops.mean(kept, axis=(2, 4)), (-1, grid_h * grid_w))
    attention = ops.cast(scores[:, :, 0, num_prefix_tokens:], "float32")
    attention = ops.mean(attention, axis=1)
    total = ops.maximum(ops.sum(attention, axis=1), 1e-12)
    return ops.stop_gradient(ops.sum(attention * kept, axis=1) / total)


def check_mixer(mixer: Any) -> None:
    """Raise unless `mixer` (a mixing layer, or its class) gives the pixel
    mask TransMix weighs the attention by: MixUp blends every pixel and a
    feature mixer (ManifoldMix, `mixes_features`) mixes no pixels.

    Raises:
        ValueError: `mixer` makes no pixel mask.
    """
    cls = mixer if isinstance(mixer, type) else type(mixer)
    if getattr(cls, "mixes_features", False):  # before MixUp: its subclass
        why = "it mixes hidden features"
    elif issubclass(cls, MixUp):
        why = "it blends every pixel"
    else:
        return
    raise ValueError(
        "`label_lam='attention'` (TransMix) weighs the class token's attention "
        "by the pixel mask of a cutting mixer (CutMix, FMix, SaliencyMix, "
        f"ResizeMix, PuzzleMix, AutoMix), but {cls.__name__} makes none ({why}). "
        f"Received: mixer of type {cls.__name__}; use label_lam='area' with it."
    )


@dataclasses.dataclass(frozen=True)
class AttentionSource:
    """Where a backbone's class-token attention is read (`attention_source`).

    Attributes:
        layer: the last encoder block's `keras.layers.MultiHeadAttention`.
        patch_size: `(height, width)` of a patch.
        num_prefix_tokens: tokens before the patches.
    """

    layer: keras.layers.MultiHeadAttention
    patch_size: tuple[int, int]
    num_prefix_tokens: int


def _layers(layer: Any) -> Iterator[Any]:
    """`layer` and every layer of the models nested in it, depth first."""
    yield layer
    for child in getattr(layer, "layers", None) or ():
        yield from _layers(child)


def _encoder_name(layer: Any) -> str | None:
    """The `_PREFIX_TOKENS` key of a keras-hub ViT/DeiT with a class token."""
    if token_pooling_of(layer) != "class_token":
        return None
    return next(
        cls.__name__ for cls in type(layer).__mro__ if cls.__name__ in _PREFIX_TOKENS
    )


def attention_source(backbone: Any) -> AttentionSource:
    """Find the attention TransMix reads in `backbone`: the last encoder
    block's `MultiHeadAttention` of the keras-hub `ViTBackbone` (built with
    its class token) or `DeiTBackbone` that `backbone` is or holds.

    Args:
        backbone: a mixing model's backbone.

    Returns:
        An `AttentionSource`.

    Raises:
        ValueError: `backbone` holds no keras-hub ViT/DeiT with a class
            token (a CNN, Swin, a ViT without class token), or its last
            block has no `MultiHeadAttention` where keras-hub puts it.
    """
    found = [(layer, _encoder_name(layer)) for layer in _layers(backbone)]
    found = [(layer, name) for layer, name in found if name is not None]
    if not found:
        raise ValueError(
            "`label_lam='attention'` (TransMix) reads the class token's "
            "attention of a keras-hub ViTBackbone (with use_class_token=True) "
            "or DeiTBackbone, e.g. keras_sumix.models.deit_small(); Swin has no "
            "class token and a CNN no attention. Received: backbone "
            f"{getattr(backbone, 'name', backbone)!r} of type "
            f"{type(backbone).__name__}, which holds none."
        )
    hub, name = found[0]
    blocks = [
        layer.encoder_layers
        for layer in getattr(hub, "layers", ())
        if getattr(layer, "encoder_layers", None)
    ]
    attention = getattr(blocks[0][-1], "mha", None) if blocks else None
    if not isinstance(attention, keras.layers.MultiHeadAttention):
        raise ValueError(
            f"Found no MultiHeadAttention `mha` in the last encoder block of "
            f"the {name} {hub.name!r}: this keras-hub version lays its "
            "encoder out differently, and `label_lam='attention'` cannot read "
            "it. Use label_lam='area'."
        )
    return AttentionSource(attention, _pair(hub.patch_size), _PREFIX_TOKENS[name])


# The layers patched by `recording`: `id(layer) -> [scopes open, the
# instance's own `call` or None]`. `tf.distribute.MirroredStrategy` traces
# each replica's step in a thread of its own, through the same layers: the
# patch is installed once, and each thread records into its own dict.
_PATCHED: dict[int, list[Any]] = {}
_PATCH_LOCK = threading.Lock()
_THREAD = threading.local()


@contextlib.contextmanager
def recording(source: AttentionSource) -> Iterator[dict[str, Any]]:
    """Within the block, every call of `source.layer` in this thread also
    records its attention probabilities in the yielded dict (key
    `"scores"`): the layer computes them anyway, and returns what its caller
    asked for. Outside every block the layer is as it was."""
    layer = source.layer
    record: dict[str, Any] = {}
    records = _THREAD.__dict__.setdefault("records", {})
    records[id(layer)] = record
    with _PATCH_LOCK:
        if id(layer) not in _PATCHED:
            _PATCHED[id(layer)] = [0, vars(layer).get("call")]
            _patch(layer)
        _PATCHED[id(layer)][0] += 1
    try:
        yield record
    finally:
        del records[id(layer)]
        with _PATCH_LOCK:
            patched = _PATCHED[id(layer)]
            patched[0] -= 1
            if patched[0] == 0:
                del _PATCHED[id(layer)]
                if patched[1] is None:
                    object.__delattr__(layer, "call")
                else:
                    object.__setattr__(layer, "call", patched[1])


def _patch(layer: keras.layers.MultiHeadAttention) -> None:
    """Make `layer` record its attention scores into the calling thread's
    open `recording` dict (and act as before in a thread without one)."""
    own = layer.call

    def call(*args: Any, **kwargs: Any) -> Any:
        record = getattr(_THREAD, "records", {}).get(id(layer))
        if record is None:
            return own(*args, **kwargs)
        wanted = kwargs.pop("return_attention_scores", False)
        output, scores = own(*args, return_attention_scores=True, **kwargs)
        record["scores"] = scores
        return (output, scores) if wanted else output

    # Set on the instance past Keras's (and torch's) attribute tracking: a
    # function is not state, and `recording` removes it.
    object.__setattr__(layer, "call", call)


def label_lam(
    source: AttentionSource,
    record: dict[str, Any],
    mix: Any,
    images: Any,
    data_format: str,
) -> Any:
    """TransMix's label lam of a mixed batch: `AREA_SHARE` of the area lam
    and the rest of `attention_lam`.

    Args:
        source: the backbone's `AttentionSource`.
        record: what `recording(source)` recorded over this replica's mixed
            pass.
        mix: the global `MixResult` (its `mask`, global, and area `lam`).
        images: this replica's clean batch (to take its rows of the mask).
        data_format: the mask's layout.

    Returns:
        float32 `(N,)` for the global batch.

    Raises:
        ValueError: the mixer gave no pixel mask (MixUp), or the mixed pass
            never called the recorded attention.
    """
    if mix.mask is None:
        raise ValueError(
            "`label_lam='attention'` (TransMix) weighs the class token's "
            "attention by a pixel mask, but the mixer's MixResult has none. "
            "Use label_lam='area' with it."
        )
    if "scores" not in record:
        raise ValueError(
            f"The mixed pass did not call the attention layer "
            f"{source.layer.name!r} that `label_lam='attention'` reads."
        )
    attention = attention_lam(
        record["scores"],
        replicas.local_rows(mix.mask, images),
        source.patch_size,
        source.num_prefix_tokens,
        data_format,
    )
    area = ops.cast(mix.lam, "float32")
    return AREA_SHARE * area + (1.0 - AREA_SHARE) * replicas.gather(attention)
