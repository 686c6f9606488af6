"""What a JAX-only or torch-only user does with the installed wheel.

Run by `tests/test_wheel.py` inside a fresh virtual environment that holds
the built wheel, Keras and one backend (no TensorFlow), as

    KERAS_BACKEND=jax python wheel_check.py OUTPUT_DIR README.md

It exits non-zero, with the failing assertion, if anything a user of that
environment needs fails; on success it prints one line per check and
`wheel check passed`.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

import keras_sumix
from keras_sumix import layers


def check(label: str) -> None:
    print(f"ok: {label}", flush=True)


def first_example(markdown: Path) -> str:
    """The first Python code block of a Markdown file."""
    text = markdown.read_text()
    start = text.index("```python\n") + len("```python\n")
    return text[start : text.index("```", start)]


#: The README's first example (it opens docs/getting-started.md too) trains
#: on 2,000 images; the torch wheel check runs it as pasted. Elsewhere (the
#: JAX wheel check, the docs and examples tests) it runs on fewer: the same
#: code at an eighth of the cost.
FIRST_EXAMPLE_DATA = "occluded_objects(2000, seed=0)"


def smaller_first_example(code: str) -> str:
    """`code` with the README's first example on 256 images instead of
    2,000 (`code` may hold other blocks too)."""
    return code.replace(FIRST_EXAMPLE_DATA, "occluded_objects(256, seed=0)")


def main(out: Path, readme: Path) -> None:
    backend = os.environ["KERAS_BACKEND"]
    assert keras.backend.backend() == backend, keras.backend.backend()
    assert importlib.util.find_spec("tensorflow") is None, "TensorFlow is installed"
    other = {"jax": "torch", "torch": "jax"}[backend]
    assert importlib.util.find_spec(other) is None, f"{other} is installed"
    here = Path(keras_sumix.__file__).resolve()
    assert "site-packages" in here.parts, f"not the installed wheel: {here}"
    check(f"keras_sumix {keras_sumix.__version__} from the wheel, {backend} only")

    rng = np.random.default_rng(0)
    images = rng.random((8, 32, 32, 3), dtype="float32")
    labels = rng.integers(0, 10, 8).astype("int32")
    # Every model-free mixer here; AutoMix (a learned one) in a model below.
    plain = [
        cls
        for cls in layers.MIXERS.values()
        if not (cls.needs_features or cls.mixes_features)
    ]
    mixers = [cls(alpha=1.0, num_classes=10, seed=1) for cls in plain]
    mixers.append(layers.RandomChoice(mixers[:2], num_classes=10, seed=2))
    for mixer in mixers:
        result = mixer.mix(images)
        mixed = keras.ops.convert_to_numpy(result.images)
        lam = keras.ops.convert_to_numpy(result.lam)
        assert mixed.shape == images.shape, mixed.shape
        assert lam.shape == (8,) and np.all((lam >= 0) & (lam <= 1)), lam
        perm = keras.ops.convert_to_numpy(result.permutation)
        assert sorted(perm.tolist()) == list(range(8)), perm
        assert np.all(perm != np.arange(8)), perm  # no sample paired with itself
        out_images, out_labels = mixer((images, labels), training=True)
        assert tuple(out_images.shape) == images.shape, out_images.shape
        out_labels = keras.ops.convert_to_numpy(out_labels)
        assert out_labels.shape == (8, 10), out_labels.shape
        np.testing.assert_allclose(out_labels.sum(axis=1), 1.0, atol=1e-5)
        check(f"{type(mixer).__name__}: mix and layer call")

    x = rng.random((32, 16, 16, 3), dtype="float32")
    y = rng.integers(0, 4, 32).astype("int32")
    for cls, options, mixer in [
        (keras_sumix.MixupModel, {}, layers.CutMix(alpha=1.0, seed=0)),
        (keras_sumix.SUMixModel, dict(variant="recommended"), layers.CutMix(seed=0)),
        (keras_sumix.SUMixModel, dict(variant="recommended"), layers.AutoMix(seed=0)),
        # ManifoldMix: the library's CNN and its named stages (the default).
        (keras_sumix.SUMixModel, {}, layers.ManifoldMix(seed=0)),
    ]:
        backbone = keras.Sequential(
            [
                keras.Input((16, 16, 3)),
                keras.layers.Conv2D(4, 3, activation="relu"),
                keras.layers.Identity(name="stage3"),  # AutoMix's feature map
                keras.layers.GlobalAveragePooling2D(),
            ]
        )
        if mixer.mixes_features:
            backbone = keras_sumix.models.small_cnn((16, 16, 3), widths=(4, 8))
        model = cls(backbone, 4, mixer, **options)
        model.compile(optimizer="sgd", metrics=["accuracy"])
        history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][-1]), history.history
        predicted = model.predict(x, verbose=0)
        assert predicted.shape == (32, 4), predicted.shape
        name = f"{cls.__name__} + {type(mixer).__name__}"
        path = out / f"{cls.__name__}_{type(mixer).__name__}.keras"
        model.save(path)
        restored = keras.saving.load_model(path)
        np.testing.assert_allclose(
            restored.predict(x, verbose=0), predicted, rtol=1e-5, atol=1e-6
        )
        check(f"{name}: fit, predict, .keras save/load")

    # What genuinely needs TensorFlow says which extra to install.
    needs_tensorflow = {
        "make_pipeline": lambda: keras_sumix.data.make_pipeline(None),
        "load_fgvc_aircraft": lambda: keras_sumix.data.load_fgvc_aircraft(out),
        "load_cifar100": lambda: keras_sumix.data.load_cifar100(data_dir=out),
        "LamLogger(log_dir=...)": lambda: keras_sumix.callbacks.LamLogger(
            images, labels, log_dir=out
        ),
    }
    for name, call in needs_tensorflow.items():
        try:
            call()
        except ImportError as error:
            assert type(error) is ImportError, type(error)  # not ModuleNotFound
            assert "pip install 'keras-sumix[" in str(error), str(error)
            check(f"{name}: {error}")
        else:
            raise AssertionError(f"{name} ran without TensorFlow")

    # The command line: its version, and one line (exit code 2) naming the
    # extra where TensorFlow (`train`) or matplotlib (`show`) is missing.
    command = Path(sys.executable).parent / "keras-sumix"
    version = subprocess.run([command, "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == f"keras-sumix {keras_sumix.__version__}", version
    needs = [(["train", "--epochs", "1", "--output-dir", out / "run"], "tensorflow")]
    if importlib.util.find_spec("matplotlib") is None:
        needs.append((["show", "--output", out / "show.png"], "viz"))
    for argv, extra in needs:
        result = subprocess.run([command, *argv], capture_output=True, text=True)
        # One line of ours, last (a backend may log warnings of its own first).
        err = result.stderr.strip().splitlines()
        assert result.returncode == 2 and "Traceback" not in result.stderr, result
        assert f"pip install 'keras-sumix[{extra}]'" in err[-1], err
        check(f"keras-sumix {argv[0]}: {err[-1]}")
    assert not (out / "run").exists()

    # The README's first example, as a user pastes it (on fewer images
    # under JAX, whose compiled steps are the same at any data size).
    code = first_example(readme)
    assert FIRST_EXAMPLE_DATA in code, code
    if backend == "jax":
        code = smaller_first_example(code)
    namespace: dict = {}
    exec(compile(code, str(readme), "exec"), namespace)
    lam = namespace["history"].history["lam_sumix"]
    assert len(lam) == 3 and all(0.0 <= v <= 1.0 for v in lam), lam
    check("the README's first example")
    print("wheel check passed", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
