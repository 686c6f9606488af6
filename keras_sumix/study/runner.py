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

from keras_sumix.study.config import StudyConfig
from keras_sumix.study.grid import Cell, RunSpec

#: Name of the JSON-lines file of finished runs in the output folder.
RUNS_FILE = "runs.jsonl"
#: Seed of the held-out mixes of the fidelity measure (the same for every run).
FIDELITY_MIX_SEED = 1234
#: Cutting mixers whose mixes `true_lam` can read (pixels pasted in place).
FIDELITY_MIXERS = ("cutmix", "fmix", "saliencymix")
_FIDELITY_SKIPPED = {
    "mixup": "MixUp blends every pixel: no true label share from masks",
    "resizemix": "ResizeMix rescales the partner: its mask is not pasted in place",
}


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

    def split(self, dataset: str, split: str) -> tuple[np.ndarray, np.ndarray]:
        """`(images, labels)` of `"train"` or `"test"` of a dataset."""
        name = f"{dataset}/{split}"
        if name not in self._cache:
            config, seed = self.config, self.config.data_seed
            if dataset == "embedded":
                size = (
                    config.embedded_train if split == "train" else config.embedded_test
                )
                data = self._occluded(size, seed + (split == "test"))
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

    def fidelity(self) -> Any:
        """Held-out embedded images with masks (the fidelity measure's)."""
        if "fidelity" not in self._cache:
            seed = self.config.data_seed + 2
            self._cache["fidelity"] = self._occluded(self.config.fidelity_samples, seed)
        return self._cache["fidelity"]


def num_classes(dataset: str) -> int:
    """Classes of a study dataset (10 for both)."""
    from keras_sumix.data import DIGITS_NUM_CLASSES, NUM_CLASSES

    return NUM_CLASSES if dataset == "embedded" else DIGITS_NUM_CLASSES


# ---------------------------------------------------------------------- #
# One run
# ---------------------------------------------------------------------- #
def make_mixer(name: str, config: StudyConfig, seed: int) -> Any:
    """The mixer of a run: `config.alpha` (None: the paper's per mixer),
    ResizeMix drawing its box side from the Beta distribution (the paper's
    setting)."""
    from keras_sumix.layers import get_mixer
    from keras_sumix.recipes import PAPER_ALPHA

    alpha = PAPER_ALPHA[name] if config.alpha is None else config.alpha
    kwargs: dict[str, Any] = {"alpha": alpha, "seed": seed}
    if name == "resizemix":
        kwargs["use_alpha"] = True
    return get_mixer(name, **kwargs)


def build_model(cell: Cell, config: StudyConfig, input_shape: tuple, seed: int):
    """The compiled `MixupModel` / `SUMixModel` of a run (small CNN, SGD with
    Nesterov momentum, cosine decay to 0 over every step)."""
    from keras_sumix.models import MixupModel, SUMixModel, small_cnn
    from keras_sumix.study.grid import METHODS

    mixer = make_mixer(cell.mixer, config, seed)
    backbone = small_cnn(tuple(input_shape), widths=config.widths)
    classes = num_classes(cell.dataset)
    if METHODS[cell.method].sumix:
        model = SUMixModel(backbone, classes, mixer, **cell.model_options())
    else:
        model = MixupModel(backbone, classes, mixer)
    return model


def compile_model(model: Any, config: StudyConfig, steps: int) -> None:
    """SGD (Nesterov momentum, weight decay) with cosine decay to 0 over
    `steps`."""
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps)
    model.compile(
        optimizer=keras.optimizers.SGD(
            schedule,
            momentum=config.momentum,
            nesterov=True,
            weight_decay=config.weight_decay or None,
        ),
        run_eagerly=config.run_eagerly,
    )


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


def evaluation_epochs(config: StudyConfig) -> set[int]:
    """The 0-based epochs after which test top-1 is measured: every
    `eval_every`-th and each of the last `median_last`."""
    last = set(range(max(config.epochs - config.median_last, 0), config.epochs))
    return last | set(range(config.eval_every - 1, config.epochs, config.eval_every))


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
    after every epoch; then lambda fidelity (embedded data, cutting mixers:
    the run's mixer type, seeded `FIDELITY_MIX_SEED`, on
    `config.fidelity_samples` held-out images in batches of the run's batch
    size, networks in inference mode) and occlusion robustness (a 4x4 grid,
    masked to 0) on the test split.

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
    model = build_model(cell, config, train_x.shape[1:], run.seed)
    steps = config.epochs * math.ceil(len(train_x) / cell.batch_size)
    compile_model(model, config, steps)
    recorder = _EpochRecorder(test, evaluation_epochs(config))
    model.fit(
        train_x,
        train_y,
        batch_size=cell.batch_size,
        epochs=config.epochs,
        shuffle=True,
        verbose=verbose,
        callbacks=[recorder, keras.callbacks.TerminateOnNaN()],
    )
    if not recorder.epochs or recorder.epochs[-1] != len(recorder.losses):
        # Stopped early (a diverged run): measure where it stopped.
        recorder.epochs.append(len(recorder.losses))
        recorder.top1.append(top1_accuracy(model, *test))

    fidelity: dict[str, Any]
    if cell.dataset != "embedded":
        fidelity = {"skipped": "no object masks on this dataset"}
    elif cell.mixer not in FIDELITY_MIXERS:
        fidelity = {"skipped": _FIDELITY_SKIPPED[cell.mixer]}
    else:
        held_out = data.fidelity()
        mixer = make_mixer(cell.mixer, config, FIDELITY_MIX_SEED)
        result = lam_fidelity(model, mixer, held_out, batch_size=cell.batch_size)
        fidelity = {
            "pearson": _finite(result["pearson"]),
            "mae": _finite(result["mae"]),
            "mean_lam": _finite(np.mean(result["lam"])),
            "mean_true_lam": _finite(np.mean(result["true_lam"])),
            "mean_area_lam": _finite(np.mean(result["area_lam"])),
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
        "seed": run.seed,
        "epochs_run": len(recorder.losses),
        "diverged": len(recorder.losses) < config.epochs
        or not all(math.isfinite(v) for v in recorder.losses),
        "top1_epochs": recorder.epochs,
        "top1_history": [_finite(v) for v in recorder.top1],
        "final_top1": _finite(recorder.top1[-1]),
        "median_top1": _finite(median_of_last(recorder.top1, config.median_last)),
        "final_loss": _finite(recorder.losses[-1]),
        "fidelity": fidelity,
        "pearson": fidelity.get("pearson"),
        "mae": fidelity.get("mae"),
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


def matching(
    records: Iterable[dict[str, Any]], config: StudyConfig, backend: str
) -> dict[str, dict[str, Any]]:
    """Records of `config`'s settings on `backend`, by run key (the latest
    wins)."""
    signature = config.signature()
    return {
        r["key"]: r
        for r in records
        if r.get("signature") == signature and r.get("backend") == backend
    }


# ---------------------------------------------------------------------- #
# Time estimate
# ---------------------------------------------------------------------- #
def _heavy(run: RunSpec) -> bool:
    """Whether a run makes two passes a step (every SUMix method)."""
    from keras_sumix.study.grid import METHODS

    return METHODS[run.cell.method].sumix


def _images(run: RunSpec, data: StudyData) -> int:
    return len(data.split(run.cell.dataset, "train")[0])


def measure_run_seconds(
    config: StudyConfig, data: StudyData, epochs: int = 2
) -> dict[str, float]:
    """Seconds of a full run of MCE and of SUMix (CutMix, embedded data,
    default batch), extrapolated from `epochs` timed epochs of each.

    Returns:
        `{"mce": seconds, "sumix": seconds}`.
    """
    from keras_sumix.study.grid import Cell

    out = {}
    short = StudyConfig(**{**config.__dict__, "epochs": epochs})
    evaluations = len(evaluation_epochs(config))
    for method in ("mce", "sumix"):
        cell = Cell("embedded", "cutmix", method).resolved(config)
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
    measure: Callable[[], dict[str, float]] | None = None,
) -> float:
    """Estimated seconds of `runs`: from the recorded runs of the same
    settings when there are some of both kinds (one pass, two passes),
    else from `measure()` (a short timed run of each kind).

    The per-run time is scaled by the number of training images (the digits
    split is smaller than the embedded one); the mixer's own cost is ignored.
    """
    if not runs:
        return 0.0
    per_image: dict[bool, list[float]] = {True: [], False: []}
    for record in recorded.values():
        spec = RunSpec("?", "", Cell(*(record[k] for k in _CELL_FIELDS)), 0)
        per_image[_heavy(spec)].append(record["total_seconds"] / _images(spec, data))
    if not (per_image[True] and per_image[False]):
        measured = (measure or (lambda: measure_run_seconds(config, data)))()
        images = config.embedded_train
        per_image = {
            True: [measured["sumix"] / images],
            False: [measured["mce"] / images],
        }
    rate = {kind: statistics.median(values) for kind, values in per_image.items()}
    return sum(rate[_heavy(run)] * _images(run, data) for run in runs)


_CELL_FIELDS = (
    "dataset",
    "mixer",
    "method",
    "batch_size",
    "distance_scale",
    "semantic_scale",
)
