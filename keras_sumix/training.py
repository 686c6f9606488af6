"""End-to-end training runs (what `keras-sumix train` and the examples do):
data, model, optimizer, checkpoints, history and results in one folder, with
resume."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from keras_sumix import data as data_module
from keras_sumix import models
from keras_sumix._validation import check_choice, check_int, check_number
from keras_sumix.callbacks import StopOnNaN, TrainingDiverged
from keras_sumix.data.directories import _tensorflow
from keras_sumix.layers import MIXERS, get_mixer
from keras_sumix.models.variants import resolve_options
from keras_sumix.recipes import RECIPES, paper_alpha, paper_gamma

DATASETS = ("occluded", "cifar100", "cub", "aircraft", "tiny_imagenet")
BACKBONES = (
    "small_cnn",
    "resnet18_cifar",
    "resnext50_cifar",
    "wide_resnet28_8",
    "resnet18",
    "resnext50_32x4d",
    "deit_small",
    "swin_tiny",
)
#: Vision-transformer backbones (their mixing alphas differ, `paper_alpha`).
TRANSFORMERS = ("deit_small", "swin_tiny")
PIPELINES = ("cifar", "tiny_imagenet", "fine_grained", "cifar_vit")
OPTIMIZERS = ("sgd", "adamw")
# AdamW leaves these out of weight decay, as the reference configs do: norm
# layers (gamma, beta), biases, the class token, the position embeddings
# (keras-hub's ViT names them "embeddings") and Swin's relative position
# bias. Keras matches the patterns against the variable *names*.
_NO_WEIGHT_DECAY = (
    "bias",
    "gamma",
    "beta",
    "class_token",
    "embeddings",
    "relative_position",
)


#: The `SUMixModel` options a `TrainConfig` carries (besides `variant`).
_SUMIX_OPTIONS = (
    "gamma",
    "lambda_mode",
    "regularizer",
    "semantic_scale",
    "distance_scale",
    "reduction",
    "raw_pass_gradient",
    "saliency_pass",
    "regularizer_logits",
    "regularizer_temperature",
)


@dataclass
class TrainConfig:
    """Everything a run needs; `from_recipe` fills it from a paper recipe.

    Attributes:
        dataset: one of `DATASETS`. data_dir: where the dataset lies
            (TFDS `data_dir` for cifar100 / cub without a local layout).
        backbone: one of `BACKBONES`. weights: local `.weights.h5` for it,
            or `"hub:<preset>"` for a keras-hub preset's backbone instead
            (a preset name, downloaded by keras-hub, or a local preset
            directory; see `keras_sumix.models.from_hub`).
        mixer: mixer name; alpha: its Beta concentration (None: the paper's
            for CNNs or for transformers, `keras_sumix.recipes.paper_alpha`).
        sumix: SUMixModel (True) or the MixupModel baseline (False).
        variant, gamma, lambda_mode, regularizer, reduction, semantic_scale,
        distance_scale, raw_pass_gradient, saliency_pass,
        regularizer_logits, regularizer_temperature: SUMixModel options
            (None: the variant's, `keras_sumix.models.variants`).
        pipeline: the `make_pipeline` recipe. image_size: output side.
        rand_augment: RandAugment on the training images
            (`make_pipeline(rand_augment=True)`).
        optimizer: `"sgd"` (with `momentum`) or `"adamw"` (decoupled weight
            decay, not applied to norms, biases, tokens and position
            embeddings). epochs, batch_size, learning_rate (cosine decay to
            0, after `warmup_epochs` of linear warm-up from 0), momentum,
            weight_decay, clipnorm (global gradient-norm clipping, None:
            none): optimisation. seed: everything random.
        limit: use only the first `limit` training and test examples
            (smoke runs). output_dir: checkpoints, history, results.
        median_of: report the median test top-1 of the last epochs (the
            paper's protocol: 10, or 5 on ImageNet).
    """

    dataset: str = "occluded"
    data_dir: str | None = None
    backbone: str = "small_cnn"
    weights: str | None = None
    mixer: str = "cutmix"
    alpha: float | None = None
    sumix: bool = True
    variant: str = "paper"
    gamma: float = 0.5
    lambda_mode: str | None = None
    regularizer: str | None = None
    reduction: str | None = None
    semantic_scale: float | None = None
    distance_scale: float | None = None
    raw_pass_gradient: bool | None = None
    saliency_pass: str = "separate"
    regularizer_logits: str | None = None
    regularizer_temperature: float = 1.0
    pipeline: str = "cifar"
    image_size: int | None = None
    rand_augment: bool = False
    optimizer: str = "sgd"
    epochs: int = 15
    batch_size: int = 64
    learning_rate: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: int = 0
    clipnorm: float | None = None
    seed: int = 0
    limit: int | None = None
    output_dir: str = "runs/run"
    median_of: int = 10

    @classmethod
    def from_recipe(cls, recipe: str, **overrides: Any) -> TrainConfig:
        """A config from one of `keras_sumix.recipes.RECIPES`, with
        overrides (None values are ignored). Unless `gamma` is given, it is
        the paper's for the recipe and mixer (appendix A.1,
        `keras_sumix.recipes.paper_gamma`; 0.5 where the paper gives none).
        """
        check_choice("recipe", recipe, tuple(RECIPES))
        values = {**RECIPES[recipe]}
        values.update({k: v for k, v in overrides.items() if v is not None})
        if overrides.get("gamma") is None:
            mixer = values.get("mixer", cls.mixer)
            values["gamma"] = paper_gamma(recipe, mixer, values.get("gamma", 0.5))
        return cls(**values)

    def sumix_options(self) -> dict[str, Any]:
        """The `SUMixModel` options of the config, its variant's filled in
        and validated (`keras_sumix.models.variants.resolve_options`)."""
        return resolve_options(
            self.variant, **{name: getattr(self, name) for name in _SUMIX_OPTIONS}
        )

    def validate(self) -> TrainConfig:
        """Check every field; raise a ValueError/TypeError naming it."""
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("backbone", self.backbone, BACKBONES)
        check_choice("mixer", self.mixer, tuple(MIXERS))
        check_choice("pipeline", self.pipeline, PIPELINES)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if not isinstance(self.rand_augment, bool):
            raise TypeError(
                "`rand_augment` must be a bool. Received: "
                f"rand_augment={self.rand_augment!r}."
            )
        self.sumix_options()
        check_number("learning_rate", self.learning_rate, low=0.0)
        check_number("momentum", self.momentum, low=0.0, high=1.0, include_low=True)
        check_number("weight_decay", self.weight_decay, low=0.0, include_low=True)
        check_int("epochs", self.epochs, 1)
        check_int("warmup_epochs", self.warmup_epochs, 0)
        if self.warmup_epochs >= self.epochs:
            raise ValueError(
                "`warmup_epochs` must be fewer than `epochs`. Received: "
                f"warmup_epochs={self.warmup_epochs}, epochs={self.epochs}."
            )
        if self.clipnorm is not None:
            check_number("clipnorm", self.clipnorm, low=0.0)
        check_int("batch_size", self.batch_size, 2)
        check_int("limit", self.limit, 2, allow_none=True)
        check_int("median_of", self.median_of, 1)
        if self.dataset in ("aircraft", "tiny_imagenet") and not self.data_dir:
            raise ValueError(
                f"`data_dir` is required for dataset={self.dataset!r} (its "
                "official directory layout)."
            )
        return self


def occluded_split(config: TrainConfig, split: str) -> Any:
    """The embedded `occluded` dataset's `"train"` or `"test"` split of a
    run (`OccludedObjects`, masks included), as training generates it."""
    check_choice("split", split, ("train", "test"))
    size = config.limit or 6000
    if split == "train":
        return data_module.occluded_objects(size, seed=config.seed)
    return data_module.occluded_objects(max(size // 3, 2), seed=config.seed + 1)


def _load_split(config: TrainConfig, split: str) -> tuple[Any, int]:
    """One unbatched split (`"train"` or `"test"`) as a `tf.data` dataset of
    `(image, label)`, and the class count."""
    tf = _tensorflow()

    training = split == "train"
    if config.dataset == "occluded":
        data = occluded_split(config, split)
        return (
            tf.data.Dataset.from_tensor_slices((data.images, data.labels)),
            data_module.NUM_CLASSES,
        )
    root = config.data_dir
    if config.dataset == "cifar100":
        ds = data_module.load_cifar100(split, data_dir=root)
        classes = 100
    elif config.dataset == "cub":
        layout = ("CUB_200_2011", "images.txt")
        if root and any((Path(root) / name).exists() for name in layout):
            ds, names = data_module.load_cub200_2011(root, split, shuffle=training)
            classes = len(names)
        else:
            ds = data_module.load_caltech_birds2011(split, data_dir=root)
            classes = 200
    elif config.dataset == "aircraft":
        ds, names = data_module.load_fgvc_aircraft(
            root, "trainval" if training else "test", shuffle=training
        )
        classes = len(names)
    else:
        ds, names = data_module.load_tiny_imagenet(
            root, "train" if training else "val", shuffle=training
        )
        classes = len(names)
    if config.limit:
        ds = ds.take(config.limit)
    return ds, classes


def load_test_data(config: TrainConfig) -> tuple[Any, int]:
    """The unbatched test split of a run (a `tf.data` dataset of
    `(image, label)`, `limit` applied) and its class count, exactly as
    `train` evaluates on it (before the pipeline)."""
    return _load_split(config, "test")


def _load(config: TrainConfig) -> tuple[Any, Any, int]:
    """Unbatched (train, test) `tf.data` datasets and the class count."""
    train, classes = _load_split(config, "train")
    test, _ = _load_split(config, "test")
    return train, test, classes


HUB_PREFIX = "hub:"


def build_backbone(config: TrainConfig, input_shape) -> keras.Model:
    """The backbone of a run: one of `BACKBONES` (random init or a local
    `.weights.h5`), or a keras-hub preset's backbone when `weights` is
    `"hub:<preset>"`: a preset name such as `"hub:resnet_18_imagenet"`,
    which keras-hub downloads from Kaggle, or a local preset directory
    (`keras_sumix.models.from_hub`; `config.backbone` is then only a label).
    keras-hub has no ResNeXt-50 preset: use `backbone="resnext50_32x4d"`
    with a local `.weights.h5`. The transformers (`deit_small`,
    `swin_tiny`) are built at the pipeline's image size with their default
    patch (and window) sizes."""
    weights = config.weights
    if weights and str(weights).startswith(HUB_PREFIX):
        preset = str(weights)[len(HUB_PREFIX) :]
        return models.from_hub(preset)
    builder = getattr(models, config.backbone)
    if config.backbone == "small_cnn":
        if weights:
            raise ValueError("`weights` is not supported for backbone='small_cnn'.")
        return builder(input_shape=tuple(input_shape))
    if config.backbone in TRANSFORMERS:
        return builder(image_size=tuple(input_shape[:2]), weights=weights)
    return builder(input_shape=tuple(input_shape), weights=weights)


def build_model(config: TrainConfig, num_classes: int, input_shape) -> keras.Model:
    """The MixupModel / SUMixModel a config describes."""
    backbone = build_backbone(config, input_shape)
    if _is_hub(config):  # a keras-hub transformer outputs (N, L, D) tokens
        transformer = len(backbone.output_shape) == 3
    else:
        transformer = config.backbone in TRANSFORMERS
    alpha = config.alpha
    if alpha is None:
        alpha = paper_alpha(config.mixer, transformer=transformer)
    mixer_kwargs = {"alpha": alpha, "seed": config.seed}
    if config.mixer == "resizemix":
        mixer_kwargs["use_alpha"] = True
    mixer = get_mixer(config.mixer, **mixer_kwargs)
    if not config.sumix:
        return models.MixupModel(backbone, num_classes, mixer)
    return models.SUMixModel(
        backbone, num_classes, mixer, variant=config.variant, **config.sumix_options()
    )


def _is_hub(config: TrainConfig) -> bool:
    return bool(config.weights) and str(config.weights).startswith(HUB_PREFIX)


def build_optimizer(config: TrainConfig, steps_per_epoch: int) -> Any:
    """The run's optimizer: SGD with momentum or AdamW, on a cosine decay to
    0 over the run (after a linear warm-up of `warmup_epochs` from 0), with
    global gradient-norm clipping at `clipnorm` when it is set."""
    steps_per_epoch = max(int(steps_per_epoch), 1)
    warmup = steps_per_epoch * config.warmup_epochs
    total = max(steps_per_epoch * config.epochs, 1)
    if warmup:
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0,
            total - warmup,
            warmup_target=config.learning_rate,
            warmup_steps=warmup,
        )
    else:
        schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, total)
    common = {"weight_decay": config.weight_decay, "global_clipnorm": config.clipnorm}
    if config.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(schedule, epsilon=1e-8, **common)
        optimizer.exclude_from_weight_decay(var_names=list(_NO_WEIGHT_DECAY))
        return optimizer
    return keras.optimizers.SGD(schedule, momentum=config.momentum, **common)


class _HistoryFile(keras.callbacks.Callback):
    """Appends each epoch's logs to `history.json` (kept across resumes)."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        history = json.loads(self.path.read_text()) if self.path.exists() else []
        history = [row for row in history if row["epoch"] < epoch]
        row = {"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}}
        self.path.write_text(json.dumps([*history, row], indent=1))


def train(
    config: TrainConfig,
    verbose: int | str = "auto",
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> dict[str, Any]:
    """Train (or resume) a run and write its folder.

    `output_dir` receives `config.json`, `checkpoint.keras` (every epoch),
    `history.json` (one row per epoch, test metrics included), `backup/`
    (Keras `BackupAndRestore`: rerunning the same command resumes an
    interrupted run) and, at the end, `results.json`.

    Resume is exact: the backup is taken at every epoch end and holds the
    weights, the optimizer (momentum, step count, hence the learning-rate
    schedule) and the mixer's random state; a run interrupted during epoch
    `k` restarts epoch `k` from its first batch, and the pipeline's shuffle
    and augmentation of epoch `k` depend only on `(seed, k)`
    (`make_pipeline(epoch=...)`). A resumed run thus ends with the weights of
    an uninterrupted one (to float rounding; same backend and machine).

    If the training loss becomes NaN or infinite, training stops at once:
    `results.json` gets `"status": "diverged"` and the `"error"`, the
    checkpoint and the backup keep the last finite epoch, and
    `TrainingDiverged` (a `FloatingPointError`) is raised; `keras-sumix
    train` prints the error and exits with status 1. A finished run has
    `"status": "completed"`.

    Args:
        config: the run.
        verbose: `fit` verbosity (Keras progress bars by default).
        callbacks: extra Keras callbacks, run after the run's own ones.

    Returns:
        The results: final test top-1 and loss, the median test top-1 of the
        last `median_of` epochs, the backend and the config.

    Raises:
        TrainingDiverged: the training loss became NaN or infinite.
    """
    config.validate()
    keras.utils.set_random_seed(config.seed)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=1))

    tf = _tensorflow()
    train_raw, test_raw, num_classes = _load(config)
    pipeline = {
        "recipe": config.pipeline,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "image_size": config.image_size,
    }
    # Each epoch's order and augmentation depend on (seed, epoch) only, so a
    # resumed run replays exactly the epochs it has not finished (RandAugment
    # excepted: its random state restarts with the process).
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    train_ds = data_module.make_pipeline(
        train_raw,
        training=True,
        epoch=epoch,
        rand_augment=config.rand_augment,
        **pipeline,
    )
    test_ds = data_module.make_pipeline(test_raw, training=False, **pipeline)
    input_shape = train_ds.element_spec[0].shape[1:]
    model = build_model(config, num_classes, input_shape)
    model.build((None, *input_shape))  # BackupAndRestore needs built weights
    steps = int(train_ds.cardinality())
    if steps < 0:  # unknown cardinality: count the batches once
        steps = sum(1 for _ in train_ds)
    if model.mixer.needs_features:  # AutoMix's momentum schedule: the run
        model.mixer.momentum_steps = steps * config.epochs
    model.compile(optimizer=build_optimizer(config, steps), metrics=["accuracy"])
    # The history row is written before the backup marks the epoch done. The
    # backup is taken at epoch ends only: Keras restarts an interrupted epoch
    # from its first batch, so a mid-epoch backup would replay batches on
    # top of weights that had already seen them.
    run_callbacks = [
        keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda index, logs: epoch.assign(index)
        ),
        _HistoryFile(out / "history.json"),
        keras.callbacks.BackupAndRestore(str(out / "backup"), save_freq="epoch"),
        keras.callbacks.ModelCheckpoint(str(out / "checkpoint.keras")),
        StopOnNaN(),
        *callbacks,
    ]
    try:
        model.fit(
            train_ds,
            validation_data=test_ds,
            epochs=config.epochs,
            callbacks=run_callbacks,
            verbose=verbose,
            shuffle=False,  # the pipeline shuffles (seeded, per epoch)
        )
    except TrainingDiverged as error:
        results = {
            "backend": keras.backend.backend(),
            "status": "diverged",
            "error": str(error),
            "epochs_run": error.epoch,  # the epochs finished before it
            "config": dataclasses.asdict(config),
        }
        (out / "results.json").write_text(json.dumps(results, indent=1))
        raise
    history = json.loads((out / "history.json").read_text())
    test_top1 = [row["val_accuracy"] for row in history if "val_accuracy" in row]
    final = model.evaluate(test_ds, verbose=0, return_dict=True)
    results = {
        "backend": keras.backend.backend(),
        "status": "completed",
        "test_top1": float(final["accuracy"]),
        "test_loss": float(final["loss"]),
        f"median_top1_last_{config.median_of}": float(
            np.median(test_top1[-config.median_of :])
        )
        if test_top1
        else math.nan,
        "epochs_run": len(history),
        "config": dataclasses.asdict(config),
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))
    return results
