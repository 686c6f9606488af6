"""`SUMixModel(variant=...)`: the named option sets, on every backend, and
their path through `TrainConfig` and `keras-sumix train`."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
from conftest import to_np

import keras_sumix as ks
from keras_sumix import cli
from keras_sumix.layers import CutMix
from keras_sumix.models.variants import (
    DEFAULT_VARIANT,
    VARIANTS,
    resolve_options,
)
from keras_sumix.options import DEFAULTS, NAMES
from keras_sumix.training import TrainConfig, build_model


def backbone(seed=0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    return keras.Model(inputs, keras.layers.Activation("relu")(x))


def data(n=24, classes=4):
    rng = np.random.default_rng(0)
    return rng.random((n, 16, 16, 3), dtype="float32"), np.arange(n) % classes


def model_options(model) -> dict:
    return {name: getattr(model, name) for name in NAMES}


def variant_options(variant: str) -> dict:
    """Every option of a variant: the defaults, with its overrides."""
    return {**DEFAULTS, **VARIANTS[variant]}


def test_paper_is_the_default_and_overrides_nothing():
    assert DEFAULT_VARIANT == "paper"
    assert dict(VARIANTS["paper"]) == {}
    assert model_options(ks.SUMixModel(backbone(), 4, CutMix(seed=0))) == dict(DEFAULTS)
    # The published method is what sumix_loss computes with no options.
    paper = variant_options("paper")
    assert (paper["lambda_mode"], paper["reduction"]) == ("reference", "reference")
    assert (paper["regularizer"], paper["regularizer_logits"]) == ("both", "exp")
    assert paper["raw_pass_gradient"] is True
    assert dict(VARIANTS["recommended"]) == {
        "lambda_mode": "distance",
        "reduction": "per_sample",
        "raw_pass_gradient": False,
    }


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_options_land_on_the_model(variant):
    model = ks.SUMixModel(backbone(), 4, CutMix(seed=0), variant=variant)
    assert model.variant == variant
    assert model_options(model) == variant_options(variant)
    assert model.get_config()["variant"] == variant


def test_an_explicit_option_wins_over_the_variant():
    model = ks.SUMixModel(
        backbone(),
        4,
        CutMix(seed=0),
        variant="recommended",
        reduction="reference",
        raw_pass_gradient=not VARIANTS["recommended"]["raw_pass_gradient"],
    )
    assert model.reduction == "reference"
    assert model.raw_pass_gradient is not VARIANTS["recommended"]["raw_pass_gradient"]
    assert model.lambda_mode == VARIANTS["recommended"]["lambda_mode"]


def test_recommended_trains_exactly_as_its_options_spelled_out():
    """The variant is a name for options, nothing more: a compiled fit with
    `variant="recommended"` equals one with its options given explicitly to
    the paper variant (same seeds), to the last bit of every logged value."""
    x, y = data()
    histories = []
    for kwargs in (
        {"variant": "recommended"},
        {"variant": "paper", **VARIANTS["recommended"]},
    ):
        model = ks.SUMixModel(backbone(), 4, CutMix(seed=3), **kwargs)
        model.compile(optimizer=keras.optimizers.SGD(0.05))
        history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        histories.append(history.history)
    assert histories[0] == histories[1]
    assert histories[0]["lam_sumix"] != histories[0]["lam_area"]  # it corrects


def test_variant_survives_save_and_load(tmp_path):
    x, y = data()
    model = ks.SUMixModel(
        backbone(), 4, CutMix(seed=0), variant="recommended", gamma=0.2
    )
    model.compile(optimizer="sgd")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.variant == "recommended" and loaded.gamma == 0.2
    assert model_options(loaded) == {**variant_options("recommended"), "gamma": 0.2}
    np.testing.assert_array_equal(
        to_np(loaded.predict(x, verbose=0)), to_np(model.predict(x, verbose=0))
    )


def test_from_classifier_takes_the_variant():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(backbone()(inputs))
    classifier = keras.Model(inputs, keras.layers.Dense(4)(x))
    model = ks.SUMixModel.from_classifier(
        classifier, CutMix(seed=0), variant="recommended"
    )
    assert model.variant == "recommended"
    assert model_options(model) == variant_options("recommended")


def test_bad_variant_and_options_raise_naming_them():
    with pytest.raises(ValueError, match="`variant` must be one of"):
        ks.SUMixModel(backbone(), 4, CutMix(seed=0), variant="best")
    with pytest.raises(ValueError, match="`variant` must be one of"):
        ks.SUMixModel(backbone(), 4, CutMix(seed=0), variant=None)
    with pytest.raises(TypeError, match="raw_pass_gradient"):
        ks.SUMixModel(backbone(), 4, CutMix(seed=0), raw_pass_gradient="no")
    with pytest.raises(ValueError, match="lambda_mode"):
        ks.SUMixModel(
            backbone(), 4, CutMix(seed=0), variant="recommended", lambda_mode="prose"
        )
    with pytest.raises(ValueError, match="lamda_mode"):
        resolve_options("paper", lamda_mode="distance")
    with pytest.raises(ValueError, match="lamda_mode"):
        ks.SUMixModel(backbone(), 4, CutMix(seed=0), lamda_mode="distance")


def test_train_config_carries_the_variant():
    config = TrainConfig(variant="recommended", reduction="reference")
    options = config.sumix_options()
    assert options["lambda_mode"] == VARIANTS["recommended"]["lambda_mode"]
    assert options["reduction"] == "reference"
    model = build_model(config, 4, (16, 16, 3))
    assert model.variant == "recommended" and model.reduction == "reference"
    assert model.lambda_mode == VARIANTS["recommended"]["lambda_mode"]
    with pytest.raises(ValueError, match="`variant` must be one of"):
        TrainConfig(variant="fast").validate()
    with pytest.raises(ValueError, match="regularizer_logits"):
        TrainConfig(regularizer_logits="log").validate()


def test_cli_train_parses_the_variant_and_the_sumix_options():
    args = cli.build_parser().parse_args(
        [
            "train",
            "--variant",
            "recommended",
            "--no-raw-pass-gradient",
            "--regularizer-logits",
            "negative",
            "--regularizer-temperature",
            "0.5",
            "--saliency-pass",
            "raw",
        ]
    )
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for name in ("variant", "raw_pass_gradient", "regularizer_logits"):
        assert name in names and name in vars(args)
    assert args.variant == "recommended" and args.raw_pass_gradient is False
    assert args.regularizer_logits == "negative"
    assert args.regularizer_temperature == 0.5 and args.saliency_pass == "raw"
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["train", "--variant", "best"])
