"""How backbone outputs become pooled `(N, D)` features: one rule shared by
`keras_sumix.models.classifier`, `MixupModel` / `SUMixModel` and the
transformer builders (`deit_small`, `swin_tiny`).

- `(N, D)`: used as they are.
- `(N, H, W, D)` (`(N, D, H, W)` for channels_first): global average pooling.
- `(N, L, D)` tokens: the **class token** (token 0) for a keras-hub
  `ViTBackbone` built with a class token and for a keras-hub `DeiTBackbone`
  (whose token 1 is the distillation token), the **mean of the tokens** for
  every other backbone (a keras-hub `SwinTransformerBackbone`, whose tokens
  are the final stage's patches, or any other token model). These are the
  poolings of the networks' own classifiers (DeiT/ViT classify the class
  token; Swin averages its last stage).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

__all__ = ["TOKEN_POOLINGS", "TokenPooling", "pool_features", "token_pooling_of"]

#: The two ways a `(N, L, D)` token output is pooled.
TOKEN_POOLINGS = ("class_token", "mean")

# keras-hub backbones whose token 0 is a class token (matched by class name,
# so that keras-hub stays an optional dependency).
_CLASS_TOKEN_BACKBONES = ("ViTBackbone", "DeiTBackbone")


def token_pooling_of(backbone: Any) -> str:
    """The pooling of a backbone's `(N, L, D)` token output.

    Args:
        backbone: a Keras model or layer.

    Returns:
        `"class_token"` for a keras-hub `DeiTBackbone`, or a `ViTBackbone`
        with `use_class_token=True`; `"mean"` otherwise.

    Example:

    >>> import keras
    >>> token_pooling_of(keras.Sequential([keras.layers.Dense(4)]))
    'mean'
    """
    for cls in type(backbone).__mro__:
        if cls.__name__ in _CLASS_TOKEN_BACKBONES:
            if cls.__name__ == "ViTBackbone" and not getattr(
                backbone, "use_class_token", True
            ):
                return "mean"
            return "class_token"
    return "mean"


def _check_mode(mode: Any) -> str:
    if mode not in TOKEN_POOLINGS:
        raise ValueError(
            f"`mode` must be one of {TOKEN_POOLINGS}. Received: mode={mode!r}."
        )
    return mode


def pool_features(
    features: Any, token_pooling: str = "mean", data_format: str | None = None
) -> Any:
    """Pool a backbone output to `(N, D)` features (see the module docstring).

    Args:
        features: `(N, D)`, `(N, L, D)` tokens or a 4-D feature map.
        token_pooling: `"class_token"` or `"mean"`, for `(N, L, D)` tokens.
        data_format: layout of a 4-D map; defaults to
            `keras.config.image_data_format()`.

    Returns:
        The `(N, D)` features.

    Raises:
        ValueError: `features` is not of rank 2, 3 or 4.

    Example:

    >>> import numpy as np
    >>> tokens = np.arange(12, dtype="float32").reshape(1, 3, 4)
    >>> np.asarray(pool_features(tokens, "class_token")).tolist()
    [[0.0, 1.0, 2.0, 3.0]]
    """
    rank = len(features.shape)
    if rank == 2:
        return features
    if rank == 3:
        if _check_mode(token_pooling) == "class_token":
            return features[:, 0, :]
        return ops.mean(features, axis=1)
    if rank == 4:
        data_format = data_format or keras.config.image_data_format()
        axes = (2, 3) if data_format == "channels_first" else (1, 2)
        return ops.mean(features, axis=axes)
    raise ValueError(
        "A backbone must output pooled features (N, D), tokens (N, L, D) or a "
        f"4-D feature map. Received features of shape {tuple(features.shape)}."
    )


@keras.saving.register_keras_serializable(package="keras_sumix")
class TokenPooling(keras.layers.Layer):
    """`(N, L, D)` tokens -> `(N, D)`: the class token (token 0) or the mean
    of the tokens.

    Args:
        mode: `"class_token"` or `"mean"`.
        **kwargs: base layer keyword arguments.

    Example:

    >>> import numpy as np
    >>> layer = TokenPooling("mean")
    >>> np.asarray(layer(np.ones((2, 5, 8), "float32"))).shape
    (2, 8)
    """

    def __init__(self, mode: str = "class_token", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mode = _check_mode(mode)

    def call(self, tokens: Any) -> Any:
        if len(tokens.shape) != 3:
            raise ValueError(
                "TokenPooling takes (N, L, D) tokens. Received shape "
                f"{tuple(tokens.shape)}."
            )
        return pool_features(tokens, self.mode)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return (input_shape[0], input_shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}
