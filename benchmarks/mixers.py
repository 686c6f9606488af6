"""Throughput of the keras_sumix mixing layers, side by side with Keras and
KerasCV.

Two settings are measured, both on a fixed synthetic batch (a random float32
image tensor and one-hot labels) so that input generation is not timed:

* ``tf.data``: ``Dataset.from_tensors(batch).repeat().map(layer,
  num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)``, for an identity map,
  our MixUp / CutMix / FMix / SaliencyMix / ResizeMix, and as references
  ``keras.layers.CutMix``, ``keras.layers.MixUp``, ``keras_cv.layers.CutMix``
  and ``keras_cv.layers.FourierMix``.
* ``jit``: ``layer.mix(images)`` of each of our layers inside a ``jax.jit``
  function (stateless: the seed state goes in and out through a
  ``keras.StatelessScope``), with ``keras.layers.CutMix`` / ``MixUp`` called
  the same way on the ``{"images", "labels"}`` dict as references. Only with
  the JAX backend.

The machine this runs on is small and shared, so absolute numbers drift: every
entry is measured ``--repeats`` times, round-robin over the entries (direction
alternating each round), and the median is reported together with ratios to
references measured in the same run. Each timing also records images per
CPU-second of this process (less disturbed by other work) and how many cores
other processes kept busy meanwhile. A goal's ratio is the median over rounds
of the entry's img/s over its reference's in the same round; every goal's
reference is timed right next to it.

Usage::

    python benchmarks/mixers.py             # full run, about 5 minutes
    python benchmarks/mixers.py --quick     # smoke run, ~20 s (imports, jit)
    python benchmarks/mixers.py --repeats 5 --seconds 2 --output /tmp/m.json

Writes ``benchmarks/results/mixers.json`` (``mixers_quick.json`` with
``--quick``) and a Markdown table next to it (same name, ``.md``).
"""

from __future__ import annotations

import os

# Must be set before Keras is imported; an explicit KERAS_BACKEND wins.
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import datetime
import hashlib
import importlib.metadata
import json
import math
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

import keras_sumix

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_OUTPUT = RESULTS_DIR / "mixers.json"
QUICK_OUTPUT = RESULTS_DIR / "mixers_quick.json"

# Figures measured earlier on this machine (224x224x3 float32, batch 64,
# KERAS_BACKEND=jax, tf.data), quoted in the issue. Only shown for full runs.
ISSUE_REFERENCE_IMG_S = {
    "identity": 21_800.0,
    "keras_mixup": 6_200.0,
    "keras_cv_cutmix": 2_700.0,
    "keras_cutmix": 2_000.0,
    "keras_cv_fouriermix": 320.0,
}

QUICK_NOTE = (
    "Quick smoke run (tiny images, a few batches, one repeat): it checks that "
    "every entry runs; its numbers and goal results mean nothing."
)

# The issue's goals: (entry, reference, minimum ratio), all in tf.data.
GOALS: tuple[tuple[str, str, float], ...] = (
    ("sumix_cutmix", "keras_cutmix", 1.5),
    ("sumix_fmix", "keras_cv_fouriermix", 3.0),
    ("sumix_saliencymix", "keras_cutmix", 0.5),
    ("sumix_resizemix", "keras_cutmix", 0.5),
)


# ---------------------------------------------------------------------- #
# Settings and entries
# ---------------------------------------------------------------------- #
@dataclass(frozen=True)
class Settings:
    """What one run measures and for how long."""

    height: int = 224
    width: int = 224
    batch_size: int = 64
    num_classes: int = 100
    warmup: int = 5
    batches: int | None = None
    seconds: float = 4.0
    min_batches: int = 5
    repeats: int = 3
    seed: int = 1337
    quick: bool = False


@dataclass
class Entry:
    """One measured configuration.

    `open()` prepares a fresh run and returns a blocking `step()` that
    produces one mixed batch; `close()` releases it (tf.data iterators keep
    worker threads alive otherwise).
    """

    key: str
    label: str
    pipeline: str  # "tf.data" or "jit"
    open: Callable[[], Callable[[], Any]]
    close: Callable[[], None] = lambda: None
    batches: int = 0
    img_s: list[float] = field(default_factory=list)
    cpu_img_s: list[float] = field(default_factory=list)
    other_load: list[float | None] = field(default_factory=list)

    @property
    def median(self) -> float:
        """Median images per (wall-clock) second over the repeats."""
        return statistics.median(self.img_s) if self.img_s else float("nan")

    @property
    def cpu_median(self) -> float:
        """Median images per CPU-second of this process over the repeats."""
        return statistics.median(self.cpu_img_s) if self.cpu_img_s else float("nan")


def make_batch(settings: Settings) -> dict[str, np.ndarray]:
    """A fixed random batch: float32 images in [0, 1) and one-hot labels."""
    rng = np.random.default_rng(settings.seed)
    shape = (settings.batch_size, settings.height, settings.width, 3)
    images = rng.random(shape, dtype=np.float32)
    classes = rng.integers(0, settings.num_classes, settings.batch_size)
    labels = np.eye(settings.num_classes, dtype=np.float32)[classes]
    return {"images": images, "labels": labels}


def our_layers(settings: Settings) -> dict[str, tuple[str, keras.layers.Layer]]:
    """Fresh instances of our layers, keyed by entry name."""
    kwargs = {"num_classes": settings.num_classes, "seed": settings.seed}
    layers = keras_sumix.layers
    return {
        "sumix_mixup": ("keras_sumix MixUp", layers.MixUp(**kwargs)),
        "sumix_cutmix": ("keras_sumix CutMix", layers.CutMix(**kwargs)),
        "sumix_fmix": ("keras_sumix FMix", layers.FMix(**kwargs)),
        "sumix_saliencymix": (
            "keras_sumix SaliencyMix",
            layers.SaliencyMix(**kwargs),
        ),
        "sumix_resizemix": ("keras_sumix ResizeMix", layers.ResizeMix(**kwargs)),
    }


def tf_data_entries(settings: Settings, batch: dict[str, np.ndarray]) -> list[Entry]:
    """The `tf.data` entries: identity, ours, Keras and KerasCV layers.

    All layers take the `{"images": ..., "labels": ...}` dict: ours and
    Keras core's (`keras.layers.CutMix`/`MixUp`, which switch to TensorFlow
    ops inside `tf.data` whatever the backend) return the same dict with
    mixed labels; KerasCV's (TensorFlow ops only) do too.
    """
    import keras_cv

    seed = settings.seed
    ours = {key: (label, layer) for key, (label, layer) in our_layers(settings).items()}
    references = {
        "keras_cutmix": ("keras.layers.CutMix", keras.layers.CutMix(seed=seed)),
        "keras_mixup": ("keras.layers.MixUp", keras.layers.MixUp(seed=seed)),
        "keras_cv_cutmix": (
            "keras_cv.layers.CutMix",
            keras_cv.layers.CutMix(seed=seed),
        ),
        "keras_cv_fouriermix": (
            "keras_cv.layers.FourierMix",
            keras_cv.layers.FourierMix(seed=seed),
        ),
    }
    named = {"identity": ("identity (lambda b: b)", lambda b: b), **ours, **references}
    # Each goal's entry sits next to its reference, so that the two are
    # timed close together in every round.
    order = (
        "identity",
        "keras_cutmix",
        "sumix_cutmix",
        "sumix_saliencymix",
        "sumix_resizemix",
        "keras_cv_cutmix",
        "keras_mixup",
        "sumix_mixup",
        "keras_cv_fouriermix",
        "sumix_fmix",
    )
    maps = [(key, *named[key]) for key in order]
    source = tf.data.Dataset.from_tensors(
        {k: tf.constant(v) for k, v in batch.items()}
    ).repeat()
    entries = []
    for key, label, fn in maps:
        # The map function is traced here, once per entry.
        dataset = source.map(fn, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
            tf.data.AUTOTUNE
        )
        entries.append(_tf_data_entry(key, label, dataset))
    return entries


def _tf_data_entry(key: str, label: str, dataset: tf.data.Dataset) -> Entry:
    holder: dict[str, Any] = {}

    def open_() -> Callable[[], Any]:
        iterator = iter(dataset)
        holder["iterator"] = iterator
        return lambda: next(iterator)

    def close() -> None:
        holder.pop("iterator", None)

    return Entry(key, label, "tf.data", open_, close)


def jit_entries(settings: Settings, batch: dict[str, np.ndarray]) -> list[Entry]:
    """`layer.mix(images)` of our layers under `jax.jit` (stateless), plus
    Keras core CutMix/MixUp called on the dict as references."""
    import jax

    images = jax.numpy.asarray(batch["images"])
    inputs = {k: jax.numpy.asarray(v) for k, v in batch.items()}
    entries = []
    for key, (label, layer) in our_layers(settings).items():
        entries.append(
            _jit_entry(f"jit_{key}", f"{label}.mix", layer, layer.mix, images)
        )
    for key, label, layer in (
        ("jit_keras_cutmix", "keras.layers.CutMix", keras.layers.CutMix),
        ("jit_keras_mixup", "keras.layers.MixUp", keras.layers.MixUp),
    ):
        instance = layer(seed=settings.seed)
        entries.append(_jit_entry(key, f"{label} (dict)", instance, instance, inputs))
    return entries


def _jit_entry(
    key: str,
    label: str,
    layer: keras.layers.Layer,
    fn: Callable[[Any], Any],
    inputs: Any,
) -> Entry:
    import jax

    variables = list(layer.variables)

    def stateless(values: list[Any], inputs: Any) -> tuple[Any, list[Any]]:
        mapping = list(zip(variables, values, strict=True))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            outputs = fn(inputs)
        return outputs, [scope.get_current_value(v) for v in variables]

    compiled = jax.jit(stateless)
    holder: dict[str, Any] = {"state": [v.value for v in variables]}

    def open_() -> Callable[[], Any]:
        def step() -> Any:
            outputs, holder["state"] = compiled(holder["state"], inputs)
            return jax.block_until_ready(outputs)

        return step

    return Entry(key, label, "jit", open_)


# ---------------------------------------------------------------------- #
# Measurement
# ---------------------------------------------------------------------- #
def _busy_cpu_seconds() -> float | None:
    """CPU-seconds all processes of the machine have been busy (Linux)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    # guest time is already counted in user time.
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _time(step: Callable[[], Any], count: int) -> tuple[float, float, float | None]:
    """Run `count` steps; wall seconds, own CPU-seconds, and the mean number
    of cores other processes kept busy meanwhile (None if unknown)."""
    busy = _busy_cpu_seconds()
    cpu = time.process_time()
    start = time.perf_counter()
    for _ in range(count):
        step()
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    other = None
    # /proc/stat counts in clock ticks (10 ms): too coarse for short timings.
    if busy is not None and wall >= 0.5:
        now = _busy_cpu_seconds()
        if now is not None:
            other = max(0.0, (now - busy - cpu) / wall)
    return wall, cpu, other


def calibrate(entry: Entry, settings: Settings) -> None:
    """Warm the entry up (tracing, compilation, pools) and choose how many
    batches one timing takes: `--batches`, or enough for `--seconds`."""
    step = entry.open()
    try:
        for _ in range(settings.warmup):
            step()
        if settings.batches is not None:
            entry.batches = settings.batches
            return
        count, elapsed = 0, 0.0
        while elapsed < min(0.5, settings.seconds / 4):
            elapsed += _time(step, 1)[0]
            count += 1
        per_batch = elapsed / count
        entry.batches = max(
            settings.min_batches, math.ceil(settings.seconds / per_batch)
        )
    finally:
        entry.close()


def measure(entry: Entry, settings: Settings) -> None:
    """One timing: fresh run, warm-up, then `entry.batches` batches."""
    step = entry.open()
    try:
        for _ in range(settings.warmup):
            step()
        wall, cpu, other = _time(step, entry.batches)
    finally:
        entry.close()
    images = entry.batches * settings.batch_size
    entry.img_s.append(images / wall)
    entry.cpu_img_s.append(images / cpu if cpu > 0 else float("nan"))
    entry.other_load.append(other)


def run(
    entries: Sequence[Entry], settings: Settings, log: Callable[[str], None]
) -> None:
    """Calibrate every entry, then measure them `repeats` times, round-robin,
    alternating the direction every round (A B C, C B A, ...) so that a
    slow drift of the machine's load weighs on all entries alike."""
    for entry in entries:
        calibrate(entry, settings)
        log(f"  calibrated {entry.pipeline:7s} {entry.label}: {entry.batches} batches")
    for repeat in range(settings.repeats):
        order = entries if repeat % 2 == 0 else list(reversed(entries))
        for entry in order:
            measure(entry, settings)
            other = entry.other_load[-1]
            log(
                f"  round {repeat + 1}/{settings.repeats} {entry.pipeline:7s} "
                f"{entry.label}: {entry.img_s[-1]:,.0f} img/s, "
                f"{entry.cpu_img_s[-1]:,.0f} img/CPU-s"
                + ("" if other is None else f", other load {other:.2f} cores")
            )


# ---------------------------------------------------------------------- #
# Report
# ---------------------------------------------------------------------- #
def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def layer_sources() -> dict[str, str]:
    """Short SHA-256 of each `keras_sumix/layers/*.py`, to tie the numbers to
    the code they measured."""
    folder = Path(keras_sumix.__file__).resolve().parent / "layers"
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for path in sorted(folder.glob("*.py"))
    }


def machine_info() -> dict[str, Any]:
    """Where and with what the numbers were taken."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "loadavg_start": _loadavg(),
        "backend": keras.backend.backend(),
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            name: _version(dist)
            for name, dist in (
                ("keras", "keras"),
                ("tensorflow", "tensorflow-cpu"),
                ("jax", "jax"),
                ("jaxlib", "jaxlib"),
                ("keras_cv", "keras-cv"),
                ("numpy", "numpy"),
                ("keras_sumix", "keras-sumix"),
            )
        },
    }


def _ratio(a: Entry | None, b: Entry | None, cpu: bool = False) -> float | None:
    """Ratio of the medians of two entries (None when one is missing)."""
    if a is None or b is None or not a.img_s or not b.img_s:
        return None
    return a.cpu_median / b.cpu_median if cpu else a.median / b.median


def _loads(values: Sequence[float | None]) -> list[float] | None:
    known = [round(v, 3) for v in values if v is not None]
    return known or None


def build_report(
    entries: Sequence[Entry],
    settings: Settings,
    machine: dict[str, Any],
    sources: dict[str, str],
    jit_skipped: str | None,
) -> dict[str, Any]:
    """Everything the JSON holds: settings, machine, the layer sources'
    hashes, entries, goals."""
    by_key = {e.key: e for e in entries}
    identity, keras_cutmix = by_key.get("identity"), by_key.get("keras_cutmix")
    jit_keras_cutmix = by_key.get("jit_keras_cutmix")
    rows = []
    for entry in entries:
        row: dict[str, Any] = {
            "key": entry.key,
            "label": entry.label,
            "pipeline": entry.pipeline,
            "batches_per_repeat": entry.batches,
            "median_img_s": entry.median,
            "repeats_img_s": entry.img_s,
            "median_cpu_img_s": entry.cpu_median,
            "repeats_cpu_img_s": entry.cpu_img_s,
            "other_load_cores": _loads(entry.other_load),
        }
        if entry.pipeline == "tf.data":
            row["x_identity"] = _ratio(entry, identity)
            row["x_keras_cutmix"] = _ratio(entry, keras_cutmix)
            row["x_keras_cutmix_cpu"] = _ratio(entry, keras_cutmix, cpu=True)
            if not settings.quick and entry.key in ISSUE_REFERENCE_IMG_S:
                row["issue_reference_img_s"] = ISSUE_REFERENCE_IMG_S[entry.key]
        else:
            row["x_same_layer_tf_data"] = _ratio(
                entry, by_key.get(entry.key.removeprefix("jit_"))
            )
            row["x_keras_cutmix_jit"] = _ratio(entry, jit_keras_cutmix)
        rows.append(row)
    goals = []
    for key, reference, minimum in GOALS:
        entry, ref = by_key[key], by_key[reference]
        paired = [a / b for a, b in zip(entry.img_s, ref.img_s, strict=True)]
        ratio = statistics.median(paired)
        goals.append(
            {
                "entry": key,
                "reference": reference,
                "goal": f"{entry.label} >= {minimum:g}x {ref.label}",
                "minimum_ratio": minimum,
                "ratio": ratio,
                "per_round_ratios": paired,
                "ratio_of_medians": _ratio(entry, ref),
                "cpu_time_ratio": _ratio(entry, ref, cpu=True),
                "passed": ratio >= minimum,
            }
        )
    return {
        "benchmark": "mixers",
        "settings": {
            "image_shape": [settings.height, settings.width, 3],
            "dtype": "float32",
            "batch_size": settings.batch_size,
            "num_classes": settings.num_classes,
            "labels": "one-hot",
            "warmup_batches": settings.warmup,
            "batches": settings.batches,
            "target_seconds": settings.seconds,
            "repeats": settings.repeats,
            "seed": settings.seed,
            "quick": settings.quick,
            "statistic": (
                "img/s: median over repeats, taken round-robin over the entries "
                "(direction alternating each round); img/CPU-s: images per "
                "CPU-second of this process; goal ratio: median over rounds of "
                "the entry's img/s over its reference's in the same round"
            ),
        },
        "machine": machine,
        "layer_sources_sha256": sources,
        "jit_skipped": jit_skipped,
        "entries": rows,
        "goals": goals,
        "all_goals_passed": all(g["passed"] for g in goals),
    }


def _fmt_rate(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:,.0f}"


def _fmt_ratio(value: float | None) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.2g}x"


def tables(report: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """The report as (title, header, rows) tables for the console and MD."""
    quick = report["settings"]["quick"]
    tf_rows, jit_rows = [], []
    for row in report["entries"]:
        spread = (
            f"{_fmt_rate(min(row['repeats_img_s']))}-"
            f"{_fmt_rate(max(row['repeats_img_s']))}"
        )
        common = [
            row["label"],
            _fmt_rate(row["median_img_s"]),
            spread,
            _fmt_rate(row["median_cpu_img_s"]),
        ]
        if row["pipeline"] == "tf.data":
            cells = [
                *common,
                _fmt_ratio(row["x_identity"]),
                _fmt_ratio(row["x_keras_cutmix"]),
                _fmt_ratio(row["x_keras_cutmix_cpu"]),
            ]
            if not quick:
                cells.append(_fmt_rate(row.get("issue_reference_img_s")))
            tf_rows.append(cells)
        else:
            jit_rows.append(
                [
                    *common,
                    _fmt_ratio(row["x_same_layer_tf_data"]),
                    _fmt_ratio(row["x_keras_cutmix_jit"]),
                ]
            )
    rates = ["Entry", "img/s (median)", "min-max", "img/CPU-s"]
    tf_header = [*rates, "x identity", "x keras CutMix", "(CPU-time)"]
    if not quick:
        tf_header.append("issue ref img/s")
    out = [("tf.data (map + prefetch)", tf_header, tf_rows)]
    if jit_rows:
        jit_header = [*rates, "x same layer in tf.data", "x keras CutMix (jit)"]
        out.append(("jax.jit (stateless)", jit_header, jit_rows))
    goal_rows = [
        [
            goal["goal"],
            _fmt_ratio(goal["ratio"]),
            " ".join(_fmt_ratio(r) for r in goal["per_round_ratios"]),
            _fmt_ratio(goal["ratio_of_medians"]),
            _fmt_ratio(goal["cpu_time_ratio"]),
            "PASS" if goal["passed"] else "FAIL",
        ]
        for goal in report["goals"]
    ]
    goal_header = [
        "Goal (tf.data)",
        "ratio",
        "per round",
        "of medians",
        "CPU-time",
        "result",
    ]
    out.append(("Goals", goal_header, goal_rows))
    return out


def format_text(report: dict[str, Any]) -> str:
    """Plain-text tables for the console."""
    lines = []
    for title, header, rows in tables(report):
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines.append(f"\n{title}")
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        lines.append("  ".join("-" * w for w in widths))
        for row in rows:
            cells = [
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ]
            lines.append("  ".join(cells))
    if report["jit_skipped"]:
        lines.append(f"\njax.jit entries skipped: {report['jit_skipped']}")
    if report["settings"]["quick"]:
        lines.append(f"\n{QUICK_NOTE}")
    return "\n".join(lines)


def format_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown document."""
    settings, machine = report["settings"], report["machine"]
    h, w, c = settings["image_shape"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    lines = [
        "# Mixer throughput" + (" (quick smoke run)" if settings["quick"] else ""),
        "",
        f"Generated by `benchmarks/mixers.py` on {machine['date']}.",
        "",
        f"- Batch: {settings['batch_size']} x {h}x{w}x{c} float32, "
        f"{settings['num_classes']}-class one-hot labels, one fixed batch "
        "repeated (input generation not timed).",
        f"- Backend: `KERAS_BACKEND={machine['backend']}`; {versions}.",
        f"- Machine: {machine['cpu_usable']} usable of {machine['cpu_count']} "
        f"CPUs ({machine['cpu_model']}), shared; {machine['platform']}.",
        f"- Median of {settings['repeats']} repeats, taken round-robin over the "
        f"entries (direction alternating) after {settings['warmup_batches']} "
        "warm-up batches; compare ratios, not absolute numbers. img/CPU-s counts "
        "this process's CPU time, which other work on the machine disturbs less.",
        "- Goal ratio: median over rounds of the entry's img/s over its "
        "reference's in the same round (references are timed next to the "
        "entries they judge).",
    ]
    loads = [v for row in report["entries"] for v in (row["other_load_cores"] or [])]
    if loads:
        lines.append(
            f"- Other processes kept {statistics.median(loads):.2f} cores busy "
            f"(median over timings; max {max(loads):.2f}); load average "
            f"{machine.get('loadavg_start')} at start, "
            f"{machine.get('loadavg_end')} at end."
        )
    lines.append("")
    for title, header, rows in tables(report):
        lines += [f"## {title}", ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] + ["--:"] * (len(header) - 1)) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    if report["jit_skipped"]:
        lines += [f"jax.jit entries skipped: {report['jit_skipped']}", ""]
    if settings["quick"]:
        lines += [QUICK_NOTE, ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------- #
# Entry point
# ---------------------------------------------------------------------- #
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 32x32 images, batch 8, 3 batches, 1 repeat, every "
        f"entry; writes {QUICK_OUTPUT.name} unless --output is given",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="JSON path; the Markdown goes next to it with suffix .md "
        f"(default: {DEFAULT_OUTPUT.relative_to(RESULTS_DIR.parent.parent)})",
    )
    parser.add_argument(
        "--size", type=int, default=None, help="image side (default: 224)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="batch size (default: 64)"
    )
    parser.add_argument(
        "--num-classes", type=int, default=100, help="classes (default: 100)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timings per entry, round-robin; the median is reported (default: 3)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="warm-up batches before each timing (default: 5)",
    )
    parser.add_argument(
        "--batches",
        type=int,
        default=None,
        help="batches per timing for every entry (default: calibrated per "
        "entry to last about --seconds)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=4.0,
        help="target duration of one timing in seconds (default: 4)",
    )
    parser.add_argument(
        "--seed", type=int, default=1337, help="data and layer seed (default: 1337)"
    )
    parser.add_argument(
        "--no-jit", action="store_true", help="skip the jax.jit entries"
    )
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Full-run defaults, or the quick ones, overridden by explicit options."""
    if args.quick:
        base = Settings(
            height=32,
            width=32,
            batch_size=8,
            warmup=2,
            batches=3,
            repeats=1,
            quick=True,
        )
    else:
        base = Settings()
    size = args.size
    return Settings(
        height=size or base.height,
        width=size or base.width,
        batch_size=args.batch_size or base.batch_size,
        num_classes=args.num_classes,
        warmup=base.warmup if args.warmup is None else args.warmup,
        batches=args.batches or base.batches,
        seconds=args.seconds,
        repeats=args.repeats or base.repeats,
        seed=args.seed,
        quick=base.quick,
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the tables, write JSON and Markdown.

    Returns the report (the JSON's content).
    """
    args = parse_args(argv)
    settings = settings_from_args(args)
    # Hashed now: keras_sumix was imported (and the layers traced) from these.
    sources = layer_sources()
    output = args.output or (QUICK_OUTPUT if settings.quick else DEFAULT_OUTPUT)

    def log(message: str) -> None:
        print(message, flush=True)

    backend = keras.backend.backend()
    log(
        f"KERAS_BACKEND={backend}; batch {settings.batch_size} x "
        f"{settings.height}x{settings.width}x3 float32; {settings.repeats} repeat(s)"
    )
    batch = make_batch(settings)
    entries = tf_data_entries(settings, batch)
    jit_skipped = None
    if args.no_jit:
        jit_skipped = "--no-jit"
    elif backend != "jax":
        jit_skipped = f"needs KERAS_BACKEND=jax (ran with {backend})"
    else:
        entries += jit_entries(settings, batch)
    machine = machine_info()
    run(entries, settings, log)
    machine["loadavg_end"] = _loadavg()

    report = build_report(entries, settings, machine, sources, jit_skipped)
    log(format_text(report))
    for goal in report["goals"]:
        log(
            f"{'PASS' if goal['passed'] else 'FAIL'}: {goal['goal']} "
            f"(measured {_fmt_ratio(goal['ratio'])})"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    output.with_suffix(".md").write_text(format_markdown(report))
    log(f"wrote {output} and {output.with_suffix('.md')}")
    return report


if __name__ == "__main__":
    main()
