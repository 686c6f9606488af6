"""Named SUMix variants: sets of overrides of SUMix's options
(`keras_sumix.options`) that `SUMixModel(variant=...)` applies.

- `"paper"`: the published method, as the authors' code computes it: no
  override, every option at its default (the default variant, so that
  `SUMixModel(...)` reproduces the paper's tables).
- `"recommended"`: the reading this project's study supports (the
  documentation's SUMix page, section Variants): the lam correction of the
  paper's prose (`lambda_mode="distance"`), each sample its own ratio
  (`reduction="per_sample"`), with the cheap step
  (`raw_pass_gradient=False`: the raw pass runs forward only, so a step costs
  little more than a mixed cross-entropy step instead of about two). The
  regulariser stays the authors' (it sends almost no gradient, and the form
  that does, `regularizer_logits="negative"`, did not change accuracy).

An option given explicitly to `SUMixModel` (or to
`keras_sumix.training.TrainConfig`, or `keras-sumix train`) wins over its
variant's value. Adding a variant: one entry in `VARIANTS`, its docs row.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any

from keras_sumix._validation import check_choice
from keras_sumix.options import DEFAULTS, check_options

__all__ = ["DEFAULT_VARIANT", "VARIANTS", "resolve_options"]


def _variant(**overrides: Any) -> Mapping[str, Any]:
    """A variant: overrides of SUMix options, validated (read-only)."""
    for name in overrides:
        if name in DEFAULTS and DEFAULTS[name] is None:
            raise ValueError(
                f"A variant cannot set `{name}`: its default is None, which "
                "outside `sumix_loss` means 'not given'."
            )
    return types.MappingProxyType(check_options(**overrides))


#: The SUMix option overrides of each variant.
VARIANTS: Mapping[str, Mapping[str, Any]] = types.MappingProxyType(
    {
        "paper": _variant(),
        "recommended": _variant(
            lambda_mode="distance",
            reduction="per_sample",
            raw_pass_gradient=False,
        ),
    }
)

#: The variant of `SUMixModel(...)` with no `variant`.
DEFAULT_VARIANT = "paper"


def resolve_options(variant: Any = DEFAULT_VARIANT, **options: Any) -> dict[str, Any]:
    """Every SUMix option: its default, overridden by the variant's value,
    overridden by the value given; validated and normalised.

    Args:
        variant: a name in `VARIANTS`.
        **options: SUMix options by name (`keras_sumix.options.NAMES`); a
            None value means "not given".

    Returns:
        Every option, by name, in `keras_sumix.options.NAMES`'s order
        (numbers as floats).

    Raises:
        ValueError: an unknown variant or option name (named in the
            message), or a value out of range.
        TypeError: a value of the wrong type.

    Example:

    >>> resolve_options("recommended")["reduction"]
    'per_sample'
    >>> resolve_options("recommended", reduction="reference")["reduction"]
    'reference'
    """
    check_choice("variant", variant, tuple(VARIANTS))
    chosen = {**DEFAULTS, **VARIANTS[variant]}
    for name, value in options.items():
        if value is not None or name not in chosen:
            chosen[name] = value
    return check_options(**chosen)
