"""Seconds per training step of SUMixModel vs MixupModel, on each backend.

Same backbone, mixer, batch and optimizer; one worker process per backend
(the Keras backend is fixed at import), the models timed round-robin inside
it so that machine noise hits them alike. Reported as ratios to the MCE step.

    python benchmarks/step_overhead.py                 # ResNet-18 (CIFAR), batch 32
    python benchmarks/step_overhead.py --quick         # tiny CNN, seconds
    python benchmarks/step_overhead.py --backbone deit_small --batch 8 --memory

`--backbone deit_small` / `swin_tiny` time the paper's transformers in a
CPU-sized setting: the full networks (DeiT-S: 12 layers, width 384; Swin-T:
width 96, depths 2-2-6-2) on 32x32 images, DeiT-S with 4x4 patches (64
patches and the class token), Swin-T with 2x2 patches and 2x2 windows (token
grids 16, 8, 4, 2), AdamW; `--quick` makes them one-layer toys. `--memory`
adds, per backend, the peak memory of the MCE and SUMix steps, each model in
a process of its own: the growth of the peak resident set size (RSS) over the
RSS of the built, compiled-for-nothing-yet model, through warm-up and two
steps (compilation included), and SUMix's ratio to MCE.

Writes `benchmarks/results/step_overhead.json` and `.md`
(`step_overhead_<backbone>.json` for another backbone).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _report import write_report

RESULTS = Path(__file__).resolve().parent / "results"
BACKENDS = ("tensorflow", "jax", "torch")
GOALS = {"sumix": 2.1, "sumix_fast": 1.6}
VARIANTS = {
    "mce": "MixupModel (MCE, one pass)",
    "sumix": "SUMixModel (faithful: two passes)",
    "sumix_fast": "SUMixModel(raw_pass_gradient=False)",
}


BACKBONES = ("resnet18_cifar", "deit_small", "swin_tiny")
TRANSFORMERS = ("deit_small", "swin_tiny")
# The CPU-sized settings of the transformers (see the module docstring).
_CPU_SIZED = {
    "deit_small": {"image_size": 32, "patch_size": 4},
    "swin_tiny": {"image_size": 32, "patch_size": 2, "window_size": 2},
}
_TOY = {
    "deit_small": {"num_layers": 1, "num_heads": 2, "hidden_dim": 16, "mlp_dim": 32},
    "swin_tiny": {
        "window_size": 4,
        "embed_dim": 8,
        "depths": (1, 1),
        "num_heads": (1, 2),
    },
}


def _backbone(args: argparse.Namespace):
    import keras

    import keras_sumix as ks

    if args.backbone in TRANSFORMERS:
        kwargs = dict(_CPU_SIZED[args.backbone])
        if args.quick:
            kwargs.update(_TOY[args.backbone])
        return getattr(ks.models, args.backbone)(**kwargs)
    if args.quick:
        inputs = keras.Input((32, 32, 3))
        x = keras.layers.Conv2D(16, 3, padding="same")(inputs)
        x = keras.layers.BatchNormalization()(x)
        return keras.Model(inputs, keras.layers.Activation("relu")(x))
    return ks.models.resnet18_cifar()


def _build(args: argparse.Namespace, key: str):
    """One variant's model, compiled (the transformers with AdamW, as their
    recipes; the CNNs with SGD)."""
    import keras

    import keras_sumix as ks

    keras.utils.set_random_seed(0)
    alpha = 2.0 if args.backbone in TRANSFORMERS else 0.2  # the paper's CutMix
    mixer = ks.layers.CutMix(alpha=alpha, seed=0)
    if key == "mce":
        model = ks.MixupModel(_backbone(args), 100, mixer)
    else:
        model = ks.SUMixModel(
            _backbone(args), 100, mixer, raw_pass_gradient=key == "sumix"
        )
    if args.backbone in TRANSFORMERS:
        optimizer = keras.optimizers.AdamW(1e-3, weight_decay=0.05)
    else:
        optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    model.compile(optimizer=optimizer)
    return model


def _batch(args: argparse.Namespace):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 32, 32, 3), dtype="float32")
    return x, rng.integers(0, 100, args.batch).astype("int32")


def _rss_mb() -> float:
    """The current resident set size, MiB (Linux)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")  # pragma: no cover


def _peak_mb() -> float:
    """The peak resident set size of this process so far, MiB (Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_arguments(
    parser: argparse.ArgumentParser,
    batch: int | None = 32,
    warmup: int = 2,
    memory: str | None = None,
) -> None:
    """The flags every step benchmark takes: `--quick`, `--batch`,
    `--steps` (None: the script's default), `--warmup`, `--backends`,
    `--output` and the hidden `--worker` (one backend's part); with
    `memory` (its help text) `--memory` and the hidden `--memory-variant`
    (one model's peak memory, `measure_memory`)."""
    parser.add_argument("--quick", action="store_true", help="tiny CNN, few steps")
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS))
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    if memory:
        parser.add_argument("--memory", action="store_true", help=memory)
        parser.add_argument("--memory-variant", default=None, help=argparse.SUPPRESS)


def merge_argument(parser: argparse.ArgumentParser) -> None:
    """`--merge REPORT...`: merge single-backend reports (`merge_reports`)."""
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        default=None,
        help="merge reports of single backends (run one after another) into "
        "--output instead of running",
    )


def memory_to_baselines(
    backend: str, flags: list[str], script: str, baseline_of: dict[str, str]
) -> dict:
    """Peak memory of each model of `baseline_of` (model -> the model its
    ratios are to), each in a fresh `script --memory-variant KEY` process
    under `backend`, with `peak_rss_to_cutmix` and `step_peak_to_cutmix`:
    the ratios of its peak RSS and of its step's growth to its baseline's."""
    memory = {
        key: _subprocess(backend, ["--memory-variant", key, *flags], script)
        for key in baseline_of
    }
    ratios = {"peak_rss_to_cutmix": {}, "step_peak_to_cutmix": {}}
    for key, m in memory.items():
        base = memory[baseline_of[key]]
        ratios["peak_rss_to_cutmix"][key] = m["peak_rss_mb"] / base["peak_rss_mb"]
        ratios["step_peak_to_cutmix"][key] = m["step_peak_mb"] / max(
            base["step_peak_mb"], 1e-9
        )
    return {**memory, **ratios}


def worker_mode(args: argparse.Namespace, worker, build=None) -> bool:
    """Run a hidden one-backend mode if `args` asks for one, printing its
    JSON (`--worker`: `worker(args)`; `--memory-variant KEY`:
    `measure_memory(args, build, KEY)`); True when one ran."""
    if args.worker:
        print(json.dumps(worker(args)))
        return True
    if getattr(args, "memory_variant", None):
        print(json.dumps(measure_memory(args, build, args.memory_variant)))
        return True
    return False


def run_settings(args: argparse.Namespace) -> dict:
    """What every step benchmark's report records of its run: `quick`, the
    load average at the start, batch, steps, warm-up, machine and date."""
    return {
        "quick": args.quick,
        "load": os.getloadavg()[0],
        "batch": args.batch,
        "steps": args.steps,
        "warmup": args.warmup,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%d"),
    }


def check_backends(parser: argparse.ArgumentParser, backends, known=BACKENDS) -> None:
    """Exit with a usage error when `backends` names one outside `known`."""
    unknown = set(backends) - set(known)
    if unknown:
        parser.error(f"unknown backends {sorted(unknown)}; choose from {BACKENDS}")


def measure_memory(args: argparse.Namespace, build, key: str) -> dict:
    """Peak memory of one model's training steps (`build(args, key)`), in a
    fresh process: the peak RSS through the warm-up and two steps, and its
    growth over the RSS of the built model."""
    import keras

    x, y = _batch(args)
    model = build(args, key)
    model.build((None, *x.shape[1:]))
    base = _rss_mb()
    for _ in range(args.warmup + 2):
        model.train_on_batch(x, y)
    peak = _peak_mb()
    return {
        "backend": keras.backend.backend(),
        "variant": key,
        "rss_built_mb": base,
        "peak_rss_mb": peak,
        "step_peak_mb": max(peak - base, 0.0),
    }


def time_round_robin(
    args: argparse.Namespace, build, keys, reference: str, ratio_key: str
) -> dict:
    """Time one `train_on_batch` of each model, round-robin, so that machine
    noise hits them alike: `build(args, key)` for each of `keys`, each warmed
    up `args.warmup` steps, then `args.steps` rounds on `_batch(args)`.

    Returns:
        `{"backend", "seconds_per_step" (medians), "all_seconds", ratio_key}`,
        `ratio_key` holding each median over the `reference` model's.
    """
    import keras

    x, y = _batch(args)
    models = {}
    for key in keys:
        model = build(args, key)
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
        ratio_key: {key: median[key] / median[reference] for key in median},
    }


def _worker(args: argparse.Namespace) -> dict:
    """Time the three variants on the current backend; return a dict."""
    return time_round_robin(args, _build, VARIANTS, "mce", "ratio_to_mce")


def _subprocess(backend: str, flags: list[str], script: str = __file__) -> dict:
    """Run `script` with `flags` under `backend`; its last stdout line is JSON."""
    command = [sys.executable, script, *flags]
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{backend} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run_backend(backend: str, args: argparse.Namespace) -> dict:
    row = _subprocess(backend, ["--worker", *_shared_flags(args)])
    if args.memory:
        memory = {
            key: _subprocess(backend, ["--memory-variant", key, *_shared_flags(args)])
            for key in ("mce", "sumix")
        }
        row["memory"] = {
            **memory,
            "sumix_to_mce_step_peak": memory["sumix"]["step_peak_mb"]
            / max(memory["mce"]["step_peak_mb"], 1e-9),
            "sumix_to_mce_peak_rss": memory["sumix"]["peak_rss_mb"]
            / memory["mce"]["peak_rss_mb"],
        }
    return row


def _shared_flags(args: argparse.Namespace) -> list[str]:
    flags = ["--batch", str(args.batch), "--steps", str(args.steps)]
    flags += ["--warmup", str(args.warmup), "--backbone", args.backbone]
    return flags + (["--quick"] if args.quick else [])


def _setting(report: dict) -> str:
    backbone = report["backbone"]
    if backbone in ("deit_small", "swin_tiny"):
        sized = {
            "deit_small": "DeiT-S (full size) with 4x4 patches",
            "swin_tiny": "Swin-T (full size) with 2x2 patches and 2x2 windows",
        }[backbone]
        if report.get("quick"):
            sized = f"a one-layer {backbone} toy"
        return f"Backbone: {sized}, CutMix(alpha=2.0), AdamW"
    return f"Backbone: {backbone}, CutMix(alpha=0.2), SGD"


def _markdown(report: dict) -> str:
    lines = [
        f"{_setting(report)}, batch {report['batch']}, 32x32; median of "
        f"{report['steps']} steps after {report['warmup']} warm-up steps; CPU, "
        f"{report['machine']['cpus']} cores"
        + (
            f", load average {report['load']:.1f} at the start."
            if "load" in report
            else "."
        ),
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
    if any("memory" in row for row in report["backends"]):
        lines += [
            "",
            "| backend | MCE peak RSS MiB (step growth) | SUMix peak RSS MiB (step "
            "growth) | SUMix / MCE, step growth | SUMix / MCE, peak RSS |",
            "|---|---|---|---|---|",
        ]
        for row in report["backends"]:
            m = row.get("memory")
            if not m:
                continue
            lines.append(
                f"| {row['backend']} | {m['mce']['peak_rss_mb']:.0f} "
                f"({m['mce']['step_peak_mb']:.0f}) | {m['sumix']['peak_rss_mb']:.0f} "
                f"({m['sumix']['step_peak_mb']:.0f}) | "
                f"{m['sumix_to_mce_step_peak']:.2f}x | "
                f"{m['sumix_to_mce_peak_rss']:.2f}x |"
            )
        lines += [
            "",
            "Memory: each model in a process of its own; step growth = peak RSS "
            "through the warm-up and two steps (compilation included) minus the "
            "RSS of the built model.",
        ]
    lines += [
        "",
        "Fast SUMix = `raw_pass_gradient=False`: the clean pass runs forward only "
        "(its outputs are constants), so the uncertainty head learns from the mixed "
        "pass alone; the corrected lam is unchanged (it never carries gradient).",
    ]
    return "\n".join(lines) + "\n"


def merge_reports(
    paths: list[Path], output: Path | None, markdown, keys: tuple[str, ...]
) -> dict:
    """One report from single-backend reports (`--merge`) that agree on
    `keys` (their setting), written to `output` with `markdown`; `load` is
    the highest load average any of them started at."""
    reports = [json.loads(path.read_text()) for path in paths]
    first = reports[0]
    for other in reports[1:]:
        differ = [k for k in keys if other.get(k) != first.get(k)]
        if differ:
            raise SystemExit(f"cannot merge reports that differ in {differ}")
    report = {
        **first,
        "load": max(r.get("load", 0.0) for r in reports),
        "backends": [row for r in reports for row in r["backends"]],
    }
    if output is None:
        raise SystemExit("--merge needs --output")
    print(write_report(report, output, markdown))
    return report


def main(argv: list[str] | None = None) -> dict | None:
    """Run the benchmark (or, with `--worker`, one backend's part of it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    step_arguments(parser, memory="also the peak memory, MCE vs SUMix")
    parser.add_argument("--backbone", choices=BACKBONES, default="resnet18_cifar")
    merge_argument(parser)
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = 3 if args.quick else 8
    if worker_mode(args, _worker, _build):
        return None
    if args.merge:
        keys = ("backbone", "batch", "steps", "warmup", "setting", "quick")
        return merge_reports(args.merge, args.output, _markdown, keys)
    check_backends(parser, args.backends)
    transformer = args.backbone in TRANSFORMERS
    report = {
        "backbone": "tiny CNN" if args.quick and not transformer else args.backbone,
        "setting": dict(_CPU_SIZED.get(args.backbone, {})),
        **run_settings(args),
        "goals": GOALS,
        "variants": VARIANTS,
        "backends": [_run_backend(b, args) for b in args.backends],
    }
    name = "step_overhead"
    if args.backbone != "resnet18_cifar":
        name += f"_{args.backbone}"
    if args.quick:
        name += "_quick"
    output = args.output or RESULTS / f"{name}.json"
    print(write_report(report, output, _markdown))
    return report


if __name__ == "__main__":
    main()
