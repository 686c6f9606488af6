"""Throughput of the keras_sumix mixing layers where users run them, side by
side with Keras and KerasCV.

Sections (``--sections``; all but ``constant`` by default):

* ``repeat_batch``, ``batch_repeat``: what users write.
  ``Dataset.from_tensor_slices`` over an in-memory pool of 256 float32 images
  and 100-class one-hot labels, ``.repeat().batch(64)`` or
  ``.batch(64).repeat()`` (the two orders users write; the batch dimension is
  unknown to the traced map function in both), ``.map(layer,
  num_parallel_calls=AUTOTUNE)``, ``.prefetch(2)``. The goals are judged in
  every one of them.
* ``repeat_batch_int``, ``batch_repeat_int``: the same with integer class
  labels (the layer one-hot encodes them).
* ``jpeg``: the fine-grained recipe's shape. JPEG bytes (encoded once at
  setup with ``tf.io.encode_jpeg``, about CUB-sized), shuffled, decoded and
  resized to 224x224 before batching (``map(decode, AUTOTUNE)``), then
  batched, mixed and prefetched as above.
* ``constant``: ``Dataset.from_tensors(batch).repeat()``, one cached batch
  with a static shape; what this benchmark timed before. No training
  pipeline looks like it; kept, opt-in, to compare with older figures.
* ``step``: on device, inside a compiled train step: ``keras_sumix.
  MixupModel`` (MCE) on ``resnet18_cifar`` at batch 128, 32x32, with each of
  our mixers and with a no-op mixer, compiled (``jax.jit``; XLA on
  TensorFlow), in one worker process per backend. A mixer's share of the
  step is its step time over a no-mixing step's timed right next to it,
  minus one (median over rounds); each
  mixer's ``mix`` compiled alone at the same shape is timed as well, a
  precise figure where the step's own noise hides a few milliseconds, and
  the goal (<= 10% of the step) is judged on it.

Each tf.data section times an identity map (the pipeline's ceiling), our
MixUp / CutMix / FMix / SaliencyMix / ResizeMix and every peer:
``keras.layers.CutMix`` / ``MixUp`` and ``keras_cv.layers.CutMix`` / ``MixUp``
/ ``FourierMix``. All layers take the ``{"images", "labels"}`` dict; ours and
Keras's switch to TensorFlow ops inside ``tf.data`` whatever
``KERAS_BACKEND`` is (JAX unless set).

Each timing runs one pipeline alone: a fresh iterator, every entry with the
same fixed ``prefetch(2)`` buffer, warm-up batches then windows of batches
until two windows in a row agree within 15% (the rate is steady), then the
timed batches; the iterator is deleted and garbage-collected before the next
timing, so no other pipeline is alive (an earlier version timed datasets
with ``prefetch(AUTOTUNE)`` round-robin). Every entry is timed ``--repeats``
times (rounds over the entries, direction alternating) and the median and the
spread (min-max) are reported, with the load average before and after every
timing. Ratios are to references measured in the same run; a goal's ratio is
the median over rounds of the entry's img/s over its reference's in the same
round. Each timing also records images per CPU-second of this process and how
many cores other processes kept busy meanwhile.

Usage::

    python benchmarks/mixers.py                         # everything, ~10 minutes
    python benchmarks/mixers.py --sections repeat_batch,batch_repeat  # ~3 minutes
    python benchmarks/mixers.py --sections step --step-backends jax --merge
    python benchmarks/mixers.py --quick                 # smoke run, every entry

Writes ``benchmarks/results/mixers.json`` (``mixers_quick.json`` with
``--quick``) and a Markdown report next to it (same name, ``.md``). With
``--merge`` the sections not run are kept from the existing JSON (each
section records its own date and load).
"""

from __future__ import annotations

import os

from _report import write_report

# Must be set before Keras is imported; an explicit KERAS_BACKEND wins.
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import datetime
import gc
import hashlib
import importlib.metadata
import json
import math
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np

import keras_sumix

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_OUTPUT = RESULTS_DIR / "mixers.json"
QUICK_OUTPUT = RESULTS_DIR / "mixers_quick.json"
#: Version of the JSON layout (`benchmarks/readme_tables.py` reads it).
FORMAT = 3

QUICK_NOTE = (
    "Quick smoke run (tiny images, a few batches, one repeat, a tiny CNN in "
    "the train step): it checks that every entry runs; its numbers and goal "
    "results mean nothing."
)

#: The in-memory sections: (order of repeat and batch, label kind).
SLICE_SECTIONS = {
    "repeat_batch": ("repeat_batch", "one-hot"),
    "batch_repeat": ("batch_repeat", "one-hot"),
    "repeat_batch_int": ("repeat_batch", "integer"),
    "batch_repeat_int": ("batch_repeat", "integer"),
}
PIPELINE_SECTIONS = (*SLICE_SECTIONS, "jpeg", "constant")
SECTIONS = (*PIPELINE_SECTIONS, "step")
DEFAULT_SECTIONS = (*SLICE_SECTIONS, "step")
#: Every tf.data entry ends on this fixed prefetch buffer (batches).
PREFETCH = 2
STEP_BACKENDS = ("jax", "tensorflow")
COMPILER = {"jax": "jax.jit", "tensorflow": "XLA"}

#: Goals in a tf.data section: (section, entry, reference, minimum ratio,
#: stretch). A stretch goal is reported but not counted in `all_goals_passed`.
PIPELINE_GOALS: tuple[tuple[str, str, str, float, bool], ...] = tuple(
    (section, entry, reference, minimum, stretch)
    for section in SLICE_SECTIONS
    for entry, reference, minimum, stretch in (
        ("sumix_cutmix", "keras_cutmix", 1.5, False),
        ("sumix_fmix", "keras_cv_fouriermix", 3.0, False),
        ("sumix_saliencymix", "keras_cutmix", 0.5, False),
        ("sumix_resizemix", "keras_cutmix", 0.5, False),
        ("sumix_cutmix", "keras_mixup", 1.0, True),
    )
)
#: Inside the compiled step: the most a mixer may add to the step.
STEP_SHARE_GOAL = 0.10

#: Entries of a tf.data section, in timing order: each goal's entry sits next
#: to its reference, so that the two are timed close together in every round.
ENTRY_ORDER = (
    "identity",
    "keras_cutmix",
    "sumix_cutmix",
    "sumix_saliencymix",
    "sumix_resizemix",
    "keras_cv_cutmix",
    "keras_mixup",
    "sumix_mixup",
    "keras_cv_mixup",
    "keras_cv_fouriermix",
    "sumix_fmix",
)
OUR_MIXERS = {
    "sumix_mixup": "MixUp",
    "sumix_cutmix": "CutMix",
    "sumix_fmix": "FMix",
    "sumix_saliencymix": "SaliencyMix",
    "sumix_resizemix": "ResizeMix",
}


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
    #: Images in the in-memory pool of the slice sections.
    pool: int = 256
    #: JPEG images encoded for the `jpeg` section, and their stored size.
    jpeg_pool: int = 256
    jpeg_shape: tuple[int, int] = (375, 500)
    warmup: int = 3
    #: Warm-up windows (of `steady_batches`) at most, until two agree.
    steady_windows: int = 6
    steady_batches: int = 3
    batches: int | None = None
    seconds: float = 3.0
    min_batches: int = 3
    repeats: int = 3
    seed: int = 1337
    quick: bool = False
    sections: tuple[str, ...] = DEFAULT_SECTIONS
    # The compiled train step.
    step_backends: tuple[str, ...] = STEP_BACKENDS
    step_batch: int = 128
    step_size: int = 32
    step_rounds: int = 3
    step_steps: int = 1
    step_seconds: float = 1.0


@dataclass
class Entry:
    """One measured configuration.

    `open()` prepares a fresh run and returns a blocking `step()` that
    produces one mixed batch and returns its number of images; `close()`
    releases it (tf.data iterators keep worker threads alive otherwise).
    """

    key: str
    label: str
    section: str
    open: Callable[[], Callable[[], int]]
    close: Callable[[], None] = lambda: None
    batches: int = 0
    img_s: list[float] = field(default_factory=list)
    warmup_batches: list[int] = field(default_factory=list)
    loadavg: list[tuple[Any, Any]] = field(default_factory=list)
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


def make_pool(
    settings: Settings, count: int, labels: str = "one-hot"
) -> dict[str, np.ndarray]:
    """`count` random float32 images in [0, 1) and one-hot (float32) or
    integer (int32) labels."""
    rng = np.random.default_rng(settings.seed)
    shape = (count, settings.height, settings.width, 3)
    images = rng.random(shape, dtype=np.float32)
    classes = rng.integers(0, settings.num_classes, count).astype(np.int32)
    if labels == "integer":
        return {"images": images, "labels": classes}
    return {
        "images": images,
        "labels": np.eye(settings.num_classes, dtype=np.float32)[classes],
    }


def make_jpegs(settings: Settings) -> tuple[list[bytes], np.ndarray]:
    """JPEG-encoded photo-like images (smooth colour fields plus grain) of
    `settings.jpeg_shape`, alternately landscape and portrait, and their
    integer classes."""
    import tensorflow as tf

    rng = np.random.default_rng(settings.seed)
    height, width = settings.jpeg_shape
    encoded = []
    for i in range(settings.jpeg_pool):
        shape = (height, width) if i % 2 == 0 else (width, height)
        coarse = rng.random((1, 6, 8, 3), dtype=np.float32) * 255.0
        smooth = tf.image.resize(coarse, shape, method="bicubic")[0].numpy()
        grain = rng.normal(0.0, 12.0, (*shape, 3))
        pixels = np.clip(smooth + grain, 0, 255).astype(np.uint8)
        encoded.append(tf.io.encode_jpeg(pixels, quality=90).numpy())
    classes = rng.integers(0, settings.num_classes, settings.jpeg_pool)
    return encoded, classes.astype(np.int32)


def layer_maps(settings: Settings) -> dict[str, tuple[str, Callable[[Any], Any]]]:
    """Fresh instances of every layer a tf.data section maps, keyed by entry."""
    import keras_cv

    seed, layers = settings.seed, keras_sumix.layers
    kwargs = {"num_classes": settings.num_classes, "seed": seed}
    maps: dict[str, tuple[str, Callable[[Any], Any]]] = {
        "identity": ("identity (lambda b: b)", lambda b: b),
        "keras_cutmix": ("keras.layers.CutMix", keras.layers.CutMix(seed=seed)),
        "keras_mixup": ("keras.layers.MixUp", keras.layers.MixUp(seed=seed)),
        "keras_cv_cutmix": (
            "keras_cv.layers.CutMix",
            keras_cv.layers.CutMix(seed=seed),
        ),
        "keras_cv_mixup": ("keras_cv.layers.MixUp", keras_cv.layers.MixUp(seed=seed)),
        "keras_cv_fouriermix": (
            "keras_cv.layers.FourierMix",
            keras_cv.layers.FourierMix(seed=seed),
        ),
    }
    for key, name in OUR_MIXERS.items():
        maps[key] = (f"keras_sumix {name}", getattr(layers, name)(**kwargs))
    return {key: maps[key] for key in ENTRY_ORDER}


def _dataset_entry(key: str, label: str, section: str, dataset: Any) -> Entry:
    holder: dict[str, Any] = {}

    def open_() -> Callable[[], int]:
        iterator = iter(dataset)
        holder["iterator"] = iterator

        def step() -> int:
            return int(next(iterator)["images"].shape[0])

        return step

    def close() -> None:
        # No other pipeline may stay alive (its workers would fill their
        # buffers while the next entry is timed).
        holder.pop("iterator", None)
        gc.collect()

    return Entry(key, label, section, open_, close)


#: What each tf.data section runs, in words (the report quotes it).
_ORDERS = {"repeat_batch": ".repeat().batch(B)", "batch_repeat": ".batch(B).repeat()"}
_MAPPED = f".map(layer, AUTOTUNE).prefetch({PREFETCH})"
PIPELINES = {
    **{
        key: f"from_tensor_slices(pool){_ORDERS[order]}{_MAPPED}"
        for key, (order, _) in SLICE_SECTIONS.items()
    },
    "jpeg": (
        "from_tensor_slices((jpeg_bytes, classes)).shuffle(pool)"
        ".map(decode_jpeg + resize + /255 + one_hot, AUTOTUNE).batch(B).repeat()"
        + _MAPPED
    ),
    "constant": "from_tensors(one_batch).repeat()" + _MAPPED,
}
SECTION_TITLES = {
    **{
        key: f"tf.data: slices{_ORDERS[order]}, {labels} labels"
        for key, (order, labels) in SLICE_SECTIONS.items()
    },
    "jpeg": "tf.data: JPEG decode + resize -> batch",
    "constant": "tf.data: one constant batch repeated (not a training pipeline)",
    "step": "compiled train step (MixupModel)",
}


def source_dataset(section: str, settings: Settings) -> Any:
    """The batched, unmixed dataset of a tf.data section (dict elements)."""
    import tensorflow as tf

    batch, pool = settings.batch_size, settings.pool
    if section in SLICE_SECTIONS:
        order, labels = SLICE_SECTIONS[section]
        ds = tf.data.Dataset.from_tensor_slices(make_pool(settings, pool, labels))
        if order == "repeat_batch":
            return ds.repeat().batch(batch)
        return ds.batch(batch).repeat()
    if section == "constant":
        one = make_pool(settings, batch)
        return tf.data.Dataset.from_tensors(
            {k: tf.constant(v) for k, v in one.items()}
        ).repeat()
    if section == "jpeg":
        encoded, classes = make_jpegs(settings)
        size = (settings.height, settings.width)
        classes_count = settings.num_classes

        def decode(data: Any, label: Any) -> dict[str, Any]:
            image = tf.io.decode_jpeg(data, channels=3)
            image = tf.image.resize(image, size, method="bilinear") / 255.0
            return {"images": image, "labels": tf.one_hot(label, classes_count)}

        ds = tf.data.Dataset.from_tensor_slices((encoded, classes))
        ds = ds.shuffle(len(encoded), seed=settings.seed)
        ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.batch(batch).repeat()
    raise ValueError(f"unknown tf.data section {section!r}")


def tf_data_entries(settings: Settings, section: str) -> list[Entry]:
    """The entries of one tf.data section: identity, ours and every peer,
    each mapped on the section's batched dataset. Keras's and KerasCV's
    layers take one-hot labels only: in an integer-label section they (and
    identity) run on the same pipeline with one-hot labels."""
    import tensorflow as tf

    source = source_dataset(section, settings)
    order, labels = SLICE_SECTIONS.get(section, ("", "one-hot"))
    one_hot = source if labels == "one-hot" else source_dataset(order, settings)
    entries = []
    for key, (label, fn) in layer_maps(settings).items():
        mapped = source if key in OUR_MIXERS else one_hot
        # The map function is traced here, once per entry.
        dataset = mapped.map(fn, num_parallel_calls=tf.data.AUTOTUNE).prefetch(PREFETCH)
        entries.append(_dataset_entry(key, label, section, dataset))
    return entries


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


def _time(
    step: Callable[[], int], count: int
) -> tuple[int, float, float, float | None]:
    """Run `count` steps; images, wall seconds, own CPU-seconds, and the mean
    number of cores other processes kept busy meanwhile (None if unknown)."""
    busy = _busy_cpu_seconds()
    cpu = time.process_time()
    start = time.perf_counter()
    images = 0
    for _ in range(count):
        images += step()
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    other = None
    # /proc/stat counts in clock ticks (10 ms): too coarse for short timings.
    if busy is not None and wall >= 0.5:
        now = _busy_cpu_seconds()
        if now is not None:
            other = max(0.0, (now - busy - cpu) / wall)
    return images, wall, cpu, other


def warm_up(step: Callable[[], int], settings: Settings) -> int:
    """`settings.warmup` batches, then windows of `steady_batches` until two
    windows in a row agree within 15% (at most `steady_windows`): the
    pipeline's rate is steady (tracing, thread pools, autotuning and the
    prefetch buffer's first fill are behind). Returns the batches run."""
    for _ in range(settings.warmup):
        step()
    previous, count = None, settings.warmup
    for _ in range(settings.steady_windows):
        images, wall, _, _ = _time(step, settings.steady_batches)
        count += settings.steady_batches
        rate = images / wall
        if previous is not None and abs(rate - previous) <= 0.15 * previous:
            break
        previous = rate
    return count


def calibrate(entry: Entry, settings: Settings) -> None:
    """Warm the entry up (tracing, pools, autotuning) and choose how many
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
            elapsed += _time(step, 1)[1]
            count += 1
        per_batch = elapsed / count
        entry.batches = max(
            settings.min_batches, math.ceil(settings.seconds / per_batch)
        )
    finally:
        entry.close()


def measure(entry: Entry, settings: Settings) -> None:
    """One timing, the pipeline alone: a fresh iterator, warm-up until the
    rate is steady, then `entry.batches` batches; the iterator is deleted
    (and garbage-collected) before anything else runs."""
    load = _loadavg()
    step = entry.open()
    try:
        entry.warmup_batches.append(warm_up(step, settings))
        images, wall, cpu, other = _time(step, entry.batches)
    finally:
        del step
        entry.close()
    entry.loadavg.append((load, _loadavg()))
    entry.img_s.append(images / wall)
    entry.cpu_img_s.append(images / cpu if cpu > 0 else float("nan"))
    entry.other_load.append(other)


def run(
    entries: Sequence[Entry], settings: Settings, log: Callable[[str], None]
) -> None:
    """Calibrate every entry, then measure them `repeats` times, one at a
    time (each alone, see `measure`), in rounds over the entries that
    alternate direction (A B C, C B A, ...) so that a slow drift of the
    machine's load weighs on all entries alike."""
    for entry in entries:
        calibrate(entry, settings)
        log(f"  calibrated {entry.section:11s} {entry.label}: {entry.batches} batches")
    for repeat in range(settings.repeats):
        order = entries if repeat % 2 == 0 else list(reversed(entries))
        for entry in order:
            measure(entry, settings)
            other = entry.other_load[-1]
            log(
                f"  round {repeat + 1}/{settings.repeats} {entry.section:11s} "
                f"{entry.label}: {entry.img_s[-1]:,.0f} img/s, "
                f"{entry.cpu_img_s[-1]:,.0f} img/CPU-s"
                + ("" if other is None else f", other load {other:.2f} cores")
            )


# ---------------------------------------------------------------------- #
# The compiled train step (one worker process per backend)
# ---------------------------------------------------------------------- #
def _no_mixing_layer() -> Any:
    """A keras_sumix mixing layer that mixes nothing (`lam = 1`, identity
    pairing): the MCE step without its mixing."""
    from keras_sumix.layers.base import MixingLayer, MixResult

    class NoMixing(MixingLayer):
        def _mix(self, images: Any, masks: Any = None) -> tuple[MixResult, Any]:
            ops = self.backend
            images = ops.cast(ops.convert_to_tensor(images), self.compute_dtype)
            n = ops.shape(images)[0]
            result = MixResult(
                images,
                ops.numpy.arange(n, dtype="int32"),
                ops.numpy.ones((n,), dtype="float32"),
            )
            return result, masks

    return NoMixing(seed=0)


def _compiled_mix(layer: Any, images: Any) -> Callable[[], None]:
    """`layer.mix(images)` compiled alone with the backend's compiler, as a
    blocking call (JAX: stateless `jax.jit`; TensorFlow: XLA)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        variables = list(layer.variables)

        def stateless(values: list[Any], inputs: Any) -> tuple[Any, list[Any]]:
            mapping = list(zip(variables, values, strict=True))
            with keras.StatelessScope(state_mapping=mapping) as scope:
                outputs = layer.mix(inputs)
            return outputs, [scope.get_current_value(v) for v in variables]

        compiled = jax.jit(stateless)
        state = {"values": [v.value for v in variables]}

        def call() -> None:
            outputs, state["values"] = compiled(state["values"], images)
            jax.block_until_ready(outputs)

        return call
    import tensorflow as tf

    function = tf.function(layer.mix, jit_compile=True)

    def call() -> None:
        for output in function(images):  # MixUp's mask is None
            if output is not None:
                output.numpy()

    return call


def _time_calls(call: Callable[[], None], seconds: float) -> float:
    """Median seconds per call over 5 timings of about `seconds / 5` each."""
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < min(0.2, seconds / 5) or count < 2:
        call()
        count += 1
    per = (time.perf_counter() - start) / count
    calls = max(1, round(seconds / 5 / per))
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        samples.append((time.perf_counter() - start) / calls)
    return statistics.median(samples)


def step_shares(mixed: Sequence[float], plain: Sequence[float]) -> dict[str, Any]:
    """A mixer's share of the step from paired timings: `mixed[i]` (seconds
    per step with the mixer) was taken right next to `plain[i]` (without
    mixing), so a slow drift of the machine's load cancels in each pair.

    Returns `step_share`, the median over pairs of `mixed / plain - 1`, and
    every pair's value in `rounds_step_share`."""
    pairs = [a / b - 1.0 for a, b in zip(mixed, plain, strict=True)]
    return {"step_share": statistics.median(pairs), "rounds_step_share": pairs}


def step_worker(settings: Settings) -> dict[str, Any]:
    """Time the compiled MCE step with each mixer and without mixing, round-
    robin, on the current backend; and each mixer's `mix` compiled alone."""
    ks = keras_sumix
    size, classes, batch = settings.step_size, settings.num_classes, settings.step_batch
    rng = np.random.default_rng(settings.seed)
    x = rng.random((batch, size, size, 3), dtype=np.float32)
    y = rng.integers(0, classes, batch).astype("int32")
    x_tensor = keras.ops.convert_to_tensor(x)
    load_start = _loadavg()

    def backbone() -> keras.Model:
        if settings.quick:
            return ks.models.small_cnn((size, size, 3), (8,))
        return ks.models.resnet18_cifar((size, size, 3))

    names = {"none": "no mixing", **{v: v for v in OUR_MIXERS.values()}}
    models, first_step = {}, {}
    for key in names:
        keras.utils.set_random_seed(settings.seed)
        mixer = (
            _no_mixing_layer()
            if key == "none"
            else getattr(ks.layers, key)(seed=settings.seed)
        )
        model = ks.MixupModel(backbone(), classes, mixer)
        model.compile(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9), jit_compile=True
        )
        start = time.perf_counter()
        model.train_on_batch(x, y)  # traces and compiles
        first_step[key] = time.perf_counter() - start
        models[key] = model
    times: dict[str, list[float]] = {key: [] for key in names}
    paired: dict[str, list[float]] = {key: [] for key in names if key != "none"}

    def timing(key: str) -> float:
        start = time.perf_counter()
        for _ in range(settings.step_steps):
            models[key].train_on_batch(x, y)  # returns host values: synced
        seconds = (time.perf_counter() - start) / settings.step_steps
        times[key].append(seconds)
        return seconds

    # Every mixer's timing is paired with a no-mixing timing right next to
    # it (before or after, alternately), round-robin over the mixers.
    order = list(paired)
    for r in range(settings.step_rounds):
        for i, key in enumerate(order if r % 2 == 0 else order[::-1]):
            if (i + r) % 2 == 0:
                paired[key].append(timing("none"))
                timing(key)
            else:
                timing(key)
                paired[key].append(timing("none"))
    alone = {}
    for key in names:
        if key == "none":
            continue
        layer = getattr(ks.layers, key)(seed=settings.seed)
        alone[key] = _time_calls(_compiled_mix(layer, x_tensor), settings.step_seconds)
    none = times["none"]
    rows = []
    for key, label in names.items():
        row: dict[str, Any] = {
            "mixer": key,
            "label": label,
            "seconds_per_step": statistics.median(times[key]),
            "rounds_seconds": times[key],
            "first_step_seconds": first_step[key],
        }
        if key != "none":
            row.update(step_shares(times[key], paired[key]))
            row["paired_none_seconds"] = paired[key]
            row["mix_alone_seconds"] = alone[key]
            row["mix_alone_share"] = alone[key] / statistics.median(none)
        rows.append(row)
    return {
        "backend": keras.backend.backend(),
        "compiler": COMPILER.get(keras.backend.backend(), "?"),
        "date": _now(),
        "loadavg_start": load_start,
        "loadavg_end": _loadavg(),
        "rows": rows,
    }


def _worker_flags(settings: Settings) -> list[str]:
    flags = [
        "--seed",
        str(settings.seed),
        "--num-classes",
        str(settings.num_classes),
        "--step-batch",
        str(settings.step_batch),
        "--step-rounds",
        str(settings.step_rounds),
        "--step-steps",
        str(settings.step_steps),
    ]
    return flags + (["--quick"] if settings.quick else [])


def run_step_section(settings: Settings, log: Callable[[str], None]) -> dict[str, Any]:
    """The `step` section: one worker process per backend, one after the
    other (the Keras backend is fixed at import)."""
    blocks = []
    for backend in settings.step_backends:
        log(f"  step: {backend} worker (compiles {1 + len(OUR_MIXERS)} models)")
        command = [sys.executable, __file__, "--step-worker", *_worker_flags(settings)]
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{backend} step worker failed:\n{done.stderr[-3000:]}")
        block = json.loads(done.stdout.strip().splitlines()[-1])
        for row in block["rows"]:
            share = row.get("step_share")
            log(
                f"  step {backend:10s} {row['label']:12s} "
                f"{row['seconds_per_step']:.3f} s/step"
                + ("" if share is None else f", share {100 * share:+.1f}%")
                + (
                    ""
                    if "mix_alone_share" not in row
                    else f", alone {1e3 * row['mix_alone_seconds']:.2f} ms"
                    f" ({100 * row['mix_alone_share']:.2f}%)"
                )
            )
        blocks.append(block)
    return {
        "title": SECTION_TITLES["step"],
        "pipeline": (
            f"MixupModel({'small_cnn' if settings.quick else 'resnet18_cifar'}, "
            f"{settings.num_classes}, mixer).compile(SGD, jit_compile=True)"
            f".train_on_batch at batch {settings.step_batch}, "
            f"{settings.step_size}x{settings.step_size}x3"
        ),
        "batch_size": settings.step_batch,
        "image_shape": [settings.step_size, settings.step_size, 3],
        "rounds": settings.step_rounds,
        "steps_per_timing": settings.step_steps,
        "backends": blocks,
    }


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


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


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
        "date": _now(),
        "backend": keras.backend.backend(),
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        # The allocator's settings: above glibc's mmap threshold (32 MB at
        # most by default) every new buffer is mapped afresh and page-faulted
        # in, the largest cost of a 224-px batch of 64 (docs/benchmarks.md).
        "allocator": {
            key: value
            for key, value in os.environ.items()
            if key.startswith("MALLOC_") or key == "LD_PRELOAD"
        },
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


def pipeline_section(
    section: str,
    entries: Sequence[Entry],
    settings: Settings,
    dates: tuple[str, str],
    loads: tuple[Any, Any],
) -> dict[str, Any]:
    """One tf.data section of the report."""
    by_key = {e.key: e for e in entries}
    identity = by_key.get("identity")
    keras_cutmix, keras_mixup = by_key.get("keras_cutmix"), by_key.get("keras_mixup")
    rows = []
    for entry in entries:
        rows.append(
            {
                "key": entry.key,
                "label": entry.label,
                "batches_per_repeat": entry.batches,
                "median_img_s": entry.median,
                "repeats_img_s": entry.img_s,
                "median_cpu_img_s": entry.cpu_median,
                "repeats_cpu_img_s": entry.cpu_img_s,
                "other_load_cores": _loads(entry.other_load),
                "warmup_batches": entry.warmup_batches,
                "loadavg_per_timing": entry.loadavg,
                "x_identity": _ratio(entry, identity),
                "x_keras_cutmix": _ratio(entry, keras_cutmix),
                "x_keras_cutmix_cpu": _ratio(entry, keras_cutmix, cpu=True),
                "x_keras_mixup": _ratio(entry, keras_mixup),
            }
        )
    info: dict[str, Any] = {
        "title": SECTION_TITLES[section],
        "pipeline": PIPELINES[section],
        "batch_size": settings.batch_size,
        "image_shape": [settings.height, settings.width, 3],
        "repeats": settings.repeats,
        "target_seconds": settings.seconds,
        "date_start": dates[0],
        "date_end": dates[1],
        "loadavg_start": loads[0],
        "loadavg_end": loads[1],
        "entries": rows,
    }
    info["settings"] = {
        "image_size": [settings.height, settings.width],
        "batch_size": settings.batch_size,
        # Integer sections: ours take integers, the peers one-hot labels.
        "labels": SLICE_SECTIONS.get(section, ("", "one-hot"))[1],
        "num_classes": settings.num_classes,
        "map_num_parallel_calls": "AUTOTUNE",
        "prefetch": PREFETCH,
        "order": SLICE_SECTIONS.get(section, ("batch_repeat", ""))[0],
        "timing": "each pipeline alone, fresh iterator, steady warm-up",
    }
    if section in SLICE_SECTIONS:
        info["pool"] = settings.pool
    if section == "jpeg":
        info["pool"] = settings.jpeg_pool
        info["jpeg_shape"] = list(settings.jpeg_shape)
    return info


def pipeline_goals(sections: dict[str, Any]) -> list[dict[str, Any]]:
    """The tf.data goals whose section is in the report."""
    goals = []
    for section, key, reference, minimum, stretch in PIPELINE_GOALS:
        if section not in sections:
            continue
        rows = {row["key"]: row for row in sections[section]["entries"]}
        entry, ref = rows[key], rows[reference]
        paired = [
            a / b
            for a, b in zip(entry["repeats_img_s"], ref["repeats_img_s"], strict=True)
        ]
        ratio = statistics.median(paired)
        goals.append(
            {
                "section": section,
                "entry": key,
                "reference": reference,
                "goal": f"{entry['label']} >= {minimum:g}x {ref['label']}",
                "minimum_ratio": minimum,
                "stretch": stretch,
                "ratio": ratio,
                "per_round_ratios": paired,
                "ratio_of_medians": entry["median_img_s"] / ref["median_img_s"],
                "cpu_time_ratio": entry["median_cpu_img_s"] / ref["median_cpu_img_s"],
                "passed": ratio >= minimum,
            }
        )
    return goals


def step_goals(step: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One goal per backend and mixer: its share of the compiled step.

    Judged on the mixer's `mix` compiled alone over the step without mixing:
    the in-step difference (step with the mixer over step without, minus
    one) is reported beside it, but on a shared CPU a resnet18_cifar step's
    own round-to-round noise (+-10-20%) is far larger than a mixer's cost,
    so that difference cannot resolve it."""
    if step is None:
        return []
    goals = []
    for block in step["backends"]:
        for row in block["rows"]:
            if row["mixer"] == "none":
                continue
            share = row["mix_alone_share"]
            goals.append(
                {
                    "section": "step",
                    "backend": block["backend"],
                    "entry": row["mixer"],
                    "goal": (
                        f"{row['label']} <= {100 * STEP_SHARE_GOAL:g}% of the "
                        f"{block['compiler']} MCE step ({block['backend']})"
                    ),
                    "maximum_share": STEP_SHARE_GOAL,
                    "stretch": False,
                    "share": share,
                    "step_share": row["step_share"],
                    "mix_alone_share": row["mix_alone_share"],
                    "passed": share <= STEP_SHARE_GOAL,
                }
            )
    return goals


def build_report(
    sections: dict[str, Any],
    settings: Settings,
    machine: dict[str, Any],
    sources: dict[str, str],
) -> dict[str, Any]:
    """Everything the JSON holds: settings, machine, the layer sources'
    hashes, the sections and the goals."""
    goals = pipeline_goals(sections) + step_goals(sections.get("step"))
    return {
        "benchmark": "mixers",
        "format": FORMAT,
        "settings": {
            "batch_size": settings.batch_size,
            "image_shape": [settings.height, settings.width, 3],
            "dtype": "float32",
            "num_classes": settings.num_classes,
            "labels": "per section (one-hot, or integer in the *_int sections)",
            "prefetch": PREFETCH,
            "warmup_batches": settings.warmup,
            "batches": settings.batches,
            "target_seconds": settings.seconds,
            "repeats": settings.repeats,
            "seed": settings.seed,
            "quick": settings.quick,
            "statistic": (
                "img/s: median over repeats, each timing one pipeline alone (fresh "
                "iterator, prefetch(2), warm-up until steady, no other pipeline "
                "alive), in rounds over the entries (direction alternating); "
                "min-max: spread over repeats; img/CPU-s: images "
                "per CPU-second of this process; goal ratio: median over rounds "
                "of the entry's img/s over its reference's in the same round; "
                "step share: median over rounds of (step with the mixer / step "
                "without mixing timed next to it - 1), and the mixer compiled "
                "alone over the median step without mixing (what the step goal "
                "judges)"
            ),
        },
        "machine": machine,
        "layer_sources_sha256": sources,
        "sections": sections,
        "goals": goals,
        "all_goals_passed": all(g["passed"] for g in goals if not g["stretch"]),
    }


def _fmt_rate(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:,.0f}"


def _fmt_ratio(value: float | None) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.2g}x"


def _fmt_share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.1f}%"


def _verdict(goal: dict[str, Any]) -> str:
    verdict = "PASS" if goal["passed"] else "FAIL"
    return verdict + (" (stretch)" if goal["stretch"] else "")


def tables(report: dict[str, Any]) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """The report as (title, caption, header, rows) tables for the console
    and the Markdown."""
    out = []
    for key, section in report["sections"].items():
        if key == "step":
            continue
        rows = []
        for row in section["entries"]:
            spread = (
                f"{_fmt_rate(min(row['repeats_img_s']))}-"
                f"{_fmt_rate(max(row['repeats_img_s']))}"
            )
            loads = row["other_load_cores"]
            rows.append(
                [
                    row["label"],
                    _fmt_rate(row["median_img_s"]),
                    spread,
                    _fmt_rate(row["median_cpu_img_s"]),
                    _fmt_ratio(row["x_identity"]),
                    _fmt_ratio(row["x_keras_cutmix"]),
                    _fmt_ratio(row["x_keras_cutmix_cpu"]),
                    _fmt_ratio(row["x_keras_mixup"]),
                    "-" if not loads else f"{statistics.median(loads):.2f}",
                ]
            )
        header = [
            "Entry",
            "img/s (median)",
            "min-max",
            "img/CPU-s",
            "x identity",
            "x keras CutMix",
            "(CPU-time)",
            "x keras MixUp",
            "other load",
        ]
        caption = (
            f"`{section['pipeline']}`, B = {section['batch_size']}, "
            f"{'x'.join(map(str, section['image_shape']))} float32, "
            f"{section['settings']['labels']} labels; "
            f"{section['date_start']}, load average {section['loadavg_start']} "
            f"-> {section['loadavg_end']}."
        )
        out.append((section["title"], caption, header, rows))
    step = report["sections"].get("step")
    if step:
        rows = []
        for block in step["backends"]:
            for row in block["rows"]:
                rows.append(
                    [
                        block["backend"],
                        row["label"],
                        f"{row['seconds_per_step']:.3f}",
                        _fmt_share(row.get("step_share")),
                        " ".join(
                            _fmt_share(s) for s in row.get("rounds_step_share", [])
                        )
                        or "-",
                        "-"
                        if "mix_alone_seconds" not in row
                        else f"{1e3 * row['mix_alone_seconds']:.2f}",
                        "-"
                        if "mix_alone_share" not in row
                        else f"{100 * row['mix_alone_share']:.3f}%",
                    ]
                )
        header = [
            "backend",
            "mixer",
            "s/step (median)",
            "step vs no mixing",
            "per round",
            "mix alone (ms)",
            "mix alone / step",
        ]
        loads = ", ".join(
            f"{b['backend']} {b['loadavg_start']} -> {b['loadavg_end']}"
            for b in step["backends"]
        )
        caption = (
            f"`{step['pipeline']}`; {step['rounds']} round(s) of "
            f"{step['steps_per_timing']} step(s) per timing, round-robin over "
            "the mixers, each timing paired with a no-mixing one right next "
            f"to it, after one compiling step; load average {loads}."
        )
        out.append((step["title"], caption, header, rows))
    goal_rows = []
    for goal in report["goals"]:
        if goal["section"] == "step":
            goal_rows.append(
                [
                    goal["goal"],
                    f"{100 * goal['share']:.3f}%",
                    f"in-step difference {_fmt_share(goal['step_share'])}",
                    _verdict(goal),
                ]
            )
        else:
            goal_rows.append(
                [
                    f"{goal['goal']} ({goal['section']})",
                    _fmt_ratio(goal["ratio"]),
                    "per round "
                    + " ".join(_fmt_ratio(r) for r in goal["per_round_ratios"])
                    + f"; CPU-time {_fmt_ratio(goal['cpu_time_ratio'])}",
                    _verdict(goal),
                ]
            )
    out.append(("Goals", "", ["Goal", "measured", "detail", "result"], goal_rows))
    return out


def format_text(report: dict[str, Any]) -> str:
    """Plain-text tables for the console."""
    lines = []
    for title, caption, header, rows in tables(report):
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines.append(f"\n{title}" + (f"\n{caption}" if caption else ""))
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        lines.append("  ".join("-" * w for w in widths))
        for row in rows:
            cells = [
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ]
            lines.append("  ".join(cells))
    if report["settings"]["quick"]:
        lines.append(f"\n{QUICK_NOTE}")
    return "\n".join(lines)


def format_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown document."""
    settings, machine = report["settings"], report["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    lines = [
        "# Mixer throughput" + (" (quick smoke run)" if settings["quick"] else ""),
        "",
        f"Generated by `benchmarks/mixers.py` (last run {machine['date']}).",
        "",
        f"- Data: float32 images, {settings['num_classes']}-class labels, "
        "one-hot or integer as each section says, with its pipeline; every "
        "layer is mapped with `num_parallel_calls=AUTOTUNE` on the batched "
        f"dataset, then `prefetch({PREFETCH})`.",
        f"- Backend: `KERAS_BACKEND={machine['backend']}` (layers switch to "
        f"TensorFlow ops inside tf.data); {versions}.",
        f"- Machine: {machine['cpu_usable']} usable of {machine['cpu_count']} "
        f"CPUs ({machine['cpu_model']}), shared; {machine['platform']}; "
        "allocator settings: "
        + (
            ", ".join(f"`{k}={v}`" for k, v in machine.get("allocator", {}).items())
            or "glibc's defaults"
        )
        + ".",
        f"- tf.data: median and min-max of {settings['repeats']} repeats, each "
        "pipeline timed alone (fresh iterator, no other pipeline alive) after "
        f"{settings['warmup_batches']} warm-up batches and windows until the "
        f"rate is steady, about {settings['target_seconds']:g} s each, in "
        "rounds over the entries; compare ratios, not absolute "
        "numbers. img/CPU-s counts this process's CPU time, which other work "
        "disturbs less; other load: cores other processes kept busy.",
        "- Goal ratio: median over rounds of the entry's img/s over its "
        "reference's in the same round (references are timed next to the "
        "entries they judge).",
        "- Step share: (step with the mixer) / (step without mixing, timed "
        "right next to it) - 1, median over rounds; `mix alone`: the mixer's "
        "`mix` compiled by "
        "itself at the step's shape, over the step without mixing. A step goal "
        "is judged on the latter: the step's own noise (+-10-20% per round on "
        "this shared CPU) hides the in-step difference.",
        "",
    ]
    for title, caption, header, rows in tables(report):
        lines += [f"## {title}", ""]
        if caption:
            lines += [caption, ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] + ["--:"] * (len(header) - 1)) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    if settings["quick"]:
        lines += [QUICK_NOTE, ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------- #
# Entry point
# ---------------------------------------------------------------------- #
def _names(text: str, allowed: Sequence[str], what: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {unknown}; expected some of {list(allowed)}"
        )
    return names


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 32x32 images, batch 8, 3 batches, 1 repeat, every "
        "entry, a tiny CNN in the train step (JAX only unless --step-backends); "
        f"writes {QUICK_OUTPUT.name} unless --output is given",
    )
    parser.add_argument(
        "--sections",
        type=lambda t: _names(t, SECTIONS, "sections"),
        default=None,
        help=f"comma-separated, of {', '.join(SECTIONS)} (default: "
        f"{','.join(DEFAULT_SECTIONS)})",
    )
    parser.add_argument(
        "--step-backends",
        type=lambda t: _names(t, STEP_BACKENDS, "backends"),
        default=None,
        help="backends of the step section (default: jax,tensorflow; jax with --quick)",
    )
    parser.add_argument(
        "--no-jit",
        action="store_true",
        help="skip the compiled train-step section (as leaving `step` out of "
        "--sections)",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the sections (and step backends) not run from the existing "
        "output JSON",
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
        help="warm-up batches before each timing (default: 3)",
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
        default=3.0,
        help="target duration of one timing in seconds (default: 3)",
    )
    parser.add_argument(
        "--step-batch",
        type=int,
        default=None,
        help="batch of the train step (default: 128)",
    )
    parser.add_argument(
        "--step-rounds",
        type=int,
        default=None,
        help="round-robin rounds of the train step (default: 3)",
    )
    parser.add_argument(
        "--step-steps",
        type=int,
        default=None,
        help="steps per timing of the train step (default: 1)",
    )
    parser.add_argument(
        "--seed", type=int, default=1337, help="data and layer seed (default: 1337)"
    )
    parser.add_argument("--step-worker", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Full-run defaults, or the quick ones, overridden by explicit options."""
    if args.quick:
        base = Settings(
            height=32,
            width=32,
            batch_size=8,
            pool=20,
            jpeg_pool=12,
            jpeg_shape=(40, 48),
            warmup=1,
            steady_windows=1,
            steady_batches=1,
            batches=2,
            repeats=1,
            quick=True,
            step_backends=("jax",),
            step_batch=8,
            step_rounds=1,
            step_seconds=0.2,
        )
    else:
        base = Settings()
    sections = args.sections or base.sections
    if args.no_jit:
        sections = tuple(s for s in sections if s != "step")
    size = args.size
    return replace(
        base,
        height=size or base.height,
        width=size or base.width,
        batch_size=args.batch_size or base.batch_size,
        num_classes=args.num_classes,
        warmup=base.warmup if args.warmup is None else args.warmup,
        batches=args.batches or base.batches,
        seconds=args.seconds,
        repeats=args.repeats or base.repeats,
        seed=args.seed,
        sections=sections,
        step_backends=args.step_backends or base.step_backends,
        step_batch=args.step_batch or base.step_batch,
        step_rounds=args.step_rounds or base.step_rounds,
        step_steps=args.step_steps or base.step_steps,
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Run the benchmark, print the tables, write JSON and Markdown.

    Returns the report (the JSON's content); None in a step worker, which
    prints its block as the last line of its output instead.
    """
    args = parse_args(argv)
    settings = settings_from_args(args)
    if args.step_worker:
        print(json.dumps(step_worker(settings)), flush=True)
        return None
    # Hashed now: keras_sumix was imported from these.
    sources = layer_sources()
    output = args.output or (QUICK_OUTPUT if settings.quick else DEFAULT_OUTPUT)

    def log(message: str) -> None:
        print(message, flush=True)

    machine = machine_info()
    log(
        f"KERAS_BACKEND={machine['backend']}; sections {','.join(settings.sections)}; "
        f"batch {settings.batch_size} x {settings.height}x{settings.width}x3 "
        f"float32; {settings.repeats} repeat(s); load average {_loadavg()}"
    )
    sections: dict[str, Any] = {}
    if args.merge and output.exists():
        previous = json.loads(output.read_text())
        if previous.get("format") == FORMAT:
            sections.update(previous["sections"])
    # The compiled step first: its workers fail fast (a bug there would
    # otherwise lose the pipelines' minutes of timing).
    if "step" in settings.sections:
        step = run_step_section(settings, log)
        if "step" in sections:
            # --merge: the backends not run now are kept.
            ran = {block["backend"] for block in step["backends"]}
            kept = [b for b in sections["step"]["backends"] if b["backend"] not in ran]
            step["backends"] = sorted(
                kept + step["backends"],
                key=lambda b: STEP_BACKENDS.index(b["backend"]),
            )
        sections["step"] = step
    pipelines = [s for s in settings.sections if s in PIPELINE_SECTIONS]
    if pipelines:
        entries = [e for s in pipelines for e in tf_data_entries(settings, s)]
        start, load = _now(), _loadavg()
        run(entries, settings, log)
        dates, loads = (start, _now()), (load, _loadavg())
        for section in pipelines:
            ours = [e for e in entries if e.section == section]
            sections[section] = pipeline_section(section, ours, settings, dates, loads)
    sections = {key: sections[key] for key in SECTIONS if key in sections}
    report = build_report(sections, settings, machine, sources)
    log(format_text(report))
    for goal in report["goals"]:
        log(f"{_verdict(goal)}: {goal['goal']}")
    write_report(report, output, format_markdown)
    log(f"wrote {output} and {output.with_suffix('.md')}")
    return report


if __name__ == "__main__":
    main()
