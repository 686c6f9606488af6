"""Throughput of `fit` with and without its divergence check, per backend.

`MixupModel.fit` / `SUMixModel.fit` add `keras_sumix.callbacks.StopOnNaN`.
A callback that overrides a batch-end hook makes Keras run every batch-end
callback on the training loop, reading each batch's logs there (a
device-to-host sync per step), unless it is marked `async_safe`, as
`StopOnNaN` is. Three ways to run the same `fit`, timed round-robin in one
process per backend so that machine noise hits them alike:

- `none`: no divergence check (`keras.Model.fit` on the model);
- `stop_on_nan`: `model.fit`, which adds the async-safe `StopOnNaN`;
- `per_step`: `model.fit(callbacks=[keras.callbacks.TerminateOnNaN()])`, a
  per-batch check without `async_safe` (what `StopOnNaN` was before).

Setting: `MixupModel(small_cnn(), 10, MixUp())`, 32x32 images, batch 32, SGD,
`steps_per_epoch` steps per `fit` (one epoch, `verbose=0`), where per-step
overhead shows. Reported: median seconds per step over the rounds, and each
way's throughput relative to `none`.

    python benchmarks/nan_check.py                        # tensorflow, jax, torch
    python benchmarks/nan_check.py --quick --backends jax  # seconds

Writes `benchmarks/results/nan_check.json` and `.md`.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

from _report import write_report
from step_overhead import _subprocess, check_backends, step_arguments, worker_mode

RESULTS = Path(__file__).resolve().parent / "results"
WAYS = {
    "none": "no divergence check (keras.Model.fit)",
    "stop_on_nan": "model.fit: StopOnNaN added (async-safe)",
    "per_step": "model.fit with keras.callbacks.TerminateOnNaN (per-step sync)",
}


def _fit(model, way: str, x, y, steps: int) -> float:
    """Seconds per step of one epoch of `steps` steps, fitted `way`."""
    import keras

    kwargs = {"batch_size": len(x) // steps, "epochs": 1, "verbose": 0}
    start = time.perf_counter()
    if way == "none":
        keras.Model.fit(model, x, y, **kwargs)
    elif way == "stop_on_nan":
        model.fit(x, y, **kwargs)
    else:
        model.fit(x, y, callbacks=[keras.callbacks.TerminateOnNaN()], **kwargs)
    return (time.perf_counter() - start) / steps


def _worker(args: argparse.Namespace) -> dict:
    """Time the three ways on the current backend, round-robin, one model
    each (same weights, same data)."""
    import keras
    import numpy as np

    import keras_sumix as ks

    rng = np.random.default_rng(0)
    n = args.batch * args.steps
    x = rng.random((n, 32, 32, 3), dtype="float32")
    y = rng.integers(0, 10, n).astype("int32")
    widths = (8, 16) if args.quick else (32, 64, 128)
    models = {}
    for way in WAYS:
        keras.utils.set_random_seed(0)
        model = ks.MixupModel(
            ks.models.small_cnn((32, 32, 3), widths), 10, ks.layers.MixUp(seed=0)
        )
        model.compile(optimizer=keras.optimizers.SGD(0.01))
        for _ in range(args.warmup):
            _fit(model, way, x, y, args.steps)
        models[way] = model
    seconds = {way: [] for way in WAYS}
    for _ in range(args.rounds):
        for way, model in models.items():
            seconds[way].append(_fit(model, way, x, y, args.steps))
    median = {way: statistics.median(values) for way, values in seconds.items()}
    return {
        "backend": keras.backend.backend(),
        "device": _device(),
        "seconds_per_step": median,
        "all_seconds_per_step": seconds,
        "throughput_to_none": {way: median["none"] / median[way] for way in WAYS},
    }


def _device() -> str:
    """ "GPU" when the backend sees one, else "CPU"."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return "GPU" if jax.default_backend() == "gpu" else "CPU"
    if backend == "torch":
        import torch

        return "GPU" if torch.cuda.is_available() else "CPU"
    import tensorflow as tf

    return "GPU" if tf.config.list_physical_devices("GPU") else "CPU"


def _markdown(report: dict) -> str:
    lines = [
        f"MixupModel(small_cnn(widths={report['widths']}), 10, MixUp()), 32x32, "
        f"batch {report['batch']}, SGD; `fit` of one epoch of {report['steps']} "
        f"steps, verbose=0; median of {report['rounds']} rounds after "
        f"{report['warmup']} warm-up fit(s); {report['machine']['cpus']} CPU cores, "
        f"load average {report['load']:.1f} at the start.",
        "",
        "| backend | device | none s/step | StopOnNaN s/step | per-step s/step "
        "| StopOnNaN throughput / none | per-step throughput / none |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["backends"]:
        s, r = row["seconds_per_step"], row["throughput_to_none"]
        lines.append(
            f"| {row['backend']} | {row['device']} | {s['none'] * 1e3:.2f} ms | "
            f"{s['stop_on_nan'] * 1e3:.2f} ms | {s['per_step'] * 1e3:.2f} ms | "
            f"{r['stop_on_nan']:.3f} | {r['per_step']:.3f} |"
        )
    lines += ["", *(f"- `{way}`: {text}" for way, text in WAYS.items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict | None:
    """Run the benchmark (or, with `--worker`, one backend's part of it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    step_arguments(parser, warmup=1)
    parser.add_argument("--rounds", type=int, default=None, help="fits per way")
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = 5 if args.quick else 100
    if args.rounds is None:
        args.rounds = 1 if args.quick else 5
    if worker_mode(args, _worker):
        return None
    check_backends(parser, args.backends)
    flags = ["--batch", str(args.batch), "--steps", str(args.steps)]
    flags += ["--warmup", str(args.warmup), "--rounds", str(args.rounds)]
    flags += ["--quick"] if args.quick else []
    report = {
        "quick": args.quick,
        "widths": [8, 16] if args.quick else [32, 64, 128],
        "load": os.getloadavg()[0],
        "batch": args.batch,
        "steps": args.steps,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%d"),
        "ways": WAYS,
        "backends": [
            _subprocess(b, ["--worker", *flags], __file__) for b in args.backends
        ],
    }
    name = "nan_check_quick" if args.quick else "nan_check"
    output = args.output or RESULTS / f"{name}.json"
    print(write_report(report, output, _markdown))
    return report


if __name__ == "__main__":
    main()
