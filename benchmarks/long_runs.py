"""Long SUMixModel runs: is the loss finite at every step, and the corrected
lam in [0, 1], in every `lambda_mode` x `reduction`, at batch size 2 (where
lam's normalisation is most fragile) and 256 (where `semantic_scale = N`
saturates `exp(-N x)`)? And how long is a step?

Each configuration trains a tiny model (3x3 conv with 8 filters + global
average pooling) on the embedded dataset at 8x8 pixels, CutMix with the
paper's alpha (0.2, so lam is often near 0 or 1), SGD with momentum 0.9
(learning rate 0.1, 0.02 at batch size 2), with one `fit` of
`--steps` steps. Every step's loss is read back (the logged running mean is
non-finite from the first non-finite step on), and the extremes of the
per-sample corrected lam are tracked inside the train step. The step time is
the median over the steps after the first 20 (compilation excluded).

    KERAS_BACKEND=jax python benchmarks/long_runs.py            # 2,000 steps
    python benchmarks/long_runs.py --steps 200 --output /tmp/long.json

Writes `benchmarks/results/long_runs.json` and `.md` (the backend is
`KERAS_BACKEND`, JAX if unset). `tests/test_long_runs.py` (slow) runs the
same checks.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from _report import write_report

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
from keras import ops

import keras_sumix as ks
from keras_sumix.options import get_option

LAMBDA_MODES = get_option("lambda_mode").choices
REDUCTIONS = get_option("reduction").choices

RESULTS = Path(__file__).resolve().parent / "results"
BATCH_SIZES = (2, 256)
IMAGE_SIZE = 8
WARMUP = 20


class _Extreme(keras.metrics.Metric):
    """Running minimum or maximum of a tensor (NaN sticks)."""

    def __init__(self, name: str, kind: str) -> None:
        super().__init__(name=name)
        self.kind = kind
        self.start = np.inf if kind == "min" else -np.inf
        self.value = self.add_variable(
            shape=(), initializer=keras.initializers.Constant(self.start), name="v"
        )

    def update_state(self, values: Any) -> None:
        values = ops.cast(values, "float32")
        pick = ops.minimum if self.kind == "min" else ops.maximum
        reduce = ops.min if self.kind == "min" else ops.max
        current = ops.convert_to_tensor(self.value)
        new = pick(current, reduce(values))
        nan = ops.logical_or(ops.isnan(current), ops.any(ops.isnan(values)))
        self.value.assign(ops.where(nan, float("nan"), new))

    def result(self) -> Any:
        return ops.convert_to_tensor(self.value)

    def reset_state(self) -> None:
        self.value.assign(self.start)


class LamProbe(ks.SUMixModel):
    """SUMixModel that also logs `lam_min` / `lam_max`, the extremes of the
    per-sample corrected lam over the epoch's steps."""

    def _term_metrics(self) -> list[keras.metrics.Metric]:
        extremes = [_Extreme("lam_min", "min"), _Extreme("lam_max", "max")]
        return [*super()._term_metrics(), *extremes]

    def _loss(self, labels, raw, mixed, mix):
        out = super()._loss(labels, raw, mixed, mix)
        object.__setattr__(self, "_probe_lam", out["lam"])  # read by _terms
        return out

    def _terms(self, images, labels, dense, weight):
        terms, y_pred = super()._terms(images, labels, dense, weight)
        lam = self.__dict__.pop("_probe_lam")
        return {**terms, "lam_min": lam, "lam_max": lam}, y_pred


class _StepClock(keras.callbacks.Callback):
    """Reads every step's logged loss back (which also waits for the step)
    and the time it ended."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []
        self.losses: list[float] = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.times = [time.perf_counter()]

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.losses.append(float(logs["loss"]))
        self.times.append(time.perf_counter())


def _model(lambda_mode: str, reduction: str, seed: int) -> LamProbe:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    backbone = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    mixer = ks.layers.CutMix(alpha=0.2, seed=seed)
    return LamProbe(backbone, 10, mixer, lambda_mode=lambda_mode, reduction=reduction)


def _data(batch_size: int, seed: int):
    import tensorflow as tf

    data = ks.data.occluded_objects(512, image_size=IMAGE_SIZE, seed=seed)
    ds = tf.data.Dataset.from_tensor_slices((data.images, data.labels))
    ds = ds.shuffle(512, seed=seed).repeat()
    return ds.batch(batch_size, drop_remainder=True).prefetch(8)


def default_learning_rate(batch_size: int) -> float:
    """0.1, scaled down for small batches (at batch 2, 0.1 with momentum 0.9
    kills the tiny network: constant logits, which leave the loss blind to
    the corrected lam)."""
    return min(0.1, 0.01 * batch_size)


def run_one(
    lambda_mode: str,
    reduction: str,
    batch_size: int,
    steps: int,
    seed: int = 0,
    learning_rate: float | None = None,
) -> dict[str, Any]:
    """Train one configuration for `steps` steps; return its record."""
    if learning_rate is None:
        learning_rate = default_learning_rate(batch_size)
    model = _model(lambda_mode, reduction, seed)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9))
    clock = _StepClock()
    start = time.perf_counter()
    history = model.fit(
        _data(batch_size, seed),
        steps_per_epoch=steps,
        epochs=1,
        verbose=0,
        callbacks=[clock],
        shuffle=False,  # the dataset shuffles
    ).history
    wall = time.perf_counter() - start
    losses = np.asarray(clock.losses)
    bad = np.flatnonzero(~np.isfinite(losses))
    durations = np.diff(clock.times)
    timed = durations[WARMUP:] if len(durations) > WARMUP else durations
    keras.backend.clear_session()
    return {
        "lambda_mode": lambda_mode,
        "reduction": reduction,
        "batch_size": batch_size,
        "steps": len(losses),
        "finite": bool(len(bad) == 0),
        "first_nonfinite_step": int(bad[0]) if len(bad) else None,
        "final_loss": float(history["loss"][-1]),
        "lam_min": float(history["lam_min"][-1]),
        "lam_max": float(history["lam_max"][-1]),
        "lam_sumix_mean": float(history["lam_sumix"][-1]),
        "median_step_ms": 1000 * statistics.median(timed.tolist()),
        "first_step_s": float(durations[0]),
        "wall_s": wall,
    }


def run(
    steps: int = 2000,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
    lambda_modes: tuple[str, ...] = LAMBDA_MODES,
    reductions: tuple[str, ...] = REDUCTIONS,
    seed: int = 0,
) -> dict[str, Any]:
    """Every configuration; the report (settings, machine, runs)."""
    runs = [
        run_one(mode, reduction, batch, steps, seed)
        for batch, mode, reduction in itertools.product(
            batch_sizes, lambda_modes, reductions
        )
    ]
    return {
        "settings": {
            "steps": steps,
            "batch_sizes": list(batch_sizes),
            "image_size": IMAGE_SIZE,
            "model": "Conv2D(8, 3) + GAP, 10 classes",
            "mixer": "CutMix(alpha=0.2)",
            "optimizer": "SGD(min(0.1, 0.01 * batch), momentum=0.9)",
            "semantic_scale": "None (= batch size)",
            "seed": seed,
        },
        "machine": {
            "backend": keras.backend.backend(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average": list(os.getloadavg()),  # at the end of the runs
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "keras": keras.__version__,
            "date": time.strftime("%Y-%m-%d"),
        },
        "runs": runs,
    }


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [
        f"# Long runs ({machine['backend']}, {machine['cpus']} CPUs, load "
        f"{machine['load_average'][0]:.1f})",
        "",
        "| batch | lambda_mode | reduction | steps | finite | lam min | lam max "
        "| final loss | median step (ms) |",
        "|---:|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in report["runs"]:
        lines.append(
            f"| {r['batch_size']} | {r['lambda_mode']} | {r['reduction']} | "
            f"{r['steps']} | {'yes' if r['finite'] else 'NO'} | {r['lam_min']:.4f} | "
            f"{r['lam_max']:.4f} | {r['final_loss']:.3f} | "
            f"{r['median_step_ms']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=BATCH_SIZES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS / "long_runs.json")
    args = parser.parse_args(argv)
    report = run(args.steps, tuple(args.batch_sizes), seed=args.seed)
    print(write_report(report, args.output, markdown, indent=1))
    return report


if __name__ == "__main__":
    main()
