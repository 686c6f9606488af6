"""Optional dependencies, imported when a feature first needs them.

keras-sumix itself needs only Keras and NumPy: the mixers, the losses and the
models run on JAX or PyTorch without TensorFlow. What genuinely needs another
package (`tf.data` pipelines, TensorFlow Datasets, TensorBoard events) asks for
it through `optional_import`, so a missing package raises an `ImportError`
that names the feature and the extra to install, never a bare
`ModuleNotFoundError` from deep inside.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["optional_import", "tensorflow"]

# top-level module -> (the extra that installs it, or None; the plain pip command)
_EXTRAS = {
    "tensorflow": ("tensorflow", "pip install tensorflow-cpu"),
    "tensorflow_datasets": ("data", "pip install tensorflow-datasets"),
    "matplotlib": ("viz", "pip install matplotlib"),
    "sklearn": (None, "pip install scikit-learn"),
    "keras_hub": ("hub", "pip install --no-deps keras-hub, then its requirements"),
}


def optional_import(module: str, feature: str) -> ModuleType:
    """Import `module`, or raise an `ImportError` that says what to install.

    Args:
        module: the module to import; its top-level package is one of
            the known extras' (`tensorflow`, `tensorflow_datasets`,
            `matplotlib`, `sklearn`).
        feature: what needs it, for the message (e.g. `"make_pipeline
            builds a tf.data pipeline and"`).

    Returns:
        The imported module.

    Raises:
        ImportError: the module is not installed; the message names the
            feature, the extra (`pip install 'keras-sumix[EXTRA]'`), where
            one installs it, and the package.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        extra, command = _EXTRAS[module.split(".")[0]]
        how = f"`pip install 'keras-sumix[{extra}]'` (or `{command}`)"
        raise ImportError(
            f"{feature} needs `{module}`, which is not installed. Install it "
            f"with {how if extra else f'`{command}`'}."
        ) from error


def tensorflow(feature: str) -> ModuleType:
    """TensorFlow, for `tf.data` and other TensorFlow-only features, whatever
    the Keras backend.

    Args:
        feature: what needs it, for the error message.

    Returns:
        The `tensorflow` module.

    Raises:
        ImportError: TensorFlow is not installed (names the `tensorflow`
            extra).
    """
    return optional_import("tensorflow", feature)
