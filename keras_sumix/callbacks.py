"""Training callbacks: `StopOnNaN` stops a diverging run with an error;
`LamLogger` follows the area lam and the corrected (SUMix) lam of a fixed
held-out batch epoch by epoch, in TensorBoard."""

from __future__ import annotations

import math
import os
from typing import Any

import keras
import numpy as np

from keras_sumix._optional import tensorflow
from keras_sumix._validation import check_int

__all__ = ["LamLogger", "StopOnNaN", "TrainingDiverged"]

_LOSS_KEYS = ("reg_loss", "mix_loss")


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or infinite, and `StopOnNaN` stopped
    the run.

    Attributes:
        epoch: the epoch it happened in (as many epochs had finished).
        batch: the batch of that epoch.
    """

    def __init__(self, message: str, epoch: int, batch: int) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """`keras.callbacks.TerminateOnNaN` that raises instead of stopping
    quietly: `TrainingDiverged` (a `FloatingPointError`) at the first NaN or
    infinite training loss, naming the epoch, the batch and the likely
    causes.

    Raising skips the epoch end and the train end, so no NaN history row or
    checkpoint is written and a `BackupAndRestore` backup keeps the last
    finite epoch. `MixupModel.fit` and `SUMixModel.fit` add one unless a
    `TerminateOnNaN` (this one or Keras's, which stops without an error) is
    among the callbacks.

    Cost: none on the training loop. The check is marked `async_safe`, so
    Keras keeps dispatching the batch-end callbacks to its callback thread
    (JAX and torch), where it reads each batch's logs anyway: the loop does
    not wait for the loss to reach the host. (A callback that overrides a
    batch-end hook without `async_safe`, such as Keras's `TerminateOnNaN`,
    makes Keras run every batch-end callback on the training loop, a
    device-to-host sync per step; on TensorFlow Keras always does.) The
    error then surfaces at the next batch end or at the epoch end, a step
    or two after the diverged batch, which it names.
    `benchmarks/nan_check.py` measures the difference.

    Example:

    ```python
    model.fit(ds, epochs=10, callbacks=[keras_sumix.callbacks.StopOnNaN()])
    ```
    """

    # Reads only the logs it is given, so Keras may run it off the training
    # loop (`keras.callbacks.CallbackList` dispatches async-safe callbacks to
    # a thread); an error it raises there surfaces on the loop.
    async_safe = True

    def __init__(self) -> None:
        super().__init__()
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrainingDiverged(
                f"the training loss became {float(loss)} at epoch {self.epoch}, "
                f"batch {batch}; training stopped. Likely causes: NaN/Inf "
                "images or out-of-range labels in the data; labels that are "
                "not integer or one-hot (soft rows, e.g. already mixed by a "
                "mixer in the data pipeline: give the model the plain labels "
                "and let it mix); or a diverging optimiser (learning rate too "
                "high).",
                self.epoch,
                batch,
            )


def _buckets(values: np.ndarray, bins: int = 30) -> np.ndarray:
    """TensorBoard's histogram tensor: `(bins, 3)` rows of (left edge,
    right edge, count) over [0, 1] (the range of lam)."""
    counts, edges = np.histogram(np.clip(values, 0.0, 1.0), bins, (0.0, 1.0))
    return np.stack([edges[:-1], edges[1:], counts], axis=-1).astype("float64")


def _metadata(plugin: str) -> bytes:
    """Serialized `SummaryMetadata` routing a tensor to a TensorBoard plugin
    (what `tf.summary.histogram` / `scalar` attach; written with the core
    `tf.summary.write`, so the `tensorboard` package is not needed)."""
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = plugin
    return metadata.SerializeToString()


def _numpy(value: Any) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(value))


class LamLogger(keras.callbacks.Callback):
    """At every epoch end, mix a fixed held-out batch and record the area
    lam and the lam the model trains with (`model.training_lam`, networks in
    inference mode: the corrected lam of a SUMixModel, the area lam of a
    MixupModel), as TensorBoard histograms, with the epoch's `reg_loss` and
    `mix_loss` scalars (when in the logs).

    The batch is mixed by a copy of `model.mixer` seeded with `seed` and
    created afresh every epoch: every epoch sees the same mixes (so the
    histograms are comparable) and the training mixer's random stream is
    left untouched.

    Event files are written with `tf.summary.write` (TensorFlow must be
    installed, the `tensorboard` package need not be; values are converted
    to NumPy first, so any Keras backend works) in TensorBoard's histogram
    and scalar formats, under `log_dir/subdir`, next to the `train`/`validation` runs
    of a `keras.callbacks.TensorBoard(log_dir)`: tags `lam/area`,
    `lam/corrected`, `loss/reg_loss`, `loss/mix_loss`. With `log_dir=None`
    nothing is written; `self.history` always keeps one dict per epoch:
    `{"epoch", "area_lam", "corrected_lam"}` (float32 `(N,)` arrays) plus
    the loss scalars found.

    Args:
        images: the held-out batch, as the model takes it `(N, ...)`, N >= 2.
        labels: its labels, integer `(N,)` or one-hot `(N, C)`.
        log_dir: TensorBoard log folder, or None (history only).
        seed: seed of the mixes.
        subdir: sub-folder of `log_dir` the events go to.

    Example:

    ```python
    logger = keras_sumix.callbacks.LamLogger(x_val[:64], y_val[:64], "logs")
    model.fit(x, y, epochs=10, callbacks=[logger,
              keras.callbacks.TensorBoard("logs")])
    logger.history[-1]["corrected_lam"].mean()
    ```
    """

    def __init__(
        self,
        images: Any,
        labels: Any,
        log_dir: str | os.PathLike | None = None,
        seed: int = 0,
        subdir: str = "lam",
    ) -> None:
        super().__init__()
        self.images = _numpy(images)
        self.labels = _numpy(labels)
        if self.images.ndim < 2 or len(self.images) < 2:
            raise ValueError(
                "`images` must be a batch of at least 2 images (pairs are "
                f"mixed within it). Received shape {self.images.shape}."
            )
        if len(self.labels) != len(self.images):
            raise ValueError(
                f"`labels` must have one entry per image ({len(self.images)}). "
                f"Received {len(self.labels)}."
            )
        self.seed = check_int("seed", seed, 0)
        if not isinstance(subdir, str) or not subdir:
            raise TypeError(f"`subdir` must be a non-empty str. Received {subdir!r}.")
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.subdir = subdir
        self.history: list[dict[str, Any]] = []
        self._writer = None
        self._tf = None
        if self.log_dir is not None:
            self._tf = tensorflow(
                "LamLogger(log_dir=...) writes TensorBoard events with "
                "tf.summary (pass log_dir=None to keep the values in "
                "`.history` only) and"
            )

    def _mixer(self) -> Any:
        mixer = getattr(self.model, "mixer", None)
        if mixer is None or not hasattr(self.model, "training_lam"):
            raise TypeError(
                "LamLogger needs a MixupModel or SUMixModel (with `mixer` and "
                f"`training_lam`). Received: {type(self.model).__name__}."
            )
        config = {**mixer.get_config(), "seed": self.seed}
        return type(mixer).from_config(config)

    def lams(self) -> tuple[np.ndarray, np.ndarray]:
        """`(area lam, corrected lam)` of the model on the fixed mixes now."""
        mixer = self._mixer()
        if mixer.mixes_features:  # ManifoldMix: a draw the model applies
            from keras_sumix.models import stages

            mix = stages.draw(mixer, self.images)
        else:
            mix = mixer.mix(self.images)
        corrected = self.model.training_lam(self.images, self.labels, mix)
        return (
            _numpy(mix.lam).astype("float32").reshape(-1),
            _numpy(corrected).astype("float32").reshape(-1),
        )

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        area, corrected = self.lams()
        row: dict[str, Any] = {
            "epoch": int(epoch),
            "area_lam": area,
            "corrected_lam": corrected,
        }
        for key in _LOSS_KEYS:
            if logs and key in logs:
                row[key] = float(_numpy(logs[key]))
        self.history.append(row)
        if self._tf is None:
            return
        tf = self._tf
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(
                os.path.join(self.log_dir, self.subdir)
            )
        with self._writer.as_default(step=int(epoch)):
            tf.summary.write(
                "lam/area", _buckets(area), metadata=_metadata("histograms")
            )
            tf.summary.write(
                "lam/corrected", _buckets(corrected), metadata=_metadata("histograms")
            )
            for key in _LOSS_KEYS:
                if key in row:
                    tf.summary.write(
                        f"loss/{key}",
                        np.float32(row[key]),
                        metadata=_metadata("scalars"),
                    )
        self._writer.flush()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
