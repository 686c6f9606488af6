"""The GPU check: one run, side by side, of what the README's GPU table
reports, on every installed backend.

Needs only keras, this package and JAX or PyTorch (TensorFlow where
installed); no network (every network is built with random weights). Each
backend runs in its own worker process (`KERAS_BACKEND` fixed at import);
a backend that is not installed is reported as such. The run keeps to a time
budget (`--budget`, 450 s, plus 25 s for the last group to finish: the whole
run ends within 8 minutes; `--smoke`: 100 + 10 s): what does not fit is
reported as skipped, and a worker stopped at the limit keeps its finished
groups. `--budget 0` runs the whole plan with no time limit (the tests use it,
so that what they check never depends on the machine's speed).

Measured, per backend:

1. MCE and SUMix steps (`MixupModel`, `SUMixModel` faithful and
   `raw_pass_gradient=False`, CutMix(0.2), SGD) for ResNet-50 at 224 px,
   batch 64 (`keras.applications.ResNet50(weights=None, include_top=False,
   pooling="avg")`) and `resnet18_cifar` at 32 px, batch 128, in float32 and
   `mixed_bfloat16`; goals SUMix <= 2.0x MCE, fast SUMix <= 1.4x MCE.
2. Peak device memory of each of those steps (ResNet-50, float32): on JAX
   `memory_stats()["peak_bytes_in_use"]`, on torch
   `torch.cuda.max_memory_allocated()`, counted above what was in use before
   the model was built.
3. Each mixer inside a compiled train step (224x224, batch 128: the mixer,
   global pooling and a dense layer, trained with `fit`'s step; ours in
   `MixupModel`, which mixes the labels too, Keras's in a functional model),
   next to `keras.layers.CutMix` and `keras.layers.MixUp`: images/s, ratios, and the
   mixer's share of the ResNet-50 MCE step per image (goal < 5%).

Steps are compiled as each backend compiles `fit`: XLA on JAX and
TensorFlow (`jit_compile=True`), eager on torch (Keras's default there).

    python benchmarks/device_check.py            # the real run, on a CUDA machine
    python benchmarks/device_check.py --smoke    # tiny sizes on the CPU (< 2 min)

Writes `benchmarks/results/device_check.json` and `.md` (with `--smoke`:
`device_check_smoke.*`). Both say which device every backend ran on; goals
are judged (PASS/FAIL) only for a run on a GPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _report import write_report

RESULTS = Path(__file__).resolve().parent / "results"
BACKENDS = ("torch", "jax", "tensorflow")  # torch first: eager, no compile time
# Shares of the time budget: compiling backends need more.
WEIGHT = {"torch": 1.0, "jax": 1.6, "tensorflow": 1.6}
GOALS = {"sumix": 2.0, "sumix_fast": 1.4, "mixer_share": 0.05}
VARIANTS = {
    "mce": "MixupModel (MCE, one pass)",
    "sumix": "SUMixModel (faithful: two passes)",
    "sumix_fast": "SUMixModel(raw_pass_gradient=False)",
}
# Built in this order: the expected peak memory increases, so JAX's peak
# counter (which cannot be reset) still tells each model's peak.
BUILD_ORDER = ("mce", "sumix_fast", "sumix")
MIXERS = ("MixUp", "CutMix", "FMix", "SaliencyMix", "ResizeMix", "RandomChoice")
REFERENCES = ("keras.layers.CutMix", "keras.layers.MixUp")

SETTINGS = {
    "full": {
        "resnet50": {"size": 224, "batch": 64, "classes": 1000, "steps": 10},
        "resnet18_cifar": {"size": 32, "batch": 128, "classes": 100, "steps": 20},
        "mixers": {"size": 224, "batch": 128, "classes": 1000, "steps": 20},
        "warmup": 2,
        "rounds": 2,
        "budget": 450.0,
        "grace": 25.0,
        # Guessed seconds of a group, until one of its kind has been timed.
        "guess": {"resnet50": 150.0, "resnet18_cifar": 60.0, "mixers": 90.0},
    },
    "smoke": {
        "resnet50": {"size": 32, "batch": 4, "classes": 10, "steps": 2},
        "resnet18_cifar": {"size": 32, "batch": 4, "classes": 10, "steps": 2},
        "mixers": {"size": 32, "batch": 4, "classes": 10, "steps": 2},
        "warmup": 1,
        "rounds": 1,
        "budget": 100.0,
        "grace": 10.0,
        "guess": {"resnet50": 8.0, "resnet18_cifar": 8.0, "mixers": 15.0},
    },
}
# What the worker runs, most important first (the goals need the ResNet-50
# float32 MCE step and the mixers).
PLAN = (
    ("resnet50", "float32"),
    ("mixers", "float32"),
    ("resnet18_cifar", "float32"),
    ("resnet18_cifar", "mixed_bfloat16"),
    ("resnet50", "mixed_bfloat16"),
)
# The smoke run takes one group of each kind (and code path: memory, mixers,
# mixed precision), to stay within its two minutes on a small CPU.
SMOKE_PLAN = (
    ("resnet50", "float32"),
    ("mixers", "float32"),
    ("resnet18_cifar", "mixed_bfloat16"),
)


# --------------------------------------------------------------------------- #
# The backend-specific part: which device, device-resident data, memory.
# --------------------------------------------------------------------------- #
class _Device:
    """What differs between backends: the device a step runs on, putting a
    batch on it, and its memory counters (None on the CPU, which has none)."""

    def __init__(self) -> None:
        import keras

        self.backend = keras.backend.backend()
        self._peak_before = 0

    def describe(self) -> dict[str, Any]:
        if self.backend == "jax":
            import jax

            device = jax.devices()[0]
            return {
                "platform": "gpu" if device.platform in ("gpu", "cuda") else "cpu",
                "name": device.device_kind,
                "count": len(jax.devices()),
                "library": f"jax {jax.__version__} ({device.platform})",
            }
        if self.backend == "torch":
            import torch

            if torch.cuda.is_available():
                return {
                    "platform": "gpu",
                    "name": torch.cuda.get_device_name(0),
                    "count": torch.cuda.device_count(),
                    "library": f"torch {torch.__version__} (cuda {torch.version.cuda})",
                }
            return {
                "platform": "cpu",
                "name": platform.processor() or "cpu",
                "count": 1,
                "library": f"torch {torch.__version__} (cpu)",
            }
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        name = "cpu"
        if gpus:
            name = tf.config.experimental.get_device_details(gpus[0]).get(
                "device_name", "GPU"
            )
        return {
            "platform": "gpu" if gpus else "cpu",
            "name": name,
            "count": max(len(gpus), 1),
            "library": f"tensorflow {tf.__version__}",
        }

    def put(self, array: Any, dtype: str | None = None) -> Any:
        """A NumPy array as a tensor on the device (not copied every step)."""
        import keras

        if self.backend == "tensorflow":
            import tensorflow as tf

            if tf.config.list_physical_devices("GPU"):
                with tf.device("GPU:0"):
                    return tf.identity(keras.ops.convert_to_tensor(array, dtype))
        return keras.ops.convert_to_tensor(array, dtype)

    def memory_start(self) -> None:
        self._stats_start = self._stats(reset=True)

    def memory_stop(self) -> dict[str, Any] | None:
        """Peak bytes since `memory_start`, above the bytes then in use."""
        start, now = self._stats_start, self._stats(reset=False)
        if start is None or now is None:
            return None
        in_use, peak_before = start
        peak = now[1]
        if self.backend == "jax" and peak <= peak_before:
            # JAX's peak is over the process: not exceeded, so this model's
            # peak is at most the earlier one.
            return {"bytes": peak_before - in_use, "exact": False}
        return {"bytes": peak - in_use, "exact": True}

    def _stats(self, reset: bool) -> tuple[int, int] | None:
        """(bytes in use, peak bytes) of the first device, or None."""
        if self.backend == "jax":
            import jax

            stats = jax.devices()[0].memory_stats()
            if not stats or "peak_bytes_in_use" not in stats:
                return None
            return stats["bytes_in_use"], stats["peak_bytes_in_use"]
        if self.backend == "torch":
            import torch

            if not torch.cuda.is_available():
                return None
            torch.cuda.synchronize()
            if reset:
                torch.cuda.reset_peak_memory_stats()
            return torch.cuda.memory_allocated(), torch.cuda.max_memory_allocated()
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            return None
        if reset:
            tf.config.experimental.reset_memory_stats("GPU:0")
        info = tf.config.experimental.get_memory_info("GPU:0")
        return info["current"], info["peak"]


# --------------------------------------------------------------------------- #
# Worker: one backend
# --------------------------------------------------------------------------- #
def _jit_compile() -> bool:
    import keras

    return keras.backend.backend() != "torch"  # torch: eager, Keras's default


def _time_steps(steps: dict[str, Any], rounds: int, count: int) -> dict[str, float]:
    """Median seconds of `count` consecutive calls of each step, over
    `rounds` rounds (the order reversed every other round)."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            for _ in range(count):
                start = time.perf_counter()
                steps[name]()  # train_on_batch returns host values: synced
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def _backbone(network: str, size: int, smoke: bool):
    import keras

    import keras_sumix as ks

    if smoke:  # tiny stand-in, same code path
        return ks.models.small_cnn((size, size, 3), (8,))
    if network == "resnet18_cifar":
        return ks.models.resnet18_cifar((size, size, 3))
    return keras.applications.ResNet50(
        weights=None, include_top=False, pooling="avg", input_shape=(size, size, 3)
    )


def _data(device: _Device, size: int, batch: int, classes: int):
    import numpy as np

    rng = np.random.default_rng(0)
    x = device.put(rng.random((batch, size, size, 3), dtype="float32"))
    y = device.put(rng.integers(0, classes, batch).astype("int32"), "int32")
    return x, y


def _sumix_group(device: _Device, network: str, policy: str, cfg: dict, args) -> dict:
    import keras

    import keras_sumix as ks

    s = cfg[network]
    keras.mixed_precision.set_global_policy(policy)
    try:
        x, y = _data(device, s["size"], s["batch"], s["classes"])
        measure = network == "resnet50" and policy == "float32"
        models, memory = {}, {}
        for key in BUILD_ORDER:
            if measure:
                device.memory_start()
            keras.utils.set_random_seed(0)
            mixer = ks.layers.CutMix(alpha=0.2, seed=0)
            backbone = _backbone(network, s["size"], args.smoke)
            if key == "mce":
                model = ks.MixupModel(backbone, s["classes"], mixer)
            else:
                model = ks.SUMixModel(
                    backbone, s["classes"], mixer, raw_pass_gradient=key == "sumix"
                )
            model.compile(
                optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                jit_compile=_jit_compile(),
            )
            for _ in range(cfg["warmup"]):
                model.train_on_batch(x, y)
            if measure:
                memory[key] = device.memory_stop()
            models[key] = model
        seconds = _time_steps(
            {k: (lambda m=m: m.train_on_batch(x, y)) for k, m in models.items()},
            cfg["rounds"],
            s["steps"],
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    ratios = {k: seconds[k] / seconds["mce"] for k in seconds}
    result = {
        "kind": "sumix",
        "network": network,
        "precision": policy,
        "size": s["size"],
        "batch": s["batch"],
        "steps_timed": s["steps"] * cfg["rounds"],
        "seconds_per_step": seconds,
        "ratio_to_mce": ratios,
        "goals": {
            "sumix": ratios["sumix"] <= GOALS["sumix"],
            "sumix_fast": ratios["sumix_fast"] <= GOALS["sumix_fast"],
        },
    }
    if measure:
        result["peak_memory"] = memory
    return result


def _mixer_layer(name: str):
    import keras

    import keras_sumix as ks

    if name == "identity":
        return None
    if name == "keras.layers.CutMix":
        return keras.layers.CutMix(seed=0)
    if name == "keras.layers.MixUp":
        return keras.layers.MixUp(seed=0)
    if name == "RandomChoice":
        return ks.layers.RandomChoice([ks.layers.MixUp(), ks.layers.CutMix()], seed=0)
    return getattr(ks.layers, name)(seed=0)


def _mixer_model(name: str, size: int, classes: int, jit: bool):
    import keras

    import keras_sumix as ks

    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3))
    layer = _mixer_layer(name)
    if isinstance(layer, ks.layers.MixingLayer):
        # Ours mix images and labels in MixupModel's step (a mixer refuses
        # to mix images alone inside a model: their labels would not follow).
        pool = keras.layers.GlobalAveragePooling2D()(inputs)
        model = ks.MixupModel(keras.Model(inputs, pool), classes, layer)
        model.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=jit)
        return model
    x = inputs if layer is None else layer(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(classes)(x))
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit,
    )
    return model


def _mixer_group(device: _Device, cfg: dict, mce: dict | None) -> dict:
    s = cfg["mixers"]
    x, y = _data(device, s["size"], s["batch"], s["classes"])
    models, modes = {}, {}
    for name in ("identity", *MIXERS, *REFERENCES):
        jit = _jit_compile()
        try:
            model = _mixer_model(name, s["size"], s["classes"], jit)
            for _ in range(cfg["warmup"]):
                model.train_on_batch(x, y)
        except Exception:
            if not jit:
                raise
            # TensorFlow: Keras's layers draw from a gamma sampler XLA lacks.
            jit = False
            model = _mixer_model(name, s["size"], s["classes"], jit)
            for _ in range(cfg["warmup"]):
                model.train_on_batch(x, y)
        models[name] = model
        modes[name] = {"jax": "xla", "tensorflow": "xla", "torch": "eager"}[
            device.backend
        ]
        if device.backend == "tensorflow" and not jit:
            modes[name] = "no XLA"
    seconds = _time_steps(
        {k: (lambda m=m: m.train_on_batch(x, y)) for k, m in models.items()},
        cfg["rounds"],
        s["steps"],
    )
    mce_per_image = mce["seconds_per_step"]["mce"] / mce["batch"] if mce else None
    rows = []
    for name in (*MIXERS, *REFERENCES):
        net = max(seconds[name] - seconds["identity"], 0.0)
        share = net / s["batch"] / mce_per_image if mce_per_image else None
        rows.append(
            {
                "mixer": name,
                "mode": modes[name],
                "seconds_per_step": seconds[name],
                "images_per_second": s["batch"] / seconds[name],
                "mixing_seconds": net,
                "x_keras_cutmix": seconds["keras.layers.CutMix"] / seconds[name],
                "x_keras_mixup": seconds["keras.layers.MixUp"] / seconds[name],
                "share_of_mce_step": share,
                "goal_share": None if share is None else share < GOALS["mixer_share"],
            }
        )
    return {
        "kind": "mixers",
        "size": s["size"],
        "batch": s["batch"],
        "steps_timed": s["steps"] * cfg["rounds"],
        "identity_seconds_per_step": seconds["identity"],
        "mce_reference": None
        if mce is None
        else {"network": mce["network"], "batch": mce["batch"]},
        "rows": rows,
    }


def _worker(args: argparse.Namespace) -> None:
    """Run the plan on this process's backend, writing `args.out` after each
    group (so that a worker stopped at the time limit leaves its results)."""
    out: dict[str, Any] = {"backend": os.environ.get("KERAS_BACKEND")}

    def save() -> None:
        Path(args.out).write_text(json.dumps(out, indent=2))

    try:
        import keras  # imports the backend

        import keras_sumix  # noqa: F401
    except ImportError as error:
        out.update(status="unavailable", reason=f"{type(error).__name__}: {error}")
        save()
        return
    cfg = SETTINGS["smoke" if args.smoke else "full"]
    device = _Device()
    out.update(status="running", device=device.describe(), groups=[], skipped=[])
    save()
    took: dict[str, float] = {}
    scale = 1.0  # this machine's speed against the guesses, once measured
    mce = None
    for network, policy in SMOKE_PLAN if args.smoke else PLAN:
        label = f"{network} {policy}"
        guess = took.get(network, cfg["guess"][network] * scale)
        if time.time() + guess > args.deadline:
            out["skipped"].append(f"{label}: over the time budget")
            save()
            continue
        out["running"] = label
        save()
        start = time.time()
        try:
            if network == "mixers":
                group = _mixer_group(device, cfg, mce)
            else:
                group = _sumix_group(device, network, policy, cfg, args)
                if mce is None and policy == "float32":
                    mce = group
        except Exception as error:  # reported, and the plan goes on
            group = {"kind": network, "precision": policy, "error": repr(error)[:2000]}
        group["seconds"] = time.time() - start
        if not took:  # a faster machine fits more (a slower one is stopped)
            scale = min(group["seconds"] / cfg["guess"][network], 1.0)
        took[network] = group["seconds"]
        out["groups"].append(group)
        out.pop("running")
        save()
        import keras

        keras.backend.clear_session()
    out["status"] = "done"
    save()


# --------------------------------------------------------------------------- #
# Driver
# --------------------------------------------------------------------------- #
def _run_backend(
    backend: str, args: argparse.Namespace, seconds: float, hard_end: float
) -> dict:
    """Run one backend's worker: it starts no group after `seconds`, and is
    stopped `grace` seconds later (never after `hard_end`), its finished
    groups kept."""
    if importlib.util.find_spec(backend) is None:
        return {"backend": backend, "status": "unavailable", "reason": "not installed"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "worker.json"
        command = [sys.executable, __file__, "--worker", "--out", str(out)]
        command += ["--deadline", str(time.time() + seconds)]
        command += ["--smoke"] if args.smoke else []
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        timeout = max(min(seconds + args.grace, hard_end - time.time()), 1.0)
        timeout = timeout if math.isfinite(timeout) else None  # no budget
        stopped = failed = None
        try:
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=timeout
            )
            failed = done.returncode != 0 and done.stderr[-2000:]
        except subprocess.TimeoutExpired:
            stopped = True
        result = json.loads(out.read_text()) if out.exists() else {}
    result.setdefault("backend", backend)
    if stopped:
        result["status"] = "partial"
        result.setdefault("skipped", []).append(
            f"{result.pop('running', 'the next group')}: stopped at the time budget"
        )
    elif failed:
        result["status"] = "failed"
        result["error"] = failed
    return result


def _is_gpu(block: dict) -> bool:
    return block.get("device", {}).get("platform") == "gpu"


def _verdict(ok: bool | None, gpu: bool) -> str:
    if ok is None:
        return "n/a"
    if not gpu:
        return "not judged (cpu)"
    return "PASS" if ok else "FAIL"


def _mib(memory: dict | None) -> str:
    if not memory:
        return "n/a"
    return f"{'' if memory['exact'] else '<= '}{memory['bytes'] / 2**20:,.0f} MiB"


def _markdown(report: dict) -> str:
    blocks = report["backends"]
    ran = [b for b in blocks if b.get("device")]
    lines = [f"# Device check ({report['mode']} run, {report['date']})", ""]
    for b in blocks:
        if b.get("device"):
            d = b["device"]
            lines.append(
                f"- **{b['backend']}**: ran on **{d['platform'].upper()}: {d['name']}**"
                f" ({d['library']}); {b['status']}"
            )
        else:
            lines.append(f"- **{b['backend']}**: {b['status']} ({b.get('reason', '')})")
        if b.get("error"):
            lines.append(f"  - error: `{b['error'].strip().splitlines()[-1][:300]}`")
        for skipped in b.get("skipped", []):
            lines.append(f"  - skipped: {skipped}")
    if not any(_is_gpu(b) for b in ran):
        lines += [
            "",
            "**No GPU: every figure below is from the CPU. These are not the "
            "GPU figures and the goals are not judged.**",
        ]
    if report["mode"] == "smoke":
        lines += ["", "Smoke run: tiny CNNs stand in for the networks named."]
    lines += [
        "",
        f"Whole run: {report['wall_seconds']:.0f} s. Steps: XLA on JAX and "
        "TensorFlow, eager on torch (Keras's default); CutMix(0.2), SGD; median "
        "step of the timed steps (`train_on_batch` on device-resident data).",
        "",
        "## SUMix / MCE step time",
        "",
        f"| backend | network | px | batch | precision | MCE ms | SUMix ms | SUMix / "
        f"MCE (goal <= {GOALS['sumix']}) | fast ms | fast / MCE (goal <= "
        f"{GOALS['sumix_fast']}) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for b in ran:
        gpu = _is_gpu(b)
        for g in b.get("groups", []):
            if g.get("kind") not in ("resnet50", "resnet18_cifar", "sumix"):
                continue
            if "error" in g:
                lines.append(
                    f"| {b['backend']} | {g['kind']} | | | {g['precision']} | "
                    f"error: {g['error'][:120]} | | | | |"
                )
                continue
            s, r = g["seconds_per_step"], g["ratio_to_mce"]
            lines.append(
                f"| {b['backend']} | {g['network']} | {g['size']} | {g['batch']} | "
                f"{g['precision']} | {1e3 * s['mce']:.1f} | {1e3 * s['sumix']:.1f} | "
                f"{r['sumix']:.2f}x {_verdict(g['goals']['sumix'], gpu)} | "
                f"{1e3 * s['sumix_fast']:.1f} | {r['sumix_fast']:.2f}x "
                f"{_verdict(g['goals']['sumix_fast'], gpu)} |"
            )
    lines += [
        "",
        "## Peak device memory (ResNet-50, float32)",
        "",
        "Peak bytes allocated during the model's first steps, above what was in "
        "use before it was built (JAX: `peak_bytes_in_use`, torch: "
        "`max_memory_allocated`). `<=`: JAX's process-wide peak was not exceeded.",
        "",
        "| backend | MCE | SUMix | fast SUMix | SUMix / MCE |",
        "|---|---|---|---|---|",
    ]
    for b in ran:
        for g in b.get("groups", []):
            memory = g.get("peak_memory")
            if memory is None:
                continue
            mce, sumix = memory.get("mce"), memory.get("sumix")
            ratio = (
                f"{sumix['bytes'] / mce['bytes']:.2f}x"
                if mce and sumix and mce["bytes"] > 0 and sumix["exact"]
                else "n/a"
            )
            lines.append(
                f"| {b['backend']} | {_mib(mce)} | {_mib(sumix)} | "
                f"{_mib(memory.get('sumix_fast'))} | {ratio} |"
            )
    mixer_groups = [
        (b, g) for b in ran for g in b.get("groups", []) if g.get("kind") == "mixers"
    ]
    size = mixer_groups[0][1].get("size", "?") if mixer_groups else "?"
    batch = mixer_groups[0][1].get("batch", "?") if mixer_groups else "?"
    lines += [
        "",
        f"## Mixers in a compiled train step ({size}x{size}, batch {batch})",
        "",
        "The step trains mixer -> global pooling -> dense. x keras = the keras "
        "layer's step time / this one's (> 1: faster). Mixing ms = step time "
        "minus the same step without a mixer. Share = mixing time per image / "
        "ResNet-50 MCE step time per image (float32).",
        "",
        f"| backend | mixer | img/s | x keras CutMix | x keras MixUp | mixing ms | "
        f"share of MCE step (goal < {GOALS['mixer_share']:.0%}) |",
        "|---|---|---|---|---|---|---|",
    ]
    for b, g in mixer_groups:
        if "error" in g:
            lines.append(f"| {b['backend']} | error: {g['error'][:120]} | | | | | |")
            continue
        for row in g["rows"]:
            share = row["share_of_mce_step"]
            share_text = "n/a" if share is None else f"{share:.2%}"
            mode = " (no XLA)" if row["mode"] == "no XLA" else ""
            lines.append(
                f"| {b['backend']} | {row['mixer']}{mode} | "
                f"{row['images_per_second']:,.0f} | {row['x_keras_cutmix']:.2f}x | "
                f"{row['x_keras_mixup']:.2f}x | {1e3 * row['mixing_seconds']:.2f} | "
                f"{share_text} {_verdict(row['goal_share'], _is_gpu(b))} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict | None:
    """Run the check on every backend (or, with `--worker`, on one)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, CPU")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS))
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds (450; smoke: 100); 0: no time limit, the whole plan runs",
    )
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args)
        return None
    unknown = set(args.backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backends {sorted(unknown)}; choose from {BACKENDS}")
    mode = "smoke" if args.smoke else "full"
    if args.budget is not None and args.budget < 0:
        parser.error(f"--budget must be >= 0 seconds (0: no limit), got {args.budget}")
    budget = SETTINGS[mode]["budget"] if args.budget is None else args.budget
    budget = budget or math.inf  # 0: no time limit
    args.grace = SETTINGS[mode]["grace"]  # for a worker to finish its group
    started = time.time()
    hard_end = started + budget + args.grace
    blocks = []
    backends = list(args.backends)
    while backends:
        backend = backends.pop(0)
        # Each installed backend still to run gets a share of what is left
        # (compiling ones, JAX and TensorFlow, a larger one).
        weights = [WEIGHT[b] for b in backends if importlib.util.find_spec(b)]
        left = started + budget - time.time()
        share = left * WEIGHT[backend] / (WEIGHT[backend] + sum(weights))
        blocks.append(_run_backend(backend, args, max(share, 1.0), hard_end))
    report = {
        "mode": mode,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "host": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "settings": SETTINGS[mode],
        "plan": [list(item) for item in (SMOKE_PLAN if args.smoke else PLAN)],
        "budget_seconds": budget if math.isfinite(budget) else None,
        "goals": GOALS,
        "variants": VARIANTS,
        "backends": blocks,
        "wall_seconds": time.time() - started,
    }
    report["ran_on_gpu"] = any(_is_gpu(b) for b in blocks)
    name = "device_check_smoke" if args.smoke else "device_check"
    print(write_report(report, args.output or RESULTS / f"{name}.json", _markdown))
    return report


if __name__ == "__main__":
    main()
