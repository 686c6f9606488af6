"""What `RandomChoice` costs over the mixer it chose.

`RandomChoice([MixUp, FMix], probabilities=[1, 0])` always picks MixUp, so
it should cost what MixUp alone costs: only the chosen mixer runs (before,
every candidate ran and one result was kept, so FMix, never chosen, was paid
on every batch). Both are timed on the current Keras backend, on a batch of
float32 images, round-robin (the machine is shared: noise hits both alike),
and reported as the median over rounds of the RandomChoice / MixUp time
ratio, eagerly (`mixer.mix(x)`) and compiled (`mixer.mix(x, seed=...)` in
`jax.jit`, `tf.function(jit_compile=True)`; torch runs eagerly only).

    python benchmarks/random_choice.py             # batch 128, 32x32, 30 rounds
    python benchmarks/random_choice.py --quick     # a few rounds, seconds

Writes `benchmarks/results/random_choice.json` and `.md`.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import keras
import numpy as np
from _report import write_report

import keras_sumix
from keras_sumix.layers import FMix, MixUp, RandomChoice

RESULTS = Path(__file__).resolve().parent / "results"


def _compiled(fn):
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.jit(fn)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True)
    return None


def _timers(mixer, images) -> dict:
    """Callables running one mix to completion, by mode."""

    def eager():
        keras.ops.convert_to_numpy(mixer.mix(images).images)

    timers = {"eager": eager}
    compiled = _compiled(lambda x, seed: mixer.mix(x, seed=seed).images)
    if compiled is not None:
        seeds = iter(range(10**9))

        def jitted():
            seed = keras.ops.convert_to_tensor([next(seeds), 0], "int32")
            keras.ops.convert_to_numpy(compiled(images, seed))

        timers["compiled"] = jitted
    return timers


def _seconds(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def run(batch: int, size: int, rounds: int, calls: int) -> dict:
    images = keras.ops.convert_to_tensor(
        np.random.default_rng(0).random((batch, size, size, 3), dtype="float32")
    )
    mixers = {
        "mixup": MixUp(seed=0),
        "random_choice": RandomChoice([MixUp(), FMix()], probabilities=[1, 0], seed=0),
    }
    timers = {name: _timers(mixer, images) for name, mixer in mixers.items()}
    modes = {}
    for mode in timers["mixup"]:
        for name in mixers:  # warm-up: tracing, compilation
            timers[name][mode]()
        times = {name: [] for name in mixers}
        for round_ in range(rounds):
            order = list(mixers) if round_ % 2 == 0 else list(mixers)[::-1]
            for name in order:
                times[name].append(_seconds(timers[name][mode], calls))
        ratios = [
            c / m for c, m in zip(times["random_choice"], times["mixup"], strict=True)
        ]
        modes[mode] = {
            "mixup_ms": 1e3 * statistics.median(times["mixup"]),
            "random_choice_ms": 1e3 * statistics.median(times["random_choice"]),
            "ratio": statistics.median(ratios),
        }
    return {
        "setting": (
            f"RandomChoice([MixUp, FMix], probabilities=[1, 0]) against MixUp "
            f"alone, mix of a float32 batch of {batch}x{size}x{size}x3, "
            f"{keras.backend.backend()} backend, CPU, median of {rounds} rounds "
            f"of {calls} calls"
        ),
        "backend": keras.backend.backend(),
        "keras_sumix": keras_sumix.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.machine(),
        "batch": batch,
        "size": size,
        "modes": modes,
    }


def markdown(report: dict) -> str:
    lines = [
        "# RandomChoice over the mixer it chose",
        "",
        report["setting"] + ".",
        "",
        "| mode | MixUp (ms) | RandomChoice (ms) | ratio |",
        "|---|---|---|---|",
    ]
    for mode, row in report["modes"].items():
        lines.append(
            f"| {mode} | {row['mixup_ms']:.2f} | {row['random_choice_ms']:.2f} "
            f"| {row['ratio']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=128, help="images per batch")
    parser.add_argument("--size", type=int, default=32, help="image side")
    parser.add_argument("--rounds", type=int, default=30, help="timed rounds")
    parser.add_argument("--calls", type=int, default=5, help="mixes per round")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--output", type=Path, default=None, help="the JSON to write")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.calls = 3, 1
    output = args.output or RESULTS / (
        "random_choice_quick.json" if args.quick else "random_choice.json"
    )
    report = run(args.batch, args.size, args.rounds, args.calls)
    print(write_report(report, output, markdown))


if __name__ == "__main__":
    main()
