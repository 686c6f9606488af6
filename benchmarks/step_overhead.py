"""Seconds per training step of SUMixModel vs MixupModel, on each backend.

Same backbone, mixer, batch and optimizer; one worker process per backend
(the Keras backend is fixed at import), the models timed round-robin inside
it so that machine noise hits them alike. Reported as ratios to the MCE step.

    python benchmarks/step_overhead.py                 # ResNet-18 (CIFAR), batch 32
    python benchmarks/step_overhead.py --quick         # tiny CNN, seconds

Writes `benchmarks/results/step_overhead.json` and `.md`.
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

RESULTS = Path(__file__).resolve().parent / "results"
BACKENDS = ("tensorflow", "jax", "torch")
GOALS = {"sumix": 2.1, "sumix_fast": 1.6}
VARIANTS = {
    "mce": "MixupModel (MCE, one pass)",
    "sumix": "SUMixModel (faithful: two passes)",
    "sumix_fast": "SUMixModel(raw_pass_gradient=False)",
}


def _worker(args: argparse.Namespace) -> dict:
    """Time the three variants on the current backend; return a dict."""
    import keras
    import numpy as np

    import keras_sumix as ks

    def backbone():
        if args.quick:
            inputs = keras.Input((32, 32, 3))
            x = keras.layers.Conv2D(16, 3, padding="same")(inputs)
            x = keras.layers.BatchNormalization()(x)
            return keras.Model(inputs, keras.layers.Activation("relu")(x))
        return ks.models.resnet18_cifar()

    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 32, 32, 3), dtype="float32")
    y = rng.integers(0, 100, args.batch).astype("int32")
    models = {}
    for key in VARIANTS:
        keras.utils.set_random_seed(0)
        mixer = ks.layers.CutMix(alpha=0.2, seed=0)
        if key == "mce":
            model = ks.MixupModel(backbone(), 100, mixer)
        else:
            model = ks.SUMixModel(
                backbone(), 100, mixer, raw_pass_gradient=key == "sumix"
            )
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
        for _ in range(args.warmup):
            model.train_on_batch(x, y)
        models[key] = model
    times = {key: [] for key in models}
    for _ in range(args.steps):
        for key, model in models.items():
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times[key].append(time.perf_counter() - start)
    median = {key: statistics.median(values) for key, values in times.items()}
    return {
        "backend": keras.backend.backend(),
        "seconds_per_step": median,
        "all_seconds": times,
        "ratio_to_mce": {key: median[key] / median["mce"] for key in median},
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
        f"Backbone: {report['backbone']}, CutMix(alpha=0.2), batch {report['batch']}, "
        f"32x32, SGD; median of {report['steps']} steps after {report['warmup']} "
        "warm-up steps; CPU, 2 cores.",
        "",
        "| backend | MCE s/step | SUMix s/step | SUMix / MCE (goal <= 2.1) "
        "| fast SUMix s/step | fast / MCE (goal <= 1.6) |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["backends"]:
        s, r = row["seconds_per_step"], row["ratio_to_mce"]
        lines.append(
            f"| {row['backend']} | {s['mce']:.3f} | {s['sumix']:.3f} | "
            f"{r['sumix']:.2f}x {'PASS' if r['sumix'] <= GOALS['sumix'] else 'FAIL'} | "
            f"{s['sumix_fast']:.3f} | {r['sumix_fast']:.2f}x "
            f"{'PASS' if r['sumix_fast'] <= GOALS['sumix_fast'] else 'FAIL'} |"
        )
    lines += [
        "",
        "Fast SUMix = `raw_pass_gradient=False`: the clean pass runs forward only "
        "(its outputs are constants), so the uncertainty head learns from the mixed "
        "pass alone; the corrected lam is unchanged (it never carries gradient).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict | None:
    """Run the benchmark (or, with `--worker`, one backend's part of it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny CNN, few steps")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS))
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = 3 if args.quick else 8
    if args.worker:
        print(json.dumps(_worker(args)))
        return None
    unknown = set(args.backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backends {sorted(unknown)}; choose from {BACKENDS}")
    report = {
        "backbone": "tiny CNN" if args.quick else "resnet18_cifar",
        "batch": args.batch,
        "steps": args.steps,
        "warmup": args.warmup,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%d"),
        "goals": GOALS,
        "variants": VARIANTS,
        "backends": [_run_backend(b, args) for b in args.backends],
    }
    name = "step_overhead_quick" if args.quick else "step_overhead"
    output = args.output or RESULTS / f"{name}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2))
    output.with_suffix(".md").write_text(_markdown(report))
    print(_markdown(report))
    return report


if __name__ == "__main__":
    main()
