"""Shared fixtures and helpers. The suite runs once per backend
(`KERAS_BACKEND=tensorflow|jax|torch`), see the Makefile."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
from hypothesis import settings

settings.register_profile("keras", deadline=None, max_examples=12, derandomize=True)
settings.load_profile("keras")

BACKEND = keras.backend.backend()


def run_once(backend: str, why: str) -> pytest.MarkDecorator:
    """Run a test on `backend` only: an end-to-end script, or a property of
    the algorithm that does not depend on the backend (each backend's own
    code is tested on all three elsewhere). `make test` runs every backend;
    the cheapest place for such a test on a CPU is usually torch (eager, no
    compilation), which is also the shortest lane."""
    return pytest.mark.skipif(
        BACKEND != backend, reason=f"run once, under {backend}: {why}"
    )


#: Inside `tf.data` a mixing layer computes with TensorFlow ops whatever the
#: Keras backend: under TensorFlow as it is, under JAX and torch through the
#: same switch (`MixingLayer._backend_scope`); the data pipelines are
#: TensorFlow code under every backend. A test of a pipeline, or of a mixer
#: inside a `tf.data` map, runs under TensorFlow and torch: the JAX lane, the
#: longest, would run the torch lane's TensorFlow graphs again.
in_tf_data = pytest.mark.skipif(
    BACKEND == "jax",
    reason="TensorFlow ops inside tf.data; the switch to them runs under torch",
)


def load_script(path: Path):
    """Import a script (`examples/`, `benchmarks/`) as a module, with its
    folder first on `sys.path` as when it runs (the benchmark scripts import
    their neighbours, e.g. `_report`)."""
    folder = str(path.parent)
    sys.path.insert(0, folder)
    try:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        # Registered first, as an import does (dataclasses look it up).
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(folder)
    return module


def input_gradients(fn, *args) -> list[np.ndarray]:
    """NumPy gradients of the scalar `fn(*args)` w.r.t. each float32 arg,
    zeros where none flows, with the backend's own autodiff."""
    args = [np.asarray(a, "float32") for a in args]
    if BACKEND == "jax":
        import jax

        return [np.asarray(g) for g in jax.grad(fn, range(len(args)))(*args)]
    if BACKEND == "tensorflow":
        import tensorflow as tf

        xs = [tf.constant(a) for a in args]
        with tf.GradientTape() as tape:
            tape.watch(xs)
            y = fn(*xs)
        zero = tf.UnconnectedGradients.ZERO
        return [g.numpy() for g in tape.gradient(y, xs, unconnected_gradients=zero)]
    import torch

    xs = [torch.tensor(a, requires_grad=True) for a in args]
    y = fn(*xs)
    if not y.requires_grad:  # nothing flows to any input
        return [np.zeros_like(a) for a in args]
    gs = torch.autograd.grad(y, xs, allow_unused=True)
    return [
        np.zeros_like(a) if g is None else g.cpu().numpy()
        for a, g in zip(args, gs, strict=True)
    ]


def variable_gradients(model, loss_fn) -> list[np.ndarray]:
    """NumPy gradients of `loss_fn()` w.r.t. `model.trainable_variables`
    (dense; zeros where none flows), with the backend's own autodiff."""
    variables = model.trainable_variables
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn()
        zero = tf.UnconnectedGradients.ZERO
        grads = tape.gradient(
            loss, [v.value for v in variables], unconnected_gradients=zero
        )
        return [tf.convert_to_tensor(g).numpy() for g in grads]  # dense slices
    if BACKEND == "torch":
        import torch

        loss = loss_fn()
        grads = torch.autograd.grad(
            loss, [v.value for v in variables], allow_unused=True
        )
        return [
            np.zeros(v.shape, "float32") if g is None else g.cpu().numpy()
            for v, g in zip(variables, grads, strict=True)
        ]
    import jax

    # The other variables (statistics, the mixer's seed) keep their values.
    trainable = {id(v) for v in variables}
    others = [
        (v, v.value)
        for v in [
            *model.non_trainable_variables,
            *getattr(model, "mixer", model).weights,
        ]
        if id(v) not in trainable
    ]

    def of_values(values):
        mapping = [*zip(variables, values, strict=True), *others]
        with keras.StatelessScope(state_mapping=mapping):
            return loss_fn()

    return [np.asarray(g) for g in jax.grad(of_values)([v.value for v in variables])]


def to_np(x) -> np.ndarray:
    """Any backend tensor (or tf tensor) -> numpy."""
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        try:
            return np.asarray(x.numpy())
        except Exception:  # torch tensors requiring grad, etc.
            pass
    return np.asarray(keras.ops.convert_to_numpy(x))


def tagged_images(n: int, h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    """Images whose every pixel tells which sample it came from:
    `floor(value / 1000) - 1` is the sample index (the rest is noise)."""
    rng = np.random.default_rng(seed)
    base = (np.arange(n, dtype="float32") + 1.0) * 1000.0
    return base[:, None, None, None] + rng.random((n, h, w, c), dtype="float32")


def mixer_context(mixer, images) -> dict:
    """What `mixer.mix(images, ...)` takes besides the images when no model
    gives it: for a learned mixer (`needs_features`: AutoMix) a fixed
    random feature map at half the images' resolution (independent of the
    pixel values), in the mixer's data format; nothing for the others."""
    if not mixer.needs_features:
        return {}
    shape = np.shape(images)
    first = mixer.data_format == "channels_first"
    n, h, w = (shape[0], *shape[2:4]) if first else shape[:3]
    size = (n, max(h // 2, 1), max(w // 2, 1), 4)
    features = np.random.default_rng(0).standard_normal(size).astype("float32")
    return {"features": np.transpose(features, (0, 3, 1, 2)) if first else features}


def source_of(mixed: np.ndarray) -> np.ndarray:
    """Per pixel (N, H, W) sample index of `tagged_images` output (channels
    last)."""
    return np.floor(mixed[..., 0] / 1000.0).astype(int) - 1


@pytest.fixture(autouse=True)
def _reset_keras():
    yield
    # Without the full garbage collection clear_session runs by default: it
    # took more time than the tests themselves (TensorFlow's heap is large).
    keras.backend.clear_session(free_memory=False)
    keras.config.set_image_data_format("channels_last")


# ---------------------------------------------------------------------- #
# CI time is a budget: the seconds each test file took, per lane, printed at
# the end of the run (`--durations` lists single tests).
# ---------------------------------------------------------------------- #
_FILE_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report) -> None:
    path = report.nodeid.split("::", 1)[0]
    _FILE_SECONDS[path] = _FILE_SECONDS.get(path, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter) -> None:
    if not _FILE_SECONDS:
        return
    total = sum(_FILE_SECONDS.values())
    terminalreporter.section(f"seconds per test file ({BACKEND}, {total:.0f} s)")
    for path, seconds in sorted(_FILE_SECONDS.items(), key=lambda kv: -kv[1]):
        if seconds >= 5:
            terminalreporter.write_line(f"{seconds:7.1f}  {path}")
