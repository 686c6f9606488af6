"""SUMix's options, described once.

`OPTIONS` is the one description of the options of the SUMix method: each
`Option` gives a name, its type, its default, how it is validated and a
one-line help. Everything else is derived from it:

- `keras_sumix.sumix_loss`: its keyword defaults (`DEFAULTS`) and their
  validation (`check_options`), for the options with `loss=True`;
- `keras_sumix.SUMixModel`: its SUMix keyword arguments, their validation
  and its `get_config` (every option);
- the variants (`keras_sumix.models.variants`): a variant is a set of
  overrides of these options, validated against them;
- `keras_sumix.training.TrainConfig`: one field per option
  (`config_fields`);
- `keras-sumix train`: one flag per option, `--gamma`, `--lambda-mode`, ...

A new option is one entry in `OPTIONS` (and, where it changes the loss, the
code of `sumix_loss` that reads it), plus its tests and docs.

Outside `sumix_loss`, None stands for "not given": the option then takes its
variant's value, else its default. `semantic_scale` is the one option whose
default is None (the batch size), so no variant may set it.

Example:

>>> from keras_sumix.options import DEFAULTS, check_options
>>> DEFAULTS["gamma"]
0.5
>>> check_options(gamma=1, reduction="per_sample")
{'gamma': 1.0, 'reduction': 'per_sample'}
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from typing import Any

from keras_sumix._validation import check_choice, check_number

__all__ = [
    "DEFAULTS",
    "LOSS_OPTIONS",
    "NAMES",
    "OPTIONS",
    "Option",
    "check_options",
    "config_fields",
    "get_option",
]


@dataclasses.dataclass(frozen=True)
class Option:
    """One SUMix option: its name, type, default, validation and help.

    Attributes:
        name: the keyword argument (`--name-with-dashes` on the command line).
        type: `float`, `str` (then `choices` lists the values) or `bool`.
        default: the value when neither given nor set by a variant; the
            paper's (the authors' code).
        help: one line: what the option does.
        choices: the values of a `str` option.
        low: the bound a `float` option must exceed (or reach, with
            `include_low`).
        include_low: whether `low` itself is allowed.
        loss: whether `sumix_loss` takes it (False: the model's step alone).
    """

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    low: float | None = None
    include_low: bool = False
    loss: bool = True

    def check(self, value: Any) -> Any:
        """`value` validated and normalised (numbers as floats).

        Raises:
            ValueError: a value out of range or not among `choices`.
            TypeError: a value of the wrong type.
        """
        if self.type is str:
            return check_choice(self.name, value, self.choices)
        if self.type is bool:
            if not isinstance(value, bool):
                raise TypeError(
                    f"`{self.name}` must be a bool. Received: {self.name}={value!r}."
                )
            return value
        if value is None and self.default is None:
            return None
        return check_number(
            self.name, value, low=self.low, include_low=self.include_low
        )

    @property
    def flag(self) -> str:
        """The command-line flag, `--name-with-dashes`."""
        return "--" + self.name.replace("_", "-")


#: SUMix's options, in the order `SUMixModel` documents them.
OPTIONS: tuple[Option, ...] = (
    Option(
        "gamma",
        float,
        0.5,
        "weight of the uncertainty regulariser, >= 0 (the reference configs' "
        "0.5; the paper's appendix uses 0.1 to 1.0 per mixer and dataset)",
        low=0.0,
        include_low=True,
    ),
    Option(
        "lambda_mode",
        str,
        "reference",
        "how lam is corrected: reference (the authors' formula), distance "
        "(the paper's prose) or area (no correction)",
        choices=("reference", "distance", "area"),
    ),
    Option(
        "regularizer",
        str,
        "both",
        "the terms x of the regulariser's logits: both (beta + alpha), "
        "uncertainty (beta), semantic (alpha, no gradient) or none",
        choices=("both", "uncertainty", "semantic", "none"),
    ),
    Option(
        "semantic_scale",
        float,
        None,
        "the scale s of the semantic term alpha, > 0 (None: the global batch "
        "size, as the reference code)",
        low=0.0,
    ),
    # The spec leaves t free (its worked example uses 2). Distances between
    # probability vectors lie in [0, sqrt(2)], so t = 4 moves an area ratio
    # of 0.5 at most to sigmoid(4 * sqrt(2)) = 0.996 (or 0.004): a sharper
    # correction, which the project's study found at least as good as t = 2.
    Option(
        "distance_scale",
        float,
        4.0,
        "the temperature t of lambda_mode=distance, "
        "w = exp(-t * ||p_mix - p_raw||_2), > 0",
        low=0.0,
    ),
    Option(
        "reduction",
        str,
        "reference",
        "reference (batch-mean ratios, as the authors' code) or per_sample "
        "(each sample its own ratio, as the paper says)",
        choices=("reference", "per_sample"),
    ),
    Option(
        "raw_pass_gradient",
        bool,
        True,
        "gradient through the raw (clean) pass; False: its outputs are "
        "constants, a cheaper step",
        loss=False,
    ),
    Option(
        "saliency_pass",
        str,
        "separate",
        "where a saliency mixer (PuzzleMix) gets its saliency: separate (an "
        "extra pass in inference mode) or raw (SUMix's raw pass)",
        choices=("separate", "raw"),
        loss=False,
    ),
    Option(
        "regularizer_logits",
        str,
        "exp",
        "the form of the regulariser's logits: exp (z = exp(-x) / T, the "
        "authors' code) or negative (z = -x / T, the SUMix-JAX port)",
        choices=("exp", "negative"),
    ),
    Option(
        "regularizer_temperature",
        float,
        1.0,
        "the temperature T dividing the regulariser's logits, > 0",
        low=0.0,
    ),
)

_BY_NAME: Mapping[str, Option] = types.MappingProxyType(
    {option.name: option for option in OPTIONS}
)
#: Every option's name, in `OPTIONS`'s order.
NAMES: tuple[str, ...] = tuple(_BY_NAME)
#: The names of the options `sumix_loss` takes.
LOSS_OPTIONS: tuple[str, ...] = tuple(o.name for o in OPTIONS if o.loss)
#: Every option's default, by name (read-only).
DEFAULTS: Mapping[str, Any] = types.MappingProxyType(
    {option.name: option.default for option in OPTIONS}
)


def get_option(name: str) -> Option:
    """The `Option` called `name`.

    Raises:
        ValueError: no SUMix option has that name.
    """
    _check_names((name,))
    return _BY_NAME[name]


def _check_names(names: Any) -> None:
    unknown = [name for name in names if name not in _BY_NAME]
    if unknown:
        raise ValueError(
            f"Unknown SUMix option(s) {unknown}; expected among {list(NAMES)}."
        )


def check_options(**values: Any) -> dict[str, Any]:
    """Validate SUMix options given by name; return them normalised
    (numbers as floats), in the order given.

    Args:
        **values: options by name, each a value `Option.check` accepts.

    Returns:
        The options, validated.

    Raises:
        ValueError: a name that is no SUMix option (the message names it and
            lists the options), or a value out of range.
        TypeError: a value of the wrong type.
    """
    _check_names(values)
    return {name: _BY_NAME[name].check(value) for name, value in values.items()}


def config_fields() -> list[tuple[str, Any, dataclasses.Field]]:
    """One `dataclasses.make_dataclass` field per option, default None
    ("not given": the variant's value, else the option's default), with the
    option's help in the field's metadata (`"help"`, and `"choices"` for a
    `str` option): what `keras_sumix.training.TrainConfig` carries and
    `keras-sumix train` turns into flags."""
    return [
        (
            option.name,
            option.type | None,
            dataclasses.field(
                default=None,
                metadata={
                    "help": option.help
                    + (
                        "" if option.default is None else f" (default {option.default})"
                    ),
                    "choices": option.choices or None,
                },
            ),
        )
        for option in OPTIONS
    ]
