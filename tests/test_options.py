"""SUMix's options (`keras_sumix.options`) reach every interface: the loss,
the model and its config, the variants, `TrainConfig` and the command line.
A new option in `OPTIONS` is tested here without another edit."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import to_np

import keras_sumix as ks
from keras_sumix import cli, training
from keras_sumix.layers import PuzzleMix
from keras_sumix.models.variants import VARIANTS, resolve_options
from keras_sumix.options import (
    DEFAULTS,
    LOSS_OPTIONS,
    NAMES,
    OPTIONS,
    Option,
    check_options,
    get_option,
)
from keras_sumix.training import TrainConfig, build_model, prepare_run_dir

ROOT = Path(__file__).resolve().parent.parent
IDS = [option.name for option in OPTIONS]


def other(option: Option, base: object = None) -> object:
    """A valid value of `option` other than its default (and than `base`)."""
    avoid = (option.default, base)
    if option.type is bool:
        return not option.default
    if option.type is str:
        return next(c for c in option.choices if c not in avoid)
    return next(v for v in (3.0, 2.5) if v not in avoid)


def invalid(option: Option) -> object:
    """A value `option` refuses."""
    return {bool: "yes", str: "bogus"}.get(option.type, -1.0)


def loss_inputs(n: int = 4, c: int = 3) -> dict:
    rng = np.random.default_rng(0)
    unit = rng.random((n, c)).astype("float32")
    return {
        "labels": np.arange(n) % c,
        "raw_logits": rng.normal(size=(n, c)).astype("float32"),
        "raw_uncertainty": unit / np.linalg.norm(unit, axis=-1, keepdims=True),
        "mix_logits": rng.normal(size=(n, c)).astype("float32"),
        "mix_uncertainty": unit[::-1] / np.linalg.norm(unit, axis=-1, keepdims=True),
        "permutation": np.roll(np.arange(n), 1),
        "lam": np.linspace(0.2, 0.8, n).astype("float32"),
    }


def tiny_backbone() -> keras.Model:
    inputs = keras.Input((8, 8, 3))
    return keras.Model(inputs, keras.layers.Conv2D(4, 3, padding="same")(inputs))


def test_the_description_is_frozen_and_complete():
    assert NAMES == tuple(option.name for option in OPTIONS)
    assert len(set(NAMES)) == len(NAMES)
    with pytest.raises(dataclasses.FrozenInstanceError):
        OPTIONS[0].default = 1.0
    with pytest.raises(TypeError):
        DEFAULTS["gamma"] = 1.0
    for option in OPTIONS:
        assert option.help.strip() and "\n" not in option.help, option.name
        assert option.check(option.default) == option.default, option.name
        assert (option.type is str) == bool(option.choices), option.name
        assert get_option(option.name) is option


def test_sumix_loss_keywords_are_the_loss_options_at_their_defaults():
    keywords = {
        name: parameter.default
        for name, parameter in inspect.signature(ks.sumix_loss).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    assert tuple(keywords) == LOSS_OPTIONS
    assert keywords == {name: DEFAULTS[name] for name in LOSS_OPTIONS}


@pytest.mark.parametrize("option", OPTIONS, ids=IDS)
def test_a_loss_option_changes_the_loss_and_is_validated(option):
    if not option.loss:
        with pytest.raises(TypeError, match=option.name):
            ks.sumix_loss(**loss_inputs(), **{option.name: option.default})
        return
    # In the distance mode every loss option takes part.
    base = {"lambda_mode": "distance"}
    value = other(option, base.get(option.name))
    outputs = [
        {k: to_np(v) for k, v in ks.sumix_loss(**loss_inputs(), **kw).items()}
        for kw in (base, {**base, option.name: value})
    ]
    assert any(
        not np.allclose(outputs[0][key], outputs[1][key], atol=1e-7)
        for key in ("loss", "lam")
    ), option.name
    with pytest.raises((ValueError, TypeError), match=option.name):
        ks.sumix_loss(**loss_inputs(), **{option.name: invalid(option)})


@pytest.mark.parametrize("option", OPTIONS, ids=IDS)
def test_a_model_option_survives_get_config_and_from_config(option):
    value = other(option)
    # PuzzleMix takes a saliency: every option's value is valid with it.
    model = ks.SUMixModel(tiny_backbone(), 3, PuzzleMix(seed=0), **{option.name: value})
    assert getattr(model, option.name) == value
    config = model.get_config()
    assert {name: config[name] for name in NAMES} == {
        **DEFAULTS,
        option.name: value,
    }
    restored = ks.SUMixModel.from_config(config)
    assert getattr(restored, option.name) == value
    with pytest.raises((ValueError, TypeError), match=option.name):
        ks.SUMixModel(
            tiny_backbone(), 3, PuzzleMix(seed=0), **{option.name: invalid(option)}
        )


@pytest.mark.parametrize("option", OPTIONS, ids=IDS)
def test_train_config_holds_every_option(option):
    value = other(option)
    fields = {field.name: field for field in dataclasses.fields(TrainConfig)}
    assert fields[option.name].default is None  # None: the variant's
    assert fields[option.name].metadata["help"].startswith(option.help)
    config = TrainConfig(**{option.name: value})
    assert config.sumix_options() == {**DEFAULTS, option.name: value}
    with pytest.raises((ValueError, TypeError), match=option.name):
        TrainConfig(**{option.name: invalid(option)}).validate()


def _flag_argv(option: Option, value: object) -> list[str]:
    if option.type is bool:
        return [option.flag if value else "--no-" + option.flag[2:]]
    return [option.flag, str(value)]


@pytest.mark.parametrize("option", OPTIONS, ids=IDS)
def test_a_cli_flag_reaches_the_built_model(option, monkeypatch, tmp_path):
    value = other(option)
    ran = []
    monkeypatch.setattr(
        training,
        "train",
        lambda config, **kwargs: ran.append(config) or {"test_top1": 0.0},
    )
    argv = ["train", "--mixer", "puzzlemix", "--output-dir", str(tmp_path)]
    assert cli.main([*argv, *_flag_argv(option, value)]) == 0
    (config,) = ran
    assert getattr(config, option.name) == value
    model = build_model(config, 3, (8, 8, 3))
    assert getattr(model, option.name) == value
    # A value the option refuses: exit code 2 (from argparse, for a choice).
    if option.type is float:
        assert cli.main([*argv, f"{option.flag}=-1"]) == 2
    elif option.type is str:
        with pytest.raises(SystemExit) as exited:
            cli.main([*argv, option.flag, "bogus"])
        assert exited.value.code == 2
    assert len(ran) == 1  # neither ran


def test_every_variant_overrides_valid_options():
    for name, overrides in VARIANTS.items():
        assert check_options(**overrides) == dict(overrides), name
        assert all(DEFAULTS[key] is not None for key in overrides), name
        resolved = resolve_options(name)
        assert resolved == {**DEFAULTS, **overrides}


def test_an_unknown_option_raises_naming_it():
    for call in (
        lambda: check_options(gama=1.0),
        lambda: get_option("gama"),
        lambda: resolve_options("paper", gama=1.0),
        lambda: resolve_options("paper", gama=None),
        lambda: ks.SUMixModel(tiny_backbone(), 3, PuzzleMix(seed=0), gama=1.0),
    ):
        with pytest.raises(ValueError, match="gama"):
            call()


def _shown(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def test_the_docs_list_every_option_with_its_default():
    text = (ROOT / "docs" / "sumix.md").read_text()
    section = text[text.index("## Every option") :]
    for option in OPTIONS:
        row = re.search(rf"^\| `{option.name}` \| `([^`]*)`", section, re.MULTILINE)
        assert row, option.name
        assert row.group(1) == _shown(option.default), option.name


def test_a_run_saved_with_explicit_defaults_resumes(tmp_path):
    """A `config.json` that spells out the SUMix options (as one written
    before they defaulted to None) is the same run as one that leaves them
    to the variant; a different value is another run."""
    config = TrainConfig(output_dir=str(tmp_path))
    saved = {**dataclasses.asdict(config), **resolve_options("paper")}
    (tmp_path / "config.json").write_text(json.dumps(saved))
    (tmp_path / "checkpoint.keras").write_bytes(b"weights")
    assert prepare_run_dir(config) == "resume"
    with pytest.raises(FileExistsError, match="gamma"):
        prepare_run_dir(dataclasses.replace(config, gamma=0.25))
