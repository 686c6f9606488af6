"""Named SUMix variants: the options `SUMixModel(variant=...)` sets.

- `"paper"`: the published method, as the authors' code computes it (the
  default, so that `SUMixModel(...)` reproduces the paper's tables).
- `"recommended"`: the reading this project's study supports (`docs/study.md`,
  parts P, R, S and N; the table is in `docs/sumix.md`, "Variants"): the
  lam correction of the paper's prose (`lambda_mode="distance"`), each
  sample its own ratio (`reduction="per_sample"`), at the library's
  `distance_scale`, with the cheap step (`raw_pass_gradient=False`: the raw
  pass runs forward only, a step of 1.2-1.4x an MCE step instead of
  1.9-2.0x). The regulariser stays the authors' (it sends almost no
  gradient; the form that does, `regularizer_logits="negative"`, changed no
  accuracy in the study).

A variant sets only the options listed in `VARIANT_OPTIONS`; an option given
explicitly to `SUMixModel` (or `keras_sumix.training.TrainConfig`) wins over
its variant's value. Adding a variant: one entry in `VARIANTS`, its docs row.
"""

from __future__ import annotations

from typing import Any

from keras_sumix._validation import check_choice
from keras_sumix.losses import DEFAULT_DISTANCE_SCALE, check_loss_options

#: The options a variant sets, in `SUMixModel`'s order.
VARIANT_OPTIONS = (
    "lambda_mode",
    "regularizer",
    "distance_scale",
    "reduction",
    "raw_pass_gradient",
    "regularizer_logits",
)

#: The options of each variant (every one of `VARIANT_OPTIONS`).
VARIANTS: dict[str, dict[str, Any]] = {
    "paper": {
        "lambda_mode": "reference",
        "regularizer": "both",
        "distance_scale": DEFAULT_DISTANCE_SCALE,
        "reduction": "reference",
        "raw_pass_gradient": True,
        "regularizer_logits": "exp",
    },
    "recommended": {
        "lambda_mode": "distance",
        "regularizer": "both",
        "distance_scale": DEFAULT_DISTANCE_SCALE,
        "reduction": "per_sample",
        "raw_pass_gradient": False,
        "regularizer_logits": "exp",
    },
}

#: The variant of `SUMixModel(...)` with no `variant`.
DEFAULT_VARIANT = "paper"

#: `SUMixModel`'s defaults of the SUMix options no variant sets.
_OTHER_OPTIONS: dict[str, Any] = {
    "gamma": 0.5,
    "semantic_scale": None,
    "regularizer_temperature": 1.0,
    "saliency_pass": "separate",
}


def resolve_options(variant: Any = DEFAULT_VARIANT, **options: Any) -> dict[str, Any]:
    """`SUMixModel`'s SUMix options: a variant's, overridden by those given
    (None: not given), validated and normalised.

    Args:
        variant: a name in `VARIANTS`.
        **options: `SUMixModel` options: the loss options of
            `keras_sumix.sumix_loss` (`gamma`, `semantic_scale`,
            `regularizer_temperature` and those of `VARIANT_OPTIONS`),
            `raw_pass_gradient` and `saliency_pass`. A None value of one of
            `VARIANT_OPTIONS` takes the variant's.

    Returns:
        The loss options (numbers as floats), then `raw_pass_gradient` and
        `saliency_pass`; the defaults of `SUMixModel` for any not given.

    Example:

    ```python
    resolve_options("recommended")["reduction"]  # "per_sample"
    resolve_options("recommended", reduction="reference")["reduction"]
    ```
    """
    check_choice("variant", variant, tuple(VARIANTS))
    unknown = sorted(set(options) - set(_OTHER_OPTIONS) - set(VARIANT_OPTIONS))
    if unknown:
        raise TypeError(
            f"Unknown SUMix option(s) {unknown}; expected among "
            f"{sorted(VARIANT_OPTIONS + tuple(_OTHER_OPTIONS))}."
        )
    chosen = {**_OTHER_OPTIONS, **VARIANTS[variant]}
    given = {k: v for k, v in options.items() if v is not None or k in _OTHER_OPTIONS}
    chosen.update(given)
    raw_pass_gradient = chosen.pop("raw_pass_gradient")
    if not isinstance(raw_pass_gradient, bool):
        raise TypeError(
            "`raw_pass_gradient` must be a bool. Received: "
            f"raw_pass_gradient={raw_pass_gradient!r}."
        )
    saliency_pass = check_choice(
        "saliency_pass", chosen.pop("saliency_pass"), ("separate", "raw")
    )
    return {
        **check_loss_options(**chosen),
        "raw_pass_gradient": raw_pass_gradient,
        "saliency_pass": saliency_pass,
    }
