"""The one registry of mixers: each mixer's file declares its name and facts
as class keywords (see `MixingLayer`), and everything that lists mixers (the
CLI, the study, lambda fidelity, `get_mixer`) reads them here.

A mixer's facts:

- `name`: the registry key (`"cutmix"`), used by `get_mixer`, the CLI's
  `--mixer` and the study's cells;
- `in_place`: every output pixel comes from the same position of `images[i]`
  or of its partner (CutMix, FMix, SaliencyMix), so the kept mask alone says
  which object pixels stay visible;
- `true_share`: object masks mixed the same way (`mixer.apply(masks, params,
  partner=...)`) give the true label share: pixels are kept, moved or
  blended, never rescaled (the in-place mixers and PuzzleMix; not MixUp,
  which blends every pixel, nor ResizeMix, which shrinks the partner);
- `needs_saliency`: `mix` takes the model's `saliency` (the models then
  compute it from an input gradient);
- `needs_features`: `mix` takes `features`, a feature map of the batch, and
  the mixer has weights of its own trained by a loss of its own (AutoMix's
  mix block); the models then keep the momentum encoder the features come
  from and run that loss;
- `mixes_features`: the mixer blends the network's hidden feature maps at a
  stage it draws (ManifoldMix): only `MixupModel` and `SUMixModel` can run
  it (`mixer=`), through their staged forward pass
  (`keras_sumix.models.stages`); it has no pixel mask, so no true share, and
  `mix` on images alone (a `tf.data` map, the CLI's `show`) raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keras_sumix.layers.base import MixingLayer

#: Every registered mixer class, by name, in registration order.
MIXERS: dict[str, type[MixingLayer]] = {}


def register(cls: type[MixingLayer], name: str) -> None:
    """Record `cls` under `name` (called when a mixer class declares
    `name=`); a second class under the same name raises a ValueError."""
    if not isinstance(name, str) or not name.isalnum() or name != name.lower():
        raise ValueError(
            "A mixer's `name` must be lower-case letters and digits (lookups "
            f"ignore case, `_` and `-`). Received: {name!r} for {cls.__name__}."
        )
    other = MIXERS.get(name)
    if other is not None and other.__qualname__ != cls.__qualname__:
        raise ValueError(
            f"Mixer name {name!r} is taken by {other.__name__}; {cls.__name__} "
            "must use another."
        )
    MIXERS[name] = cls


def _key(name: Any) -> str:
    return str(name).lower().replace("_", "").replace("-", "")


def mixer_class(name: str) -> type[MixingLayer]:
    """The class registered under `name` (case, `_` and `-` ignored).

    Args:
        name: a mixer's name, e.g. `"cutmix"` or `"CutMix"`.

    Returns:
        The mixing layer class.

    Raises:
        ValueError: no mixer has that name.
    """
    key = _key(name)
    if key not in MIXERS:
        raise ValueError(f"Unknown mixer {name!r}. Expected one of {names()}.")
    return MIXERS[key]


def get_mixer(name: str, **kwargs: Any) -> MixingLayer:
    """Build a mixer by name (case-insensitive; see `names()`).

    Args:
        name: the mixer's name, e.g. `"cutmix"`.
        **kwargs: its constructor arguments.

    Returns:
        The mixing layer.

    Example:

    >>> from keras_sumix.layers import get_mixer
    >>> get_mixer("CutMix", alpha=0.2).alpha
    0.2
    """
    return mixer_class(name)(**kwargs)


def names(
    *,
    in_place: bool | None = None,
    true_share: bool | None = None,
    needs_saliency: bool | None = None,
    needs_features: bool | None = None,
    mixes_features: bool | None = None,
) -> list[str]:
    """The registered mixers' names, optionally only those with given facts.

    Args:
        in_place: keep only mixers that do (True) or do not (False) keep
            every pixel in place; None: either.
        true_share: likewise for `true_share`.
        needs_saliency: likewise for `needs_saliency`.
        needs_features: likewise for `needs_features`.
        mixes_features: likewise for `mixes_features` (False: the mixers
            that mix images, outside a model too).

    Returns:
        Names in registration order.

    Example:

    >>> from keras_sumix.layers import registry
    >>> registry.names(in_place=True)
    ['cutmix', 'fmix', 'saliencymix']
    """
    wanted = {
        "in_place": in_place,
        "true_share": true_share,
        "needs_saliency": needs_saliency,
        "needs_features": needs_features,
        "mixes_features": mixes_features,
    }
    return [
        name
        for name, cls in MIXERS.items()
        if all(v is None or getattr(cls, k) == v for k, v in wanted.items())
    ]


def label(name: str) -> str:
    """A mixer's display name: its class name (`"cutmix"` -> `"CutMix"`)."""
    return mixer_class(name).__name__
