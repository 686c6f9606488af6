"""Training and measuring one study run, and running a grid of them with a
JSON-lines record (a rerun skips what is recorded, so a study can be run in
chunks)."""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np

from keras_sumix.layers import registry
from keras_sumix.training import NO_WEIGHT_DECAY, warmup_cosine
from study.config import (
    STUDY_VIT,
    FineTuneSettings,
    StudyConfig,
    ViTSettings,
    fine_tune_settings,
)
from study.grid import Cell, RunSpec

#: Name of the JSON-lines file of finished runs in the output folder.
RUNS_FILE = "runs.jsonl"
#: Seed of the held-out mixes of the fidelity measure (the same for every run).
FIDELITY_MIX_SEED = 1234
#: The datasets with object masks: lambda fidelity is measured on them.
MASKED_DATASETS = ("occluded", "fine_grained")


# ---------------------------------------------------------------------- #
# Data
# ---------------------------------------------------------------------- #
class StudyData:
    """The study's datasets, generated or loaded once, on first use.

    Args:
        config: the study's config.
    """

    def __init__(self, config: StudyConfig) -> None:
        self.config = config
        self._cache: dict[str, Any] = {}

    def _occluded(self, num_images: int, seed: int) -> Any:
        from keras_sumix.data import occluded_objects

        config = self.config
        return occluded_objects(
            num_images,
            seed=seed,
            min_scale=config.min_scale,
            max_scale=config.max_scale,
            clutter=config.clutter,
        )

    def _fine_grained(self, num_images: int, seed: int) -> Any:
        from keras_sumix.data import fine_grained_objects

        settings = fine_tune_settings(self.config)
        return fine_grained_objects(
            num_images,
            image_size=settings.image_size,
            seed=seed,
            clutter=settings.clutter,
        )

    def split(self, dataset: str, split: str) -> tuple[np.ndarray, np.ndarray]:
        """`(images, labels)` of `"train"` or `"test"` of a dataset."""
        name = f"{dataset}/{split}"
        if name not in self._cache:
            config, seed = self.config, self.config.data_seed
            if dataset in MASKED_DATASETS:
                data = self._masked(dataset, split, seed + (split == "test"))
                value = (data.images, data.labels)
            else:
                from keras_sumix.data import load_digits_split

                data = load_digits_split(
                    split, seed=seed, test_fraction=config.digits_test_fraction
                )
                limit = config.digits_limit
                value = (data.images[:limit], data.labels[:limit])
            self._cache[name] = value
        return self._cache[name]

    def _masked(self, dataset: str, split: str, seed: int) -> Any:
        """A split (`"train"`, `"test"` or `"fidelity"`) of a dataset with
        object masks, at the size its settings give."""
        if dataset == "occluded":
            config = self.config
            sizes = {
                "train": config.occluded_train,
                "test": config.occluded_test,
                "fidelity": config.fidelity_samples,
            }
            return self._occluded(sizes[split], seed)
        settings = fine_tune_settings(self.config)
        sizes = {
            "train": settings.train_images,
            "test": settings.test_images,
            "fidelity": settings.fidelity_samples,
        }
        return self._fine_grained(sizes[split], seed)

    def fidelity(self, dataset: str = "occluded") -> Any:
        """Held-out images with masks of a dataset in `MASKED_DATASETS` (the
        fidelity measure's; data seed `data_seed + 2`)."""
        name = f"{dataset}/fidelity"
        if name not in self._cache:
            seed = self.config.data_seed + 2
            self._cache[name] = self._masked(dataset, "fidelity", seed)
        return self._cache[name]


def num_classes(dataset: str) -> int:
    """Classes of a study dataset (10; 64 for the fine-grained data)."""
    from keras_sumix.data import (
        DIGITS_NUM_CLASSES,
        FINE_GRAINED_NUM_CLASSES,
        OCCLUDED_NUM_CLASSES,
    )

    return {
        "occluded": OCCLUDED_NUM_CLASSES,
        "digits": DIGITS_NUM_CLASSES,
        "fine_grained": FINE_GRAINED_NUM_CLASSES,
    }[dataset]


# ---------------------------------------------------------------------- #
# One run
# ---------------------------------------------------------------------- #
#: The `small_cnn` stage AutoMix reads in the study: its second, 8x8 for
#: 32x32 images, as stage 3 of the paper's CIFAR ResNets.
AUTOMIX_FEATURE_LAYER = "stage2"


def make_mixer(
    name: str,
    config: StudyConfig,
    seed: int,
    steps: int | None = None,
    backbone: str = "cnn",
) -> Any:
    """The mixer of a run: `config.alpha` (for the pretrained start, part
    W's `FineTuneSettings.alpha`; None: the paper's per mixer), ResizeMix
    drawing its box side from the Beta distribution (the paper's setting),
    AutoMix reading `AUTOMIX_FEATURE_LAYER` with its momentum schedule over
    the run's `steps`."""
    from keras_sumix.layers import get_mixer
    from keras_sumix.recipes import PAPER_ALPHA

    alpha = config.alpha
    if backbone == "pretrained":
        alpha = fine_tune_settings(config).alpha
    alpha = PAPER_ALPHA[name] if alpha is None else alpha
    kwargs: dict[str, Any] = {"alpha": alpha, "seed": seed}
    if name == "resizemix":
        kwargs["use_alpha"] = True
    if registry.mixer_class(name).needs_features:
        kwargs.update(feature_layer=AUTOMIX_FEATURE_LAYER, momentum_steps=steps)
    return get_mixer(name, **kwargs)


def _fidelity_mixer(model: Any, cell: Cell, config: StudyConfig) -> Any:
    """The held-out mixes' mixer (the cell's, seeded `FIDELITY_MIX_SEED`); a
    learned one carries the trained model's mix block."""
    mixer = make_mixer(cell.mixer, config, FIDELITY_MIX_SEED, backbone=cell.backbone)
    if mixer.needs_features:
        trained = model.mixer.mix_block
        mixer = type(model.mixer).from_config(
            {**model.mixer.get_config(), "seed": FIDELITY_MIX_SEED}
        )
        channels = trained.query.kernel.shape[0] - int(trained.lam_channel)
        mixer.mix_block.build((None, None, None, channels))
        mixer.mix_block.set_weights(trained.get_weights())
    return mixer


def object_preference(model: Any, mixer: Any, data: Any, batch_size: int) -> float:
    """How much more of its object than of its background a mixer's mask
    keeps of each held-out image: the mean over mixes of (mean kept share
    on the object's pixels - mean kept share on the others), 0 for a
    uniform blend or a mask that ignores the objects, up to 1.

    Args:
        model: the trained model (a learned mixer's features come from it).
        mixer: a cutting mixer (`true_share`), as `lam_fidelity`'s.
        data: held-out `occluded_objects` data (channels-last).
        batch_size: the mixes' batch size.

    Returns:
        The mean preference.
    """
    gaps = []
    for start in range(0, len(data.images) - 1, batch_size):
        images = data.images[start : start + batch_size]
        objects = data.masks[start : start + batch_size].astype(bool)
        if len(images) < 2:
            break
        context = {}
        if mixer.needs_saliency:
            labels = data.labels[start : start + batch_size]
            context["saliency"] = model.saliency(images, labels)
        if mixer.needs_features:
            context["features"] = model.mix_features(images)
        mix = mixer.apply(images, mixer.draw(images, **context))
        mask = keras.ops.convert_to_numpy(mix.mask).reshape(objects.shape)
        for kept, own in zip(mask, objects, strict=True):
            if own.any() and not own.all():
                gaps.append(kept[own].mean() - kept[~own].mean())
    return float(np.mean(gaps))


def study_vit(
    input_shape: tuple, settings: ViTSettings | None = None, name: str = "study_vit"
) -> keras.Model:
    """The small vision transformer of part V: keras-hub's `ViTBackbone` (the
    architecture of `keras_sumix.models.deit_small`) at the images' size,
    with `settings`' patch, depth and widths, no dropout.

    It outputs its tokens `(N, L, D)`; `MixupModel` / `SUMixModel` pool them
    (`keras_sumix.models.pooling`): the class token when `settings.pooling`
    is `"class_token"` (`deit_small`'s features), the mean of the patch
    tokens (no class token is built) when it is `"mean"`.

    Args:
        input_shape: channels-last image shape `(H, W, 3)`; H and W divisible
            by `settings.patch_size`.
        settings: the architecture (None: `STUDY_VIT`).
        name: the model name.

    Returns:
        keras-hub's `ViTBackbone`, from images to `(N, L, settings.hidden_dim)`
        tokens.
    """
    from keras_sumix.models.transformers import _keras_hub

    keras_hub = _keras_hub("study_vit")
    settings = STUDY_VIT if settings is None else settings
    return keras_hub.models.ViTBackbone(
        image_shape=tuple(int(v) for v in input_shape),
        patch_size=settings.patch_size,
        num_layers=settings.num_layers,
        num_heads=settings.num_heads,
        hidden_dim=settings.hidden_dim,
        mlp_dim=settings.mlp_dim,
        use_class_token=settings.pooling == "class_token",
        data_format="channels_last",
        name=name,
    )


def pretrained_start(settings: FineTuneSettings) -> Any:
    """Part W's start: `keras_sumix.models.pretrain_backbone` with
    `settings.pretrain` (trained once, then read from its cache).

    Args:
        settings: part W's settings.

    Returns:
        The `PretrainedBackbone` (its `preset` directory and `info`).
    """
    from keras_sumix.models import pretrain_backbone

    return pretrain_backbone(**dict(settings.pretrain))


def build_backbone(cell: Cell, config: StudyConfig, input_shape: tuple) -> Any:
    """The backbone of a run: `small_cnn(widths=config.widths)`; for
    `cell.backbone == "vit"`, `study_vit` with `STUDY_VIT`; for
    `"pretrained"`, the pretrained start's preset loaded with
    `keras_sumix.models.from_hub` (its weights, any image size).

    Args:
        cell: the run's cell. config: the study's config.
        input_shape: the image shape.

    Returns:
        A `keras.Model` from images to features (the CNN's pooled, the
        ViT's tokens, which the training models pool).
    """
    from keras_sumix.models import from_hub, small_cnn

    if cell.backbone == "vit":
        return study_vit(input_shape)
    if cell.backbone == "pretrained":
        return from_hub(pretrained_start(fine_tune_settings(config)).preset)
    return small_cnn(tuple(input_shape), widths=config.widths)


def build_model(
    cell: Cell,
    config: StudyConfig,
    input_shape: tuple,
    seed: int,
    steps: int | None = None,
):
    """The `MixupModel` / `SUMixModel` of a run, on `build_backbone`'s
    network (not compiled: `compile_model`); `steps`, the run's optimizer
    steps, sets AutoMix's momentum schedule."""
    from keras_sumix.models import MixupModel, SUMixModel
    from study.grid import METHODS

    mixer = make_mixer(cell.mixer, config, seed, steps, cell.backbone)
    backbone = build_backbone(cell, config, input_shape)
    classes = num_classes(cell.dataset)
    model_class = SUMixModel if METHODS[cell.method].sumix else MixupModel
    model = model_class(backbone, classes, mixer, **cell.model_options())
    return model


def compile_model(
    model: Any,
    config: StudyConfig,
    steps: int,
    backbone: str = "cnn",
    steps_per_epoch: int = 1,
) -> None:
    """Compile a run's model: for the CNN, SGD (Nesterov momentum, weight
    decay) with cosine decay to 0 over `steps`; for the ViT, `STUDY_VIT`'s
    AdamW (`vit_optimizer`); for the pretrained start, Adam at part W's
    constant learning rate (notebook 03's fine-tuning).

    Args:
        model: the run's model. config: the study's config.
        steps: training steps of the whole run.
        backbone: the cell's backbone (one of `study.grid.BACKBONES`).
        steps_per_epoch: steps of one epoch (the ViT's warm-up is counted in
            epochs).
    """
    if backbone == "vit":
        optimizer = vit_optimizer(STUDY_VIT, steps, steps_per_epoch)
    elif backbone == "pretrained":
        optimizer = keras.optimizers.Adam(fine_tune_settings(config).learning_rate)
    else:
        optimizer = keras.optimizers.SGD(
            warmup_cosine(config.learning_rate, steps),
            momentum=config.momentum,
            nesterov=True,
            weight_decay=config.weight_decay or None,
        )
    model.compile(optimizer=optimizer, run_eagerly=config.run_eagerly)


def vit_optimizer(settings: ViTSettings, steps: int, steps_per_epoch: int) -> Any:
    """AdamW for the ViT: linear warm-up from 0 over `settings.warmup_epochs`,
    then cosine decay to 0 at `steps`; no weight decay on biases, norms, the
    class token and the position embeddings (as `keras_sumix.training`'s
    transformer recipes); global gradient-norm clipping.

    Args:
        settings: the ViT's settings. steps: steps of the whole run.
        steps_per_epoch: steps of one epoch.

    Returns:
        A `keras.optimizers.AdamW`.
    """
    warmup = settings.warmup_epochs * max(int(steps_per_epoch), 1)
    schedule = warmup_cosine(settings.learning_rate, steps, warmup)
    optimizer = keras.optimizers.AdamW(
        schedule,
        weight_decay=settings.weight_decay,
        epsilon=1e-8,
        global_clipnorm=settings.clipnorm,
    )
    optimizer.exclude_from_weight_decay(var_names=list(NO_WEIGHT_DECAY))
    return optimizer


class _EpochRecorder(keras.callbacks.Callback):
    """Per-epoch training seconds, and test top-1 (timed apart) after every
    epoch in `evaluate_at` (0-based)."""

    def __init__(
        self, test: tuple[np.ndarray, np.ndarray], evaluate_at: set[int]
    ) -> None:
        super().__init__()
        self.test = test
        self.evaluate_at = evaluate_at
        self.seconds: list[float] = []
        self.epochs: list[int] = []
        self.top1: list[float] = []
        self.losses: list[float] = []
        self.eval_seconds = 0.0
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        from keras_sumix.evaluation import top1_accuracy

        self.seconds.append(time.perf_counter() - self._start)
        self.losses.append(float((logs or {}).get("loss", float("nan"))))
        if epoch in self.evaluate_at:
            start = time.perf_counter()
            self.epochs.append(epoch + 1)
            self.top1.append(top1_accuracy(self.model, *self.test))
            self.eval_seconds += time.perf_counter() - start


def evaluation_epochs(config: StudyConfig, epochs: int | None = None) -> set[int]:
    """The 0-based epochs after which test top-1 is measured: every
    `eval_every`-th and each of the last `median_last`.

    Args:
        config: the study's config.
        epochs: the run's epochs (None: `config.epochs`).

    Returns:
        The epochs, 0-based.
    """
    epochs = config.epochs if epochs is None else epochs
    last = set(range(max(epochs - config.median_last, 0), epochs))
    return last | set(range(config.eval_every - 1, epochs, config.eval_every))


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def train_run(
    run: RunSpec,
    config: StudyConfig,
    data: StudyData,
    verbose: int = 0,
) -> dict[str, Any]:
    """Train one run and measure it (`train_and_measure`, without the model).

    Args:
        run: the run.
        config: the study's config.
        data: the datasets.
        verbose: Keras `fit` verbosity.

    Returns:
        The run's record (plain JSON; non-finite numbers as None).
    """
    return train_and_measure(run, config, data, verbose)[1]


def train_and_measure(
    run: RunSpec,
    config: StudyConfig,
    data: StudyData,
    verbose: int = 0,
) -> tuple[keras.Model, dict[str, Any]]:
    """Train one run and measure it; return the trained model too.

    Trains the run's model on its dataset's training split, with test top-1
    after every epoch; then lambda fidelity (the datasets with masks,
    `MASKED_DATASETS`, cutting mixers: the run's mixer type, seeded
    `FIDELITY_MIX_SEED`, on the dataset's held-out fidelity images in
    batches of the run's batch size, networks in inference mode) and
    occlusion robustness (a 4x4 grid, masked to 0) on the test split.

    Args:
        run: the run.
        config: the study's config.
        data: the datasets.
        verbose: Keras `fit` verbosity.

    Returns:
        `(model, record)`: the trained `MixupModel` / `SUMixModel` (the
        next run starts by clearing the Keras session) and the run's record
        (plain JSON; non-finite numbers as None).
    """
    from keras_sumix.evaluation import (
        lam_fidelity,
        median_of_last,
        occlusion_robustness,
        top1_accuracy,
    )

    cell = run.cell
    start, cpu_start = time.perf_counter(), time.process_time()
    keras.backend.clear_session()
    keras.utils.set_random_seed(run.seed)
    train_x, train_y = data.split(cell.dataset, "train")
    test = data.split(cell.dataset, "test")
    epochs = cell.run_epochs(config)
    steps_per_epoch = math.ceil(len(train_x) / cell.batch_size)
    model = build_model(
        cell, config, train_x.shape[1:], run.seed, epochs * steps_per_epoch
    )
    compile_model(
        model, config, epochs * steps_per_epoch, cell.backbone, steps_per_epoch
    )
    recorder = _EpochRecorder(test, evaluation_epochs(config, epochs))
    model.fit(
        train_x,
        train_y,
        batch_size=cell.batch_size,
        epochs=epochs,
        shuffle=True,
        verbose=verbose,
        callbacks=[recorder, keras.callbacks.TerminateOnNaN()],
    )
    if not recorder.epochs or recorder.epochs[-1] != len(recorder.losses):
        # Stopped early (a diverged run): measure where it stopped.
        recorder.epochs.append(len(recorder.losses))
        recorder.top1.append(top1_accuracy(model, *test))

    fidelity: dict[str, Any]
    if cell.dataset not in MASKED_DATASETS:
        fidelity = {"skipped": "no object masks on this dataset"}
    elif not registry.mixer_class(cell.mixer).true_share:
        fidelity = {
            "skipped": f"{registry.label(cell.mixer)} rescales or blends the "
            "partner: its object masks give no true label share"
        }
    else:
        held_out = data.fidelity(cell.dataset)
        mixer = _fidelity_mixer(model, cell, config)
        result = lam_fidelity(model, mixer, held_out, batch_size=cell.batch_size)
        fidelity = {
            "pearson": _finite(result["pearson"]),
            "mae": _finite(result["mae"]),
            "mean_lam": _finite(np.mean(result["lam"])),
            "mean_true_lam": _finite(np.mean(result["true_lam"])),
            "mean_area_lam": _finite(np.mean(result["area_lam"])),
            "mean_mask_std": _finite(np.mean(result["mask_std"])),
            "object_preference": _finite(
                object_preference(
                    model,
                    _fidelity_mixer(model, cell, config),
                    held_out,
                    cell.batch_size,
                )
            ),
        }
    occlusion = occlusion_robustness(
        model, *test, ratios=config.occlusion_ratios, grid=(4, 4), seed=0
    )
    epoch_seconds = recorder.seconds
    later = epoch_seconds[1:] or epoch_seconds
    return model, {
        "key": run.key,
        "cell": cell.key,
        "signature": config.signature(),
        "backend": keras.backend.backend(),
        "part": run.part,
        "label": run.label,
        "dataset": cell.dataset,
        "mixer": cell.mixer,
        "method": cell.method,
        "batch_size": cell.batch_size,
        "distance_scale": cell.distance_scale,
        "semantic_scale": cell.semantic_scale,
        "backbone": cell.backbone,
        "backbone_settings": backbone_settings(cell.backbone, config),
        "pretrained_start": (
            pretrained_start(fine_tune_settings(config)).info
            if cell.backbone == "pretrained"
            else None
        ),
        "epochs": cell.epochs,
        "seed": run.seed,
        "epochs_run": len(recorder.losses),
        "diverged": len(recorder.losses) < epochs
        or not all(math.isfinite(v) for v in recorder.losses),
        "top1_epochs": recorder.epochs,
        "top1_history": [_finite(v) for v in recorder.top1],
        "final_top1": _finite(recorder.top1[-1]),
        "median_top1": _finite(median_of_last(recorder.top1, config.median_last)),
        "final_loss": _finite(recorder.losses[-1]),
        "fidelity": fidelity,
        "pearson": fidelity.get("pearson"),
        "mae": fidelity.get("mae"),
        "mask_std": fidelity.get("mean_mask_std"),
        "object_preference": fidelity.get("object_preference"),
        "occlusion": {f"{r:g}": _finite(v) for r, v in occlusion.items()},
        "seconds_per_epoch": statistics.median(later),
        "first_epoch_seconds": epoch_seconds[0],
        "epoch_seconds": epoch_seconds,
        "eval_seconds": recorder.eval_seconds,
        "total_seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu_start,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "keras_version": keras.__version__,
    }


# ---------------------------------------------------------------------- #
# The record
# ---------------------------------------------------------------------- #
def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The runs recorded in a JSON-lines file (none if it does not exist; a
    line cut short by an interrupted write is ignored).

    Args:
        path: the `runs.jsonl` file.

    Returns:
        The records, in file order.
    """
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "key" in record:
            records.append(record)
    return records


def append_record(path: str | Path, record: dict[str, Any]) -> None:
    """Append one record to a JSON-lines file, flushed to disk.

    Args:
        path: the `runs.jsonl` file (created with its folder if missing).
        record: a plain-JSON dict.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, allow_nan=False)
    with path.open("a") as stream:
        stream.write(line + "\n")
        stream.flush()
        os.fsync(stream.fileno())


def backbone_settings(backbone: str, config: StudyConfig) -> dict[str, Any] | None:
    """What a run records of its network (and data) beyond `StudyConfig`:
    the ViT's settings (`STUDY_VIT`), part W's (`fine_tune_settings`: the
    fine-grained data, the pretrained start, the optimizer) for the
    pretrained start, None for the CNN (its widths are in the config).

    Args:
        backbone: one of `study.grid.BACKBONES`.
        config: the study's config.

    Returns:
        A plain-JSON dict, or None.
    """
    if backbone == "vit":
        return STUDY_VIT.to_dict()
    if backbone == "pretrained":
        return fine_tune_settings(config).to_dict()
    return None


def matching(
    records: Iterable[dict[str, Any]], config: StudyConfig, backend: str
) -> dict[str, dict[str, Any]]:
    """Records of `config`'s settings on `backend` (and, for a ViT or a
    pretrained-start run, of its `backbone_settings`), by run key (the
    latest wins). Records made before the backbone was recorded are CNN
    runs."""
    signature = config.signature()
    return {
        r["key"]: r
        for r in records
        if r.get("signature") == signature
        and r.get("backend") == backend
        and r.get("backbone_settings")
        == backbone_settings(r.get("backbone", "cnn"), config)
    }


# ---------------------------------------------------------------------- #
# Time estimate
# ---------------------------------------------------------------------- #
def _heavy(run: RunSpec) -> bool:
    """Whether a run makes two passes a step (every SUMix method)."""
    from study.grid import METHODS

    return METHODS[run.cell.method].sumix


def _images(run: RunSpec, data: StudyData) -> int:
    return len(data.split(run.cell.dataset, "train")[0])


def cell_of(record: dict[str, Any]) -> Cell:
    """The (resolved) cell a run record was trained with.

    Args:
        record: a run record (`train_run`); one made before the backbone was
            recorded is a CNN run of the study's epochs.

    Returns:
        The cell.
    """
    return Cell(
        *(record[k] for k in _CELL_FIELDS),
        backbone=record.get("backbone", "cnn"),
        epochs=record.get("epochs"),
    )


def measured_dataset(backbone: str) -> str:
    """The dataset `measure_run_seconds` times a backbone on: the
    fine-grained data for the pretrained start, else the embedded data."""
    return "fine_grained" if backbone == "pretrained" else "occluded"


def measure_run_seconds(
    config: StudyConfig, data: StudyData, epochs: int = 2, backbone: str = "cnn"
) -> dict[str, float]:
    """Seconds of a full run (`config.epochs`) of MCE and of SUMix (CutMix,
    `measured_dataset(backbone)`, default batch, `backbone`), extrapolated
    from `epochs` timed epochs of each.

    Args:
        config: the study's config. data: the datasets.
        epochs: epochs actually trained per method.
        backbone: one of `study.grid.BACKBONES`.

    Returns:
        `{"mce": seconds, "sumix": seconds}`.
    """
    from study.grid import Cell

    out = {}
    short = StudyConfig(**{**config.__dict__, "epochs": epochs})
    evaluations = len(evaluation_epochs(config))
    dataset = measured_dataset(backbone)
    for method in ("mce", "sumix"):
        cell = Cell(dataset, "cutmix", method, backbone=backbone).resolved(short)
        record = train_run(RunSpec("?", method, cell, 0), short, data)
        per_eval = record["eval_seconds"] / len(record["top1_history"])
        out[method] = (
            record["total_seconds"]
            + (config.epochs - epochs) * record["seconds_per_epoch"]
            + (evaluations - len(record["top1_history"])) * per_eval
        )
    keras.backend.clear_session()
    return out


def estimate_seconds(
    runs: list[RunSpec],
    config: StudyConfig,
    data: StudyData,
    recorded: dict[str, dict[str, Any]],
    measure: Callable[[str], dict[str, float]] | None = None,
) -> float:
    """Estimated seconds of `runs`: per backbone, from the recorded runs of
    the same settings when there are some of both kinds (one pass, two
    passes), else from `measure(backbone)` (default `measure_run_seconds`: a
    short timed run of each kind, on `measured_dataset(backbone)`).

    The per-run time is scaled by the number of training images (the digits
    split is smaller than the embedded one) and by the run's epochs (part V
    may train its own number); the mixer's own cost is ignored.
    """
    if not runs:
        return 0.0
    per_unit: dict[tuple[str, bool], list[float]] = {}
    for record in recorded.values():
        spec = RunSpec("?", "", cell_of(record), 0)
        units = _images(spec, data) * spec.cell.run_epochs(config)
        kind = (spec.cell.backbone, _heavy(spec))
        per_unit.setdefault(kind, []).append(record["total_seconds"] / units)
    for backbone in sorted({run.cell.backbone for run in runs}):
        if (backbone, True) in per_unit and (backbone, False) in per_unit:
            continue
        if measure is None:
            measured = measure_run_seconds(config, data, backbone=backbone)
        else:
            measured = measure(backbone)
        images = len(data.split(measured_dataset(backbone), "train")[0])
        units = images * config.epochs
        per_unit[(backbone, True)] = [measured["sumix"] / units]
        per_unit[(backbone, False)] = [measured["mce"] / units]
    rate = {kind: statistics.median(values) for kind, values in per_unit.items()}
    return sum(
        rate[(run.cell.backbone, _heavy(run))]
        * _images(run, data)
        * run.cell.run_epochs(config)
        for run in runs
    )


_CELL_FIELDS = (
    "dataset",
    "mixer",
    "method",
    "batch_size",
    "distance_scale",
    "semantic_scale",
)
