"""Seconds per training step with and without the backend's compiler:
XLA on TensorFlow (`compile(jit_compile=True)`), `torch.compile` on torch.

One worker process per backend. In each, three models on the same backbone
and batch are timed round-robin, each plain and compiled: a plain Keras
classifier (cross-entropy, no mixing: what the compiler does for Keras
itself), MixupModel (MCE) and SUMixModel (faithful), both with CutMix.

    python benchmarks/xla_step.py                 # small_cnn, batch 64, ~4 min
    python benchmarks/xla_step.py --quick         # tiny CNN, batch 8, seconds

Writes `benchmarks/results/xla_step.json` and `.md`
(`xla_step_quick.*` with `--quick`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _report import write_report

RESULTS = Path(__file__).resolve().parent / "results"
BACKENDS = ("tensorflow", "torch")
COMPILER = {"tensorflow": "XLA", "torch": "torch.compile", "jax": "jax.jit"}
MODELS = {
    "keras_ce": "plain Keras classifier (cross-entropy, no mixing)",
    "mce": "MixupModel (MCE) + CutMix",
    "sumix": "SUMixModel (faithful) + CutMix",
}


def _worker(args: argparse.Namespace) -> dict:
    """Time every model plain and compiled on the current backend."""
    import keras
    import numpy as np

    import keras_sumix as ks

    size, classes = 32, 10

    def backbone():
        widths = (8,) if args.quick else (32, 64, 128)
        return ks.models.small_cnn((size, size, 3), widths)

    def build(key: str, jit: bool) -> keras.Model:
        keras.utils.set_random_seed(0)
        if key == "keras_ce":
            inputs = keras.Input((size, size, 3))
            outputs = keras.layers.Dense(classes)(backbone()(inputs))
            model = keras.Model(inputs, outputs)
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        else:
            mixer = ks.layers.CutMix(alpha=0.2, seed=0)
            cls = ks.MixupModel if key == "mce" else ks.SUMixModel
            model, loss = cls(backbone(), classes, mixer), None
        model.compile(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
            loss=loss,
            jit_compile=jit,
        )
        return model

    rng = np.random.default_rng(0)
    x = keras.ops.convert_to_tensor(
        rng.random((args.batch, size, size, 3), dtype="float32")
    )
    y = keras.ops.convert_to_tensor(rng.integers(0, classes, args.batch), "int32")
    models, first_step = {}, {}
    for key in MODELS:
        for jit in (False, True):
            model = build(key, jit)
            start = time.perf_counter()
            model.train_on_batch(x, y)
            first_step[f"{key}/{jit}"] = time.perf_counter() - start
            for _ in range(args.warmup - 1):
                model.train_on_batch(x, y)
            assert model.jit_compile is jit
            models[(key, jit)] = model
    times = {k: [] for k in models}
    for _ in range(args.steps):
        for k, model in models.items():
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times[k].append(time.perf_counter() - start)
    rows = []
    for key in MODELS:
        plain = statistics.median(times[(key, False)])
        compiled = statistics.median(times[(key, True)])
        rows.append(
            {
                "model": key,
                "seconds_per_step": {"plain": plain, "compiled": compiled},
                "speedup": plain / compiled,
                "first_step_seconds": {
                    "plain": first_step[f"{key}/False"],
                    "compiled": first_step[f"{key}/True"],
                },
                "all_seconds": {
                    "plain": times[(key, False)],
                    "compiled": times[(key, True)],
                },
            }
        )
    return {
        "backend": keras.backend.backend(),
        "compiler": COMPILER[keras.backend.backend()],
        "rows": rows,
    }


def _run_backend(backend: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--worker", *_shared_flags(args)]
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{backend} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _shared_flags(args: argparse.Namespace) -> list[str]:
    flags = ["--batch", str(args.batch), "--steps", str(args.steps)]
    flags += ["--warmup", str(args.warmup)]
    return flags + (["--quick"] if args.quick else [])


def _markdown(report: dict) -> str:
    lines = [
        f"Backbone: {report['backbone']}, 32x32, batch {report['batch']}, SGD; "
        f"median of {report['steps']} steps (round-robin) after {report['warmup']} "
        f"warm-up steps; {report['machine']['cpus']} CPU cores, no accelerator "
        f"(1-min load average {report['machine']['load_average_1min'][0]:.1f} "
        f"before, {report['machine']['load_average_1min'][1]:.1f} after). "
        "Speed-up = plain / compiled (> 1: the compiler helps). The first step "
        "includes tracing and compilation.",
        "",
        "| backend | compiler | model | plain s/step | compiled s/step | speed-up "
        "| first step plain / compiled (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for block in report["backends"]:
        for row in block["rows"]:
            s, first = row["seconds_per_step"], row["first_step_seconds"]
            lines.append(
                f"| {block['backend']} | {block['compiler']} | {row['model']} | "
                f"{s['plain']:.4f} | {s['compiled']:.4f} | {row['speedup']:.2f}x | "
                f"{first['plain']:.1f} / {first['compiled']:.1f} |"
            )
    lines += ["", *(f"- `{k}`: {v}" for k, v in report["models"].items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict | None:
    """Run the benchmark (or, with `--worker`, one backend's part of it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny CNN, few steps")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS))
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batch is None:
        args.batch = 8 if args.quick else 64
    if args.steps is None:
        args.steps = 3 if args.quick else 10
    if args.worker:
        print(json.dumps(_worker(args)))
        return None
    unknown = set(args.backends) - set(COMPILER)
    if unknown:
        parser.error(f"unknown backends {sorted(unknown)}; choose from {BACKENDS}")
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    report = {
        "backbone": "tiny CNN (8 filters)" if args.quick else "small_cnn (32-64-128)",
        "batch": args.batch,
        "steps": args.steps,
        "warmup": args.warmup,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%d"),
        "models": MODELS,
        "backends": [_run_backend(b, args) for b in args.backends],
    }
    report["wall_seconds"] = time.perf_counter() - started
    # Other work on the (shared) machine slows the steps: say how much ran.
    report["machine"]["load_average_1min"] = [load_before, os.getloadavg()[0]]
    name = "xla_step_quick" if args.quick else "xla_step"
    print(write_report(report, args.output or RESULTS / f"{name}.json", _markdown))
    return report


if __name__ == "__main__":
    main()
