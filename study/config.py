"""The study's budget: data settings, training schedule and evaluation
settings shared by every run (`StudyConfig`), with the full and the quick
presets."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keras_sumix._validation import check_choice, check_int, check_number

#: The repository root: the study runs from a clone (it is not installed), and
#: its default output folders are under it, wherever it is run from.
ROOT = Path(__file__).resolve().parents[1]
#: Where the study and the demo write by default.
RESULTS = ROOT / "benchmarks" / "results"


@dataclass(frozen=True)
class StudyConfig:
    """Everything a study run shares, apart from what the grid varies.

    The datasets are fixed (one data seed); a run's seed drives the weight
    initialisation, the shuffling and the mixer, so the spread between seeds
    is the spread of training, not of the data.

    Attributes:
        occluded_train: training images of the embedded occluded-objects
            data. occluded_test: its test images (top-1, occlusion).
        min_scale, max_scale, clutter: `occluded_objects` settings (object
            half-size range as a share of the side; distractor blobs).
        fidelity_samples: held-out embedded images mixed to measure lambda
            fidelity (the same mixes for every run of one mixer).
        digits_test_fraction: share of each digit held out for test
            (`load_digits_split`). digits_limit: use only the first images
            of each digits split (None: all; the quick grid).
        widths: filters of the `small_cnn` stages.
        epochs: training epochs. batch_size: the default batch (part E
            varies it). learning_rate: SGD peak LR, cosine-decayed to 0 over
            all steps. momentum: Nesterov momentum. weight_decay: SGD decay.
        alpha: Beta concentration of every mixer (None: the paper's per
            mixer, `keras_sumix.recipes.PAPER_ALPHA`).
        median_last: epochs the median top-1 is taken over (test top-1 is
            measured after each of them).
        eval_every: test top-1 is also measured every `eval_every` epochs
            before those, for the learning curve.
        occlusion_ratios: masking ratios of the occlusion protocol (a 4x4
            grid of 8x8 cells on 32x32 images, masked to 0).
        seeds: the seeds of every cell.
        data_seed: seed of the datasets and held-out mixes.
        quick: use the quick grid (a few runs covering every code path).
        run_eagerly: train without compiling the train step (the quick
            grid: its handful of steps run faster eagerly than the 10 s it
            takes TensorFlow to trace a SUMix step; the compiled steps are
            the models' own tests' business).
    """

    occluded_train: int = 800
    occluded_test: int = 1000
    min_scale: float = 0.08
    max_scale: float = 0.16
    clutter: int = 12
    fidelity_samples: int = 512
    digits_test_fraction: float = 0.8
    digits_limit: int | None = None
    widths: tuple[int, ...] = (16, 32, 64)
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    alpha: float | None = 1.0
    median_last: int = 5
    eval_every: int = 5
    occlusion_ratios: tuple[float, ...] = (0.25, 0.5)
    seeds: tuple[int, ...] = (0, 1, 2)
    data_seed: int = 0
    quick: bool = False
    run_eagerly: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> StudyConfig:
        """Check every field; raise a ValueError/TypeError naming it.

        Returns:
            The config itself.
        """
        check_int("occluded_train", self.occluded_train, 4)
        check_int("occluded_test", self.occluded_test, 2)
        check_int("fidelity_samples", self.fidelity_samples, 2)
        check_int("clutter", self.clutter, 0)
        if not 0 < self.min_scale <= self.max_scale < 0.5:
            raise ValueError(
                "Need 0 < min_scale <= max_scale < 0.5. Received: "
                f"min_scale={self.min_scale!r}, max_scale={self.max_scale!r}."
            )
        check_number(
            "digits_test_fraction",
            self.digits_test_fraction,
            0.0,
            1.0,
            include_high=False,
        )
        check_int("digits_limit", self.digits_limit, 4, allow_none=True)
        if not self.widths:
            raise ValueError("`widths` must name at least one stage.")
        for width in self.widths:
            check_int("widths", width, 1)
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 2)
        check_number("learning_rate", self.learning_rate, low=0.0)
        check_number("momentum", self.momentum, 0.0, 1.0, include_low=True)
        check_number("weight_decay", self.weight_decay, low=0.0, include_low=True)
        if self.alpha is not None:
            check_number("alpha", self.alpha, low=0.0)
        check_int("median_last", self.median_last, 1)
        check_int("eval_every", self.eval_every, 1)
        if not self.occlusion_ratios:
            raise ValueError("`occlusion_ratios` must hold at least one ratio.")
        for ratio in self.occlusion_ratios:
            check_number("occlusion_ratios", ratio, 0.0, 1.0, include_low=True)
        object.__setattr__(self, "seeds", check_seeds(self.seeds))
        check_int("data_seed", self.data_seed, 0)
        for name in ("quick", "run_eagerly"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise TypeError(f"`{name}` must be a bool. Received: {name}={value!r}.")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (tuples as lists)."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }

    def signature(self) -> str:
        """A short hash of every setting that changes a run's result (all
        fields but `seeds`): runs recorded under another signature are
        neither skipped nor summarised."""
        fields = {k: v for k, v in self.to_dict().items() if k != "seeds"}
        text = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class ViTSettings:
    """The small vision transformer of the study's part V, and its optimizer.

    Kept apart from `StudyConfig`, so that the CNN runs' `signature` does not
    depend on it; each ViT run records these settings and a run recorded
    with other settings is neither skipped nor summarised.

    The network is keras-hub's `ViTBackbone`, the architecture of
    `keras_sumix.models.deit_small`, shrunk to the 32x32 embedded images
    (`study.runner.study_vit`). It is trained as the paper trains
    its transformers (Table 3, `keras_sumix.training`'s `cifar100-deit-s`
    recipe): AdamW, a linear warm-up, cosine decay to 0 and global gradient
    clipping, not the CNN's SGD.

    Attributes:
        patch_size: patch side (4: 8x8 = 64 patches and a class token).
        num_layers: transformer layers. num_heads: attention heads.
        hidden_dim: token width (the feature dimension). mlp_dim: MLP width.
        pooling: the features: `"class_token"` (ViT/DeiT's) or `"mean"` of
            the patch tokens (no class token).
        learning_rate: AdamW peak learning rate (after the warm-up).
        weight_decay: AdamW decoupled weight decay (not on biases, norms, the
            class token or the position embeddings).
        warmup_epochs: epochs of linear warm-up from 0.
        clipnorm: global gradient-norm clip (None: none).
    """

    patch_size: int = 4
    num_layers: int = 4
    num_heads: int = 4
    hidden_dim: int = 64
    mlp_dim: int = 128
    pooling: str = "class_token"
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 4
    clipnorm: float | None = 5.0

    def __post_init__(self) -> None:
        for name in (
            "patch_size",
            "num_layers",
            "num_heads",
            "hidden_dim",
            "mlp_dim",
        ):
            check_int(name, getattr(self, name), 1)
        check_int("warmup_epochs", self.warmup_epochs, 0)
        check_choice("pooling", self.pooling, ("class_token", "mean"))
        if self.hidden_dim % self.num_heads:
            raise ValueError(
                "`hidden_dim` must be divisible by `num_heads`. Received: "
                f"hidden_dim={self.hidden_dim}, num_heads={self.num_heads}."
            )
        check_number("learning_rate", self.learning_rate, low=0.0)
        check_number("weight_decay", self.weight_decay, low=0.0, include_low=True)
        if self.clipnorm is not None:
            check_number("clipnorm", self.clipnorm, low=0.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (what a ViT run records)."""
        return dataclasses.asdict(self)


#: The ViT of part V.
STUDY_VIT = ViTSettings()

#: What `FineTuneSettings.pretrain` may set: `pretrain_backbone`'s settings.
PRETRAIN_SETTINGS = (
    "image_size",
    "num_images",
    "epochs",
    "batch_size",
    "learning_rate",
    "seed",
)


@dataclass(frozen=True)
class FineTuneSettings:
    """The fine-grained data of part W and the pretrained start fine-tuned on
    it (the cells with `dataset="fine_grained"`, `backbone="pretrained"`).

    Kept apart from `StudyConfig`, as `ViTSettings` is: each such run
    records these settings, and a run recorded with other settings is
    neither skipped nor summarised.

    The data are `keras_sumix.data.fine_grained_objects` (64 classes that
    differ in the body's pattern, the head's and the tail's colour, with the
    object masks). The start is `keras_sumix.models.pretrain_backbone` (a
    small keras-hub ResNet pretrained on `occluded_objects`, cached), loaded
    with `from_hub` from its preset directory, and fine-tuned as notebook 03
    fine-tunes it: the images fed in [0, 1], Adam at a constant learning
    rate, batch 32 (the cells'), the mixers at the paper's alpha.

    Attributes:
        image_size: side of the fine-grained images.
        train_images, test_images: training and test images (data seeds
            `data_seed` and `data_seed + 1`).
        fidelity_samples: held-out images mixed to measure lambda fidelity
            (data seed `data_seed + 2`).
        clutter: distractor blobs per image.
        pretrain: `pretrain_backbone` keyword arguments, as `(name, value)`
            pairs (names in `PRETRAIN_SETTINGS`; empty: its defaults, the
            cached preset the notebook uses).
        learning_rate: Adam's learning rate, constant.
        alpha: Beta concentration of the mixers (None: the paper's per
            mixer, `keras_sumix.recipes.PAPER_ALPHA`: 0.2 for CutMix and
            FMix, the notebook's).
    """

    image_size: int = 64
    train_images: int = 1024
    test_images: int = 512
    fidelity_samples: int = 512
    clutter: int = 10
    pretrain: tuple[tuple[str, Any], ...] = ()
    learning_rate: float = 3e-4
    alpha: float | None = None

    def __post_init__(self) -> None:
        check_int("image_size", self.image_size, 32)
        check_int("train_images", self.train_images, 2)
        check_int("test_images", self.test_images, 2)
        check_int("fidelity_samples", self.fidelity_samples, 2)
        check_int("clutter", self.clutter, 0)
        for name, _ in self.pretrain:
            check_choice("pretrain", name, PRETRAIN_SETTINGS)
        check_number("learning_rate", self.learning_rate, low=0.0)
        if self.alpha is not None:
            check_number("alpha", self.alpha, low=0.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (what a fine-tuning run records)."""
        return {**dataclasses.asdict(self), "pretrain": dict(self.pretrain)}


#: Part W's data and start.
STUDY_FINE_TUNE = FineTuneSettings()
#: The quick grid's: a few images at 32 px, from a backbone pretrained on 16
#: images for one epoch (a second, cached apart from the default preset).
QUICK_FINE_TUNE = FineTuneSettings(
    image_size=32,
    train_images=16,
    test_images=16,
    fidelity_samples=16,
    pretrain=(("image_size", 32), ("num_images", 16), ("epochs", 1), ("batch_size", 8)),
)


def fine_tune_settings(config: StudyConfig) -> FineTuneSettings:
    """Part W's settings for a study config: `QUICK_FINE_TUNE` for the quick
    grid, else `STUDY_FINE_TUNE`.

    Args:
        config: the study's config.

    Returns:
        The settings.
    """
    return QUICK_FINE_TUNE if config.quick else STUDY_FINE_TUNE


def check_seeds(seeds: Any) -> tuple[int, ...]:
    """Validate a non-empty sequence of distinct non-negative integer seeds.

    Args:
        seeds: the seeds.

    Returns:
        The seeds as a tuple of ints.
    """
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise TypeError(
            f"`seeds` must be a sequence of integers. Received: seeds={seeds!r}."
        )
    seeds = tuple(check_int("seeds", seed, 0) for seed in seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(
            f"`seeds` must hold at least one seed, without repeats. Received: "
            f"seeds={seeds!r}."
        )
    return seeds


#: The full study (about 2 h 15 min on a 2-core CPU, TensorFlow: parts A-E
#: about 75 minutes, part F (PuzzleMix) 22, part S 22, part V about 15).
FULL = StudyConfig()

#: The quick grid the tests run: tiny data, two epochs, one seed.
QUICK = StudyConfig(
    occluded_train=96,
    occluded_test=64,
    fidelity_samples=64,
    digits_limit=96,
    epochs=2,
    batch_size=32,
    median_last=2,
    seeds=(0,),
    quick=True,
    run_eagerly=True,
)
