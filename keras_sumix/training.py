"""End-to-end training runs (what `keras-sumix train` and the examples do):
data, model, optimizer, checkpoints, history and results in one folder, with
resume; and their evaluation (`evaluate_run`, what `keras-sumix evaluate`
does)."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
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
from keras_sumix.data.common import require_tensorflow
from keras_sumix.data.pipeline_specs import PIPELINES, pipeline_normalization
from keras_sumix.layers import MIXERS, get_mixer
from keras_sumix.layers.registry import mixer_class
from keras_sumix.models import transmix
from keras_sumix.models.transmix import LABEL_LAMS
from keras_sumix.models.variants import DEFAULT_VARIANT, VARIANTS, resolve_options
from keras_sumix.options import NAMES, config_fields
from keras_sumix.recipes import RECIPES, paper_alpha, paper_gamma

DATASETS = ("occluded", "cifar100", "cub", "aircraft", "tiny_imagenet", "folder")
#: The image side of `dataset="folder"` under the `"cifar"` pipeline when
#: `image_size` is not given (the images of a folder may differ in size; the
#: resize pipelines have their own default side).
FOLDER_IMAGE_SIZE = 32
#: What `train` writes in `output_dir` (and `overwrite=True` removes).
RUN_FILES = (
    "config.json",
    "checkpoint.keras",
    "history.json",
    "results.json",
    "evaluation.json",
    "backup",
)
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
OPTIMIZERS = ("sgd", "adamw")
# AdamW leaves these out of weight decay, as the reference configs do: norm
# layers (gamma, beta), biases, the class token, the position embeddings
# (keras-hub's ViT names them "embeddings") and Swin's relative position
# bias. Keras matches the patterns against the variable *names*.
NO_WEIGHT_DECAY = (
    "bias",
    "gamma",
    "beta",
    "class_token",
    "embeddings",
    "relative_position",
)


def _flag(default: Any, help: str, **argparse: Any) -> Any:
    """A `TrainConfig` field: its default, and in its metadata the one-line
    help of its `keras-sumix train` flag (and, for `argparse`, `choices`, a
    `type` or extra `aliases`)."""
    return dataclasses.field(default=default, metadata={"help": help, **argparse})


#: SUMix's options as dataclass fields (`keras_sumix.options.config_fields`):
#: `TrainConfig` inherits them, so a new option needs no edit here.
_SUMixOptionFields = dataclasses.make_dataclass("_SUMixOptionFields", config_fields())


@dataclass
class TrainConfig(_SUMixOptionFields):
    """Everything a run needs; `from_recipe` fills it from a paper recipe.

    Each field's one-line help is in its metadata (`dataclasses.fields`):
    `keras-sumix train` makes one flag of each, `--name-with-dashes`.

    Attributes:
        dataset: one of `DATASETS`; `"folder"` is a folder of your own
            images, one subfolder per class
            (`keras_sumix.data.load_image_folder`). data_dir: where the
            dataset lies (TFDS `data_dir` for cifar100 / cub without a local
            layout); required for folder, aircraft and tiny_imagenet, and
            refused for occluded (embedded, nothing to read).
        validation_fraction: (`dataset="folder"` without `train/` and
            `val/` subfolders) the share of each class held out for testing
            (None: 0.2); refused for any other dataset or layout.
        backbone: one of `BACKBONES`. weights: local `.weights.h5` for it,
            or `"hub:<preset>"` for a keras-hub preset's backbone instead
            (a preset name, downloaded by keras-hub, or a local preset
            directory; see `keras_sumix.models.from_hub`).
        mixer: mixer name; alpha: its Beta concentration (None: the paper's
            for CNNs or for transformers, `keras_sumix.recipes.paper_alpha`).
        sumix: SUMixModel (True) or the MixupModel baseline (False).
        variant: the SUMix variant (`keras_sumix.models.variants`).
        label_lam: `"area"` or `"attention"` (TransMix), the models'
            `label_lam`; `"attention"` needs `backbone="deit_small"` or a
            keras-hub ViT/DeiT preset, and a mixer with a pixel mask.
        decouple_weight: DecoupleMix's weight, the models'
            `decouple_weight` (0: off).
        gamma, lambda_mode, ...: one field per SUMix option
            (`keras_sumix.options.OPTIONS`, which gives each its default);
            None: the variant's value, else the option's default.
        pipeline: the `make_pipeline` recipe. image_size: output side (for
            `dataset="folder"` under the `"cifar"` pipeline, None means
            `FOLDER_IMAGE_SIZE`: a folder's images may differ in size).
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

    dataset: str = _flag(
        "occluded",
        "occluded (embedded, the default without --data-dir), a paper "
        "dataset, or folder (the default with --data-dir): your own images, "
        "one subfolder per class",
        choices=DATASETS,
    )
    data_dir: str | None = _flag(
        None,
        "where the dataset lies: for --dataset folder, a folder of class "
        "subfolders (or of train/ and val/ folders of them); a TFDS data_dir "
        "or an official layout for the paper datasets",
    )
    validation_fraction: float | None = _flag(
        None,
        "--dataset folder without train/ and val/ folders: share of each "
        "class held out for testing (default 0.2)",
    )
    backbone: str = _flag("small_cnn", "the network", choices=BACKBONES)
    weights: str | None = _flag(
        None,
        "local .weights.h5 file for the backbone, or hub:PRESET for a "
        "keras-hub preset's backbone (a name such as hub:resnet_18_imagenet, "
        "downloaded from Kaggle, or a local preset directory, hub:DIR)",
    )
    mixer: str = _flag(
        "cutmix",
        "the mixing method (any case: CutMix or cutmix)",
        choices=tuple(MIXERS),
        type=str.lower,
    )
    alpha: float | None = _flag(
        None, "Beta concentration (default: the paper's for the mixer)"
    )
    sumix: bool = _flag(
        True, "SUMixModel (default) or the MixupModel baseline (--no-sumix)"
    )
    variant: str = _flag(
        DEFAULT_VARIANT,
        "SUMix as published (paper, the default) or the variant the study "
        "supports (recommended); the SUMix options override it",
        choices=tuple(VARIANTS),
    )
    label_lam: str = _flag(
        "area",
        "the lam the labels are mixed with: the pasted area, or attention "
        "(TransMix: with the class token's attention; deit_small or a hub "
        "ViT/DeiT, a mixer with a pixel mask)",
        choices=LABEL_LAMS,
    )
    decouple_weight: float = _flag(
        0.0,
        "weight of DecoupleMix's decoupled regulariser, >= 0 (0: off; the "
        "reference's configs: 0.1), for MixupModel and SUMixModel",
    )
    pipeline: str = _flag(
        "cifar", "augmentation pipeline (make_pipeline)", choices=PIPELINES
    )
    image_size: int | None = _flag(
        None,
        "image side the pipeline resizes to (--dataset folder: 32 under the "
        "cifar pipeline)",
    )
    rand_augment: bool = _flag(
        False, "RandAugment on the training images (the ViT recipes' default)"
    )
    optimizer: str = _flag("sgd", "sgd or adamw", choices=OPTIMIZERS)
    epochs: int = _flag(15, "training epochs")
    batch_size: int = _flag(64, "batch size")
    learning_rate: float = _flag(
        0.05, "peak learning rate (cosine decay to 0)", aliases=("--lr",)
    )
    momentum: float = _flag(0.9, "SGD momentum")
    weight_decay: float = _flag(5e-4, "weight decay")
    warmup_epochs: int = _flag(0, "epochs of linear learning-rate warm-up")
    clipnorm: float | None = _flag(None, "global gradient-norm clip")
    seed: int = _flag(0, "seed of everything random")
    limit: int | None = _flag(None, "first N training and test examples only")
    output_dir: str = _flag(
        "runs/run",
        "run folder: config, checkpoint, history, results; an interrupted "
        "run there is resumed, a finished one or another config's refused",
    )
    median_of: int = _flag(10, "report the median test top-1 of the last N epochs")

    @classmethod
    def from_recipe(cls, recipe: str, **overrides: Any) -> TrainConfig:
        """A config from one of `keras_sumix.recipes.RECIPES`, with
        overrides (None values are ignored). Unless `gamma` is given, it is
        the paper's for the recipe and mixer (appendix A.1,
        `keras_sumix.recipes.paper_gamma`; the option's default where the
        paper gives none).
        """
        check_choice("recipe", recipe, tuple(RECIPES))
        values = {**RECIPES[recipe]}
        values.update({k: v for k, v in overrides.items() if v is not None})
        if overrides.get("gamma") is None:
            values["gamma"] = paper_gamma(recipe, values.get("mixer", cls.mixer))
        return cls(**values)

    def sumix_options(self) -> dict[str, Any]:
        """The `SUMixModel` options of the config, its variant's filled in
        and validated (`keras_sumix.models.variants.resolve_options`)."""
        return resolve_options(
            self.variant, **{name: getattr(self, name) for name in NAMES}
        )

    def validate(self) -> TrainConfig:
        """Check every field; raise a ValueError/TypeError naming it."""
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("backbone", self.backbone, BACKBONES)
        check_choice("mixer", self.mixer, tuple(MIXERS))
        check_choice("pipeline", self.pipeline, PIPELINES)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("label_lam", self.label_lam, LABEL_LAMS)
        if self.label_lam == "attention":
            if _is_hub(self):
                # The preset's architecture (no weights): the model's own
                # check, before any data is loaded.
                transmix.attention_source(
                    models.from_hub(_hub_preset(self), load_weights=False)
                )
            elif self.backbone != "deit_small":
                raise ValueError(
                    "`label_lam='attention'` (TransMix) reads a class token's "
                    "attention: backbone='deit_small' or a keras-hub ViT/DeiT "
                    f"preset (weights='hub:...'). Received: backbone="
                    f"{self.backbone!r}."
                )
            transmix.check_mixer(mixer_class(self.mixer))
        if not isinstance(self.rand_augment, bool):
            raise TypeError(
                "`rand_augment` must be a bool. Received: "
                f"rand_augment={self.rand_augment!r}."
            )
        self.sumix_options()
        check_number("decouple_weight", self.decouple_weight, low=0.0, include_low=True)
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
        check_int("image_size", self.image_size, 1, allow_none=True)
        check_int("seed", self.seed, 0)
        if self.alpha is not None:  # the mixer checks its own alpha
            build_mixer(self)
        check_int("median_of", self.median_of, 1)
        if self.dataset in ("aircraft", "tiny_imagenet", "folder") and not (
            self.data_dir
        ):
            layout = "class subfolders" if self.dataset == "folder" else "official"
            raise ValueError(
                f"`data_dir` is required for dataset={self.dataset!r} (its "
                f"{layout} directory layout)."
            )
        if self.dataset == "occluded" and self.data_dir is not None:
            raise ValueError(
                "`data_dir` does not apply to dataset='occluded' (embedded, "
                f"generated): it would be ignored. Received: data_dir="
                f"{self.data_dir!r}. For a folder of your own images, one "
                "subfolder per class, use dataset='folder'."
            )
        if self.validation_fraction is not None:
            if self.dataset != "folder":
                raise ValueError(
                    "`validation_fraction` applies to dataset='folder' only. "
                    f"Received: validation_fraction={self.validation_fraction!r} "
                    f"with dataset={self.dataset!r}."
                )
            check_number(
                "validation_fraction",
                self.validation_fraction,
                low=0.0,
                high=1.0,
                include_high=False,
            )
        if self.weights and self.backbone == "small_cnn" and not _is_hub(self):
            raise ValueError(
                "`weights` does not apply to backbone='small_cnn' (it has no "
                f"pretrained weights). Received: weights={self.weights!r}."
            )
        return self

    def pipeline_options(self) -> dict[str, Any]:
        """The `keras_sumix.data.make_pipeline` arguments of the run (those
        its training and test pipelines share)."""
        image_size = self.image_size
        options: dict[str, Any] = {
            "pipeline": self.pipeline,
            "batch_size": self.batch_size,
            "seed": self.seed,
        }
        if self.dataset == "folder":
            # The loader shuffles the file list: a shuffle buffer of decoded
            # images would hold them at their full size.
            options["shuffle"] = False
            if image_size is None and self.pipeline == "cifar":
                image_size = FOLDER_IMAGE_SIZE
        return {**options, "image_size": image_size}


def occluded_split(config: TrainConfig, split: str) -> Any:
    """The embedded `occluded` dataset's `"train"` or `"test"` split of a
    run (`OccludedObjects`, masks included), as training generates it."""
    check_choice("split", split, ("train", "test"))
    size = config.limit or 6000
    if split == "train":
        return data_module.occluded_objects(size, seed=config.seed)
    return data_module.occluded_objects(max(size // 3, 2), seed=config.seed + 1)


def _load_split(config: TrainConfig, split: str, epoch: Any = None) -> tuple[Any, int]:
    """One unbatched split (`"train"` or `"test"`) as a `tf.data` dataset of
    `(image, label)`, and the class count. The loaders that read a list of
    files shuffle it for training, per `(config.seed, epoch)`."""
    tf = require_tensorflow()

    training = split == "train"
    order = {"shuffle": training, "seed": config.seed, "epoch": epoch}
    if config.dataset == "occluded":
        data = occluded_split(config, split)
        return (
            tf.data.Dataset.from_tensor_slices((data.images, data.labels)),
            data_module.OCCLUDED_NUM_CLASSES,
        )
    root = config.data_dir
    if config.dataset == "folder":
        ds, names = data_module.load_image_folder(
            root,
            "train" if training else "val",
            validation_fraction=config.validation_fraction,
            **order,
        )
        classes = len(names)
    elif config.dataset == "cifar100":
        ds = data_module.load_cifar100(split, data_dir=root)
        classes = 100
    elif config.dataset == "cub":
        layout = ("CUB_200_2011", "images.txt")
        if root and any((Path(root) / name).exists() for name in layout):
            ds, names = data_module.load_cub200_2011(root, split, **order)
            classes = len(names)
        else:
            ds = data_module.load_caltech_birds2011(split, data_dir=root)
            classes = 200
    elif config.dataset == "aircraft":
        ds, names = data_module.load_fgvc_aircraft(
            root, "trainval" if training else "test", **order
        )
        classes = len(names)
    else:
        ds, names = data_module.load_tiny_imagenet(
            root, "train" if training else "val", **order
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


def _load(config: TrainConfig, epoch: Any) -> tuple[Any, Any, int]:
    """Unbatched (train, test) `tf.data` datasets and the class count (the
    training files' order per `(config.seed, epoch)`)."""
    train, classes = _load_split(config, "train", epoch)
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
    if _is_hub(config):
        return models.from_hub(_hub_preset(config))
    builder = getattr(models, config.backbone)
    if config.backbone == "small_cnn":  # `validate` refuses `weights`
        return builder(input_shape=tuple(input_shape))
    if config.backbone in TRANSFORMERS:
        return builder(image_size=tuple(input_shape[:2]), weights=weights)
    return builder(input_shape=tuple(input_shape), weights=weights)


def build_mixer(config: TrainConfig, transformer: bool = False) -> Any:
    """The mixer of a run, at `config.alpha` (None: the paper's for CNNs,
    or for vision transformers when `transformer`)."""
    alpha = config.alpha
    if alpha is None:
        alpha = paper_alpha(config.mixer, transformer=transformer)
    mixer_kwargs = {"alpha": alpha, "seed": config.seed}
    if config.mixer == "resizemix":
        mixer_kwargs["use_alpha"] = True
    return get_mixer(config.mixer, **mixer_kwargs)


def build_model(config: TrainConfig, num_classes: int, input_shape) -> keras.Model:
    """The MixupModel / SUMixModel a config describes."""
    backbone = build_backbone(config, input_shape)
    if _is_hub(config):  # a keras-hub transformer outputs (N, L, D) tokens
        transformer = len(backbone.output_shape) == 3
    else:
        transformer = config.backbone in TRANSFORMERS
    mixer = build_mixer(config, transformer)
    if not config.sumix:
        return models.MixupModel(
            backbone,
            num_classes,
            mixer,
            label_lam=config.label_lam,
            decouple_weight=config.decouple_weight,
        )
    return models.SUMixModel(
        backbone,
        num_classes,
        mixer,
        variant=config.variant,
        label_lam=config.label_lam,
        decouple_weight=config.decouple_weight,
        **config.sumix_options(),
    )


def _is_hub(config: TrainConfig) -> bool:
    return bool(config.weights) and str(config.weights).startswith(HUB_PREFIX)


def _hub_preset(config: TrainConfig) -> str:
    """The keras-hub preset of `weights="hub:<preset>"`."""
    return str(config.weights)[len(HUB_PREFIX) :]


def warmup_cosine(
    peak: float, steps: int, warmup_steps: int = 0
) -> keras.optimizers.schedules.LearningRateSchedule:
    """A learning rate that rises linearly from 0 to `peak` over
    `warmup_steps`, then decays to 0 on a cosine at `steps` (at least 1;
    the warm-up is capped at `steps - 1`)."""
    steps = max(int(steps), 1)
    warmup = min(int(warmup_steps), steps - 1)
    if warmup <= 0:
        return keras.optimizers.schedules.CosineDecay(peak, steps)
    return keras.optimizers.schedules.CosineDecay(
        0.0, steps - warmup, warmup_target=peak, warmup_steps=warmup
    )


def build_optimizer(config: TrainConfig, steps_per_epoch: int) -> Any:
    """The run's optimizer: SGD with momentum or AdamW, on a cosine decay to
    0 over the run (after a linear warm-up of `warmup_epochs` from 0), with
    global gradient-norm clipping at `clipnorm` when it is set."""
    steps_per_epoch = max(int(steps_per_epoch), 1)
    schedule = warmup_cosine(
        config.learning_rate,
        steps_per_epoch * config.epochs,
        steps_per_epoch * config.warmup_epochs,
    )
    common = {"weight_decay": config.weight_decay, "global_clipnorm": config.clipnorm}
    if config.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(schedule, epsilon=1e-8, **common)
        optimizer.exclude_from_weight_decay(var_names=list(NO_WEIGHT_DECAY))
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


def _comparable(values: dict[str, Any]) -> dict[str, Any]:
    """A config dict without `output_dir` (the same folder may be spelt two
    ways), with the defaults of fields an older `config.json` lacks, and
    the SUMix options as the run uses them (an option left None and its
    value given explicitly are the same run)."""
    defaults = dataclasses.asdict(TrainConfig())
    values = {k: values.get(k, v) for k, v in defaults.items() if k != "output_dir"}
    try:
        given = {name: values[name] for name in NAMES}
        values.update(resolve_options(values["variant"], **given))
    except (ValueError, TypeError):  # not a valid config: compared as written
        pass
    return values


def prepare_run_dir(config: TrainConfig, overwrite: bool = False) -> str:
    """Check what `output_dir` holds before `train` writes to it.

    Args:
        config: the run.
        overwrite: remove a previous run's files (`RUN_FILES`) first.

    Returns:
        `"new"` (nothing of a run there, or `overwrite`) or `"resume"` (an
        interrupted run of the same config: `train` continues it).

    Raises:
        FileExistsError: the folder holds a finished run (completed or
            diverged), a run of another config, or run files without a
            readable `config.json`; the message names the way out
            (`overwrite=True`, `--overwrite` on the command line, or another
            `output_dir`).
    """
    out = Path(config.output_dir)
    present = [name for name in RUN_FILES if (out / name).exists()]
    if not present:
        return "new"
    if overwrite:
        for name in present:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        return "new"
    way_out = (
        "Pass overwrite=True (`keras-sumix train --overwrite`) to replace it, "
        "or choose another output_dir."
    )
    try:
        saved = json.loads((out / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise FileExistsError(
            f"{str(out)!r} holds run files ({', '.join(present)}) but no readable "
            f"config.json: it is not a run this command can resume. {way_out}"
        ) from None
    if not isinstance(saved, dict):
        saved = {}
    ours = _comparable(dataclasses.asdict(config))
    theirs = _comparable(saved)
    changed = [k for k in ours if ours[k] != theirs[k]]
    if changed:
        shown = ", ".join(f"{k}: {theirs[k]!r} -> {ours[k]!r}" for k in changed)
        raise FileExistsError(
            f"{str(out)!r} holds a run of another config ({shown}). {way_out}"
        )
    results_path = out / "results.json"
    if results_path.exists():
        status = json.loads(results_path.read_text()).get("status", "completed")
        raise FileExistsError(
            f"{str(out)!r} holds a finished run of this config (status "
            f"{status!r}, see results.json). {way_out}"
        )
    return "resume"


def train(
    config: TrainConfig,
    verbose: int | str = "auto",
    callbacks: Sequence[keras.callbacks.Callback] = (),
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train (or resume) a run and write its folder.

    A folder that already holds a run is never overwritten unless asked: an
    interrupted run of the same config is resumed; a finished one (completed
    or diverged), a run of another config, or run files without a
    `config.json` raise a `FileExistsError` naming the way out
    (`prepare_run_dir`); `overwrite=True` removes the previous run first.

    `output_dir` receives `config.json`, `checkpoint.keras` (every epoch),
    `history.json` (one row per epoch, test metrics included), `backup/`
    (Keras `BackupAndRestore`: rerunning the same command resumes an
    interrupted run) and, at the end, `results.json`.

    Resume is exact: the backup is taken at every epoch end and holds the
    weights, the optimizer (momentum, step count, hence the learning-rate
    schedule) and the mixer's random state; a run interrupted during epoch
    `k` restarts epoch `k` from its first batch, and the pipeline's shuffle
    and augmentation of epoch `k` depend only on `(seed, k)`
    (`make_pipeline(epoch=...)`; the loaders that shuffle a list of image
    files, `epoch=` too). A resumed run thus ends with the weights of an
    uninterrupted one (to float rounding; same backend and machine).

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
        overwrite: replace a run already in `output_dir`.

    Returns:
        The results: final test top-1 and loss, the median test top-1 of the
        last `median_of` epochs, the backend and the config.

    Raises:
        TrainingDiverged: the training loss became NaN or infinite.
        FileExistsError: `output_dir` holds a run that is not resumed (see
            above).
        ImportError: TensorFlow (the input pipeline's `tf.data`) is not
            installed; nothing is written.
    """
    config.validate()
    if not isinstance(overwrite, bool):
        raise TypeError(f"`overwrite` must be a bool. Received: {overwrite!r}.")
    tf = require_tensorflow()
    keras.utils.set_random_seed(config.seed)
    out = Path(config.output_dir)
    prepare_run_dir(config, overwrite)
    # Each epoch's order (of the files, then of the examples) and
    # augmentation depend on (seed, epoch) only, so a resumed run replays
    # exactly the epochs it has not finished (RandAugment excepted: its
    # random state restarts with the process).
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    train_raw, test_raw, num_classes = _load(config, epoch)
    pipeline = config.pipeline_options()
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
    # Written once the data and the model are built: a setting that fails
    # leaves no run behind (a rerun with it fixed is not "another config").
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=1))
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


# --------------------------------------------------------------------------
# Evaluating a finished run (`keras-sumix evaluate`).
# --------------------------------------------------------------------------

#: The FGSM budget of `evaluate_run` ([0, 1] pixel space).
FGSM_EPSILON = 8 / 255


def load_run_config(run_dir: str | Path) -> TrainConfig:
    """The validated config of a run folder `train` wrote.

    Args:
        run_dir: the run's `output_dir`.

    Returns:
        Its `config.json`, as a validated `TrainConfig`.

    Raises:
        FileNotFoundError: `run_dir` is not a folder, or lacks
            `config.json` or `checkpoint.keras`.
        ValueError: `config.json` is not a run config.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"RUN_DIR {str(run)!r} is not a folder.")
    for name in ("config.json", "checkpoint.keras"):
        if not (run / name).is_file():
            raise FileNotFoundError(
                f"{str(run / name)!r} not found: RUN_DIR must be the output_dir "
                "of `keras-sumix train`."
            )
    try:
        config = TrainConfig(**json.loads((run / "config.json").read_text()))
    except (json.JSONDecodeError, TypeError) as error:
        raise ValueError(
            f"{str(run / 'config.json')!r} is not a run config: {error}"
        ) from error
    return config.validate()


def _plain(value: Any) -> Any:
    """Plain-JSON form: string keys, floats, lists; nan/inf -> None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _normalizing_model(model: Any, input_shape: tuple, stats: Any) -> Any:
    """`model` preceded by the run's input normalisation, so that it takes
    images in [0, 1] (the model itself when the pipeline does not
    normalise)."""
    if stats is None:
        return model
    mean, std = stats
    inputs = keras.Input(tuple(input_shape), name="images")
    x = keras.layers.Normalization(
        axis=-1, mean=list(mean), variance=[s * s for s in std], name="normalize"
    )(inputs)
    return keras.Model(inputs, model(x), name=f"{model.name}_on_unit_images")


def load_test_images(config: TrainConfig, limit: int | None = None) -> tuple:
    """A run's test images and labels as NumPy arrays, as its test pipeline
    makes them but left in [0, 1] (`normalization="unit"`).

    Args:
        config: the run.
        limit: the first `limit` test images only (None: all).

    Returns:
        `(images, labels)`, float32 `(N, H, W, C)` and int32 `(N,)`.

    Raises:
        ValueError: the test split is empty.
    """
    test_raw, _ = load_test_data(config)
    if limit is not None:
        test_raw = test_raw.take(limit)
    batches = data_module.make_pipeline(
        test_raw, training=False, normalization="unit", **config.pipeline_options()
    )
    xs, ys = [], []
    for images, labels in batches.as_numpy_iterator():
        xs.append(images)
        ys.append(labels)
    if not xs:
        raise ValueError("The run's test split is empty.")
    return np.concatenate(xs), np.concatenate(ys).astype("int32")


def _fidelity(model: Any, config: TrainConfig, images: Any, stats: Any, limit: Any):
    """Lam fidelity on the embedded dataset's test split, or why not."""
    from keras_sumix.evaluation import lam_fidelity

    mixer_name = type(model.mixer).__name__
    if not model.mixer.true_share:
        return {
            "skipped": f"{mixer_name} rescales or blends the partner: its "
            "object masks give no true label share"
        }
    data = occluded_split(config, "test")
    if limit is not None:
        data = type(data)(*(field[:limit] for field in data))
    if data.images.shape != images.shape or len(data.images) < 2:
        return {"skipped": "the test pipeline resizes the images (masks do not match)"}
    if stats is not None:
        mean, std = (np.asarray(v, "float32") for v in stats)
        data = data._replace(images=(data.images - mean) / std)
    mixer = type(model.mixer).from_config(
        {**model.mixer.get_config(), "seed": config.seed}
    )
    result = lam_fidelity(model, mixer, data, batch_size=max(config.batch_size, 2))
    return {
        "mixer": mixer_name,
        "num_samples": len(result["lam"]),
        "pearson": result["pearson"],
        "mae": result["mae"],
        "mean_true_lam": float(np.mean(result["true_lam"])),
        "mean_lam": float(np.mean(result["lam"])),
        "mean_area_lam": float(np.mean(result["area_lam"])),
    }


def evaluate_run(
    run_dir: str | Path,
    limit: int | None = None,
    cifar100_c: str | Path | None = None,
    batch_size: int = 128,
) -> dict[str, Any]:
    """Evaluate a training run folder and write `RUN_DIR/evaluation.json`.

    Loads `checkpoint.keras` and `config.json` (`load_run_config`), rebuilds
    the test split as training does (`load_test_images`) and runs, on the
    same images:

    - `clean_top1`;
    - `occlusion`: `occlusion_robustness` at ratios 0, 0.1, ..., 0.9, masked
      patches set to black (0 in [0, 1] pixel space); 16x16 patches for
      images of side >= 128, an 8x8 grid of cells for smaller ones;
    - `fgsm`: white-box FGSM error at epsilon 8/255 in [0, 1] pixel space,
      clipped to [0, 1] (the paper's Table 5);
    - `corruption`: the generated corruption subset, or CIFAR-100-C when
      `cifar100_c` is a folder of its `.npy` files;
    - `lam_fidelity` on the embedded `occluded` dataset (cutting mixers).

    Every protocol sees un-normalised images in [0, 1]: the test pipeline
    is run with `normalization="unit"` and the model is wrapped with a
    `Normalization` layer holding the recipe's mean and std, so the model
    receives exactly what it was trained on while epsilon, clipping and
    occlusion live in pixel space.

    Args:
        run_dir: the run's `output_dir`.
        limit: evaluate on the first `limit` test images (and CIFAR-100-C
            images per corruption and severity) only.
        cifar100_c: folder of the official CIFAR-100-C files, or None.
        batch_size: evaluation batch size.

    Returns:
        The plain-JSON dict written to `evaluation.json`.

    Raises:
        FileNotFoundError: `run_dir` is not a run folder.
        ValueError: invalid options, or CIFAR-100-C for a model that does
            not take 32x32 RGB images.

    Example:

    ```python
    results = keras_sumix.training.evaluate_run("runs/run", limit=256)
    results["fgsm"]["error"]
    ```
    """
    from keras_sumix.evaluation import (
        cifar100_c_robustness,
        fgsm_error,
        generated_corruption_robustness,
        occlusion_robustness,
        top1_accuracy,
    )

    config = load_run_config(run_dir)
    check_int("limit", limit, 1, allow_none=True)
    check_int("batch_size", batch_size, 1)
    run = Path(run_dir)
    model = keras.saving.load_model(run / "checkpoint.keras", compile=False)
    images, labels = load_test_images(config, limit)
    stats = pipeline_normalization(config.pipeline)
    unit_model = _normalizing_model(model, images.shape[1:], stats)

    side = min(images.shape[1:3])
    occlusion_layout = {"patch_size": 16} if side >= 128 else {"grid": (8, 8)}
    occlusion = occlusion_robustness(
        unit_model, images, labels, batch_size=batch_size, **occlusion_layout
    )
    fgsm = fgsm_error(
        unit_model, images, labels, FGSM_EPSILON, batch_size=batch_size, clip=(0, 1)
    )
    if cifar100_c is not None:
        if tuple(images.shape[1:]) != (32, 32, 3):
            raise ValueError(
                "CIFAR-100-C images are 32x32 RGB; this run's model takes "
                f"{tuple(images.shape[1:])} images."
            )
        corruption = cifar100_c_robustness(
            unit_model, cifar100_c, limit=limit, batch_size=batch_size
        )
    else:
        corruption = generated_corruption_robustness(
            unit_model,
            images,
            labels,
            batch_size=batch_size,
            data_format="channels_last",
        )
    results: dict[str, Any] = {
        "run_dir": str(run),
        "backend": keras.backend.backend(),
        "dataset": config.dataset,
        "num_images": len(images),
        "inputs": "images in [0, 1]; the recipe's normalisation is applied "
        "inside the evaluated model",
        "clean_top1": top1_accuracy(unit_model, images, labels, batch_size),
        "occlusion": {
            "fill": "black (0 in [0, 1] pixels)",
            **occlusion_layout,
            "top1": occlusion,
        },
        "fgsm": {
            "epsilon": FGSM_EPSILON,
            "space": "[0, 1] pixels, clipped to [0, 1]",
            "error": fgsm,
        },
        "corruption": corruption,
    }
    if config.dataset == "occluded":
        results["lam_fidelity"] = _fidelity(model, config, images, stats, limit)
    results = _plain(results)
    (run / "evaluation.json").write_text(json.dumps(results, indent=1, allow_nan=False))
    return results
