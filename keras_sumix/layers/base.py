"""What every mixer shares: pairing, Beta draws, label mixing, validation and
`tf.data` safety.

A concrete mixer only says how it builds the mixed batch from the clean batch
and its permuted partner (`_blend`); everything else lives here.
"""

from __future__ import annotations

import contextlib
from typing import Any, NamedTuple

import keras
from keras.src.utils import backend_utils, jax_utils, tracking

from keras_sumix._validation import (
    check_choice,
    check_class_indices,
    check_int,
    check_number,
    host_array,
    misplaced_channels,
)
from keras_sumix.layers import sampling

_MODES = ("elem", "batch")
_DATA_FORMATS = ("channels_last", "channels_first")


class MixResult(NamedTuple):
    """The output of `mixer.mix(images)`.

    Attributes:
        images: the mixed batch, same shape as the input, in the layer's
            compute dtype.
        permutation: int32 `(N,)`. Sample `i` is mixed with
            `images[permutation[i]]`; never with itself when `N >= 2`.
        lam: float32 `(N,)`, the exact share of `images[i]` kept in output
            `i` (for cutting mixers the fraction of pixels taken from
            `images[i]`, counted on the final mask; for MixUp the
            interpolation weight).
    """

    images: Any
    permutation: Any
    lam: Any


class MixingLayer(keras.layers.Layer):
    """Base class of every mixing layer: input handling, label mixing and
    `tf.data` safety.

    Subclasses implement `_mix(images) -> MixResult`, computing with
    `self.backend` (the numpy/random/math/image namespaces of the backend in
    use) rather than `keras.ops`, so that the same code runs inside a
    `tf.data` pipeline whatever `KERAS_BACKEND` is, as Keras's own
    preprocessing layers do.

    Input handling (every mixer):

    - Integer, unsigned and bool images are cast to the compute dtype
      (float32 by default) without rescaling: uint8 images stay in 0..255
      and mix exactly as the same values given as floats.
    - NaN and Inf pixels are not checked: they propagate into the output
      samples they are mixed into (their own, and the one they are pasted or
      blended into; with a cutting mask they may spread beyond the pasted
      region, `0 * NaN` being NaN). `lam` and `permutation` never depend on
      pixel values through NaN, so they stay finite and exact. Training
      models (`MixingModel.fit`) reject or stop on non-finite data.
    - A batch of one has no partner: it is returned unmixed, with
      `permutation == [0]` and `lam == [1]`. An empty batch (N = 0) or an
      image with no pixel raises a ValueError (when the shape is static).
    - Images of any size work, down to 1x1: `lam` stays the exact kept share
      (a cutting mixer then keeps or replaces whole pixels, so `lam` of a 1x1
      image is 0 or 1).
    - When `data_format` is not given (taken from
      `keras.config.image_data_format()`), a batch whose layout looks like
      the other one, e.g. `(N, 3, 32, 32)` under `"channels_last"` (a first
      axis of 1, 3 or 4 and two axes larger than 4), raises a ValueError
      rather than cutting boxes across channels. Pass `data_format`
      explicitly to mix such a batch as it is.
    - Integer labels must lie in `[0, num_classes)`: NumPy/list labels are
      checked when the layer is called (ValueError), and labels computed
      with TensorFlow ops (a `tf.data` pipeline whatever the backend, or the
      TensorFlow backend) by a run-time assertion (InvalidArgumentError).
      Elsewhere (traced JAX code, torch tensors) an out-of-range index is
      not checked: its one-hot row is all zeros (torch raises for indices
      `>= num_classes`), so the mixed label row sums to less than 1.
    - Rank-1 float labels raise a TypeError; labels whose batch size differs
      from the images' raise a ValueError.

    Args:
        num_classes: number of classes; required for integer labels.
        seed: integer seed of the layer's random stream.
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).
    """

    def __init__(
        self,
        num_classes: int | None = None,
        seed: int | None = None,
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_classes = check_int("num_classes", num_classes, 1, allow_none=True)
        check_int("seed", seed, -(2**63), allow_none=True)
        self.seed = seed
        # Only a format taken from keras.config is second-guessed (see
        # `_check_images`); an explicit one is trusted.
        self._data_format_given = data_format is not None
        self.data_format = check_choice(
            "data_format",
            data_format or keras.config.image_data_format(),
            _DATA_FORMATS,
        )
        self.generator = keras.random.SeedGenerator(seed)
        # Every draw compiles (the Beta sampler is built from normal and
        # uniform draws, `sampling.beta`), XLA on TensorFlow included.
        self.backend = backend_utils.DynamicBackend()
        self._allow_non_tensor_positional_args = True

    # ------------------------------------------------------------------ #
    # Backend selection (what keras' DataLayer does, shared by __call__ and
    # mix): inside a tf.data graph the layer computes with TensorFlow ops
    # whatever the Keras backend is.
    # ------------------------------------------------------------------ #
    @staticmethod
    def _in_tf_data(sample: Any) -> bool:
        return (
            not isinstance(sample, keras.KerasTensor)
            and backend_utils.in_tf_graph()
            and not jax_utils.is_in_jax_tracing_scope(sample)
        )

    @contextlib.contextmanager
    def _backend_scope(self, sample: Any):
        if self._in_tf_data(sample) and keras.backend.backend() != "tensorflow":
            self.backend.set_backend("tensorflow")
            try:
                yield True
            finally:
                self.backend.reset()
        else:
            yield False

    @tracking.no_automatic_dependency_tracking
    def _seed(self) -> keras.random.SeedGenerator:
        # Inside tf.data under another backend: a TensorFlow-side generator,
        # untracked (it is not part of the model's state).
        name = self.backend.name
        if name == keras.backend.backend():
            return self.generator
        if not hasattr(self, "_backend_generators"):
            self._backend_generators = {}
        if name not in self._backend_generators:
            self._backend_generators[name] = keras.random.SeedGenerator(
                self.seed, backend=self.backend
            )
        return self._backend_generators[name]

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        # Host (NumPy) labels are range-checked here, before conversion.
        labels = host_array(self._unpack(inputs)[1])
        if labels is not None and labels.ndim == 1 and self.num_classes:
            check_class_indices("labels", labels, self.num_classes)
        sample = keras.tree.flatten(inputs)[0]
        with self._backend_scope(sample) as switched:
            if not switched:
                return super().__call__(inputs, **kwargs)
            convert = self._convert_input_args
            self._convert_input_args = False
            try:
                return super().__call__(inputs, **kwargs)
            finally:
                self._convert_input_args = convert

    # ------------------------------------------------------------------ #
    # Public API
    # ------------------------------------------------------------------ #
    def build(self, input_shape: Any) -> None:
        # A mixer's only state is its seed generator, created in __init__.
        self.built = True

    # The seed generator's state travels with the weights (`save_weights`,
    # `.keras` files, `BackupAndRestore`): a restored model continues the
    # same stream of mixes instead of restarting it. Files written before
    # the state was saved load too (the stream then restarts from `seed`).
    _SEED_STATE_KEY = "seed_generator_state"

    def save_own_variables(self, store: Any) -> None:
        super().save_own_variables(store)
        store[self._SEED_STATE_KEY] = self.generator.state

    def load_own_variables(self, store: Any) -> None:
        if self._SEED_STATE_KEY in store.keys():
            self.generator.state.assign(store[self._SEED_STATE_KEY])

    def mix(self, images: Any) -> MixResult:
        """Mix a batch of images.

        Args:
            images: rank-4 batch, `(N, H, W, C)` or `(N, C, H, W)` following
                `data_format`, N >= 1. Integer and bool images are cast to
                the compute dtype, not rescaled; see the class docstring for
                NaN pixels, a batch of one and tiny images.

        Returns:
            A `MixResult(images, permutation, lam)`.
        """
        with self._backend_scope(images):
            return self._mix(images)

    def call(self, inputs: Any, training: bool = True) -> Any:
        images, labels, pack = self._unpack(inputs)
        if not training:
            return inputs
        result = self._mix(images)
        if labels is None:
            return pack(result.images, None)
        return pack(result.images, self._mix_labels(labels, result))

    # ------------------------------------------------------------------ #
    # Input handling
    # ------------------------------------------------------------------ #
    def _unpack(self, inputs: Any):
        if isinstance(inputs, dict):
            if "images" not in inputs:
                raise ValueError(
                    "A dict input must have an 'images' key (and optionally "
                    f"'labels'). Received keys: {sorted(inputs)}."
                )
            extra = {k: v for k, v in inputs.items() if k not in ("images", "labels")}
            if extra:
                raise ValueError(
                    "A dict input may only hold 'images' and 'labels'. "
                    f"Received extra keys: {sorted(extra)}."
                )

            def pack_dict(images, labels):
                out = {"images": images}
                if labels is not None:
                    out["labels"] = labels
                return out

            return inputs["images"], inputs.get("labels"), pack_dict
        if isinstance(inputs, (tuple, list)):
            if len(inputs) != 2:
                raise ValueError(
                    "A tuple input must be `(images, labels)`. Received a "
                    f"{type(inputs).__name__} of length {len(inputs)}."
                )
            return inputs[0], inputs[1], lambda i, lab: (i, lab)
        return inputs, None, lambda i, lab: i

    def _check_images(self, images: Any) -> None:
        shape = tuple(images.shape)
        if len(shape) == 3:
            raise ValueError(
                "`images` must be a batch of rank 4 (N, H, W, C) or (N, C, H, W): "
                f"mixing pairs samples within a batch. Received a single image of "
                f"shape {shape}; batch your data first (e.g. `ds.batch(n)`)."
            )
        if len(shape) != 4:
            raise ValueError(
                "`images` must be a rank-4 batch (N, H, W, C) or (N, C, H, W). "
                f"Received shape {shape}."
            )
        if 0 in shape:
            raise ValueError(
                "`images` must not be empty: at least one image, of at least "
                f"one pixel and one channel. Received shape {shape}."
            )
        if not self._data_format_given and misplaced_channels(
            shape[1:], self.data_format
        ):
            other = (
                "channels_first"
                if self.data_format == "channels_last"
                else "channels_last"
            )
            raise ValueError(
                f"`images` of shape {shape} look {other} but the layer uses "
                f"data_format={self.data_format!r} (from "
                "keras.config.image_data_format()). Pass "
                f"data_format={other!r} to the layer (or transpose the images); "
                f"pass data_format={self.data_format!r} explicitly to mix this "
                "shape as it is."
            )

    def _mix_labels(self, labels: Any, result: MixResult) -> Any:
        ops = self.backend
        labels = ops.convert_to_tensor(labels)
        rank = len(labels.shape)
        dtype = keras.backend.standardize_dtype(labels.dtype)
        if rank == 1:
            if "int" not in dtype:
                raise TypeError(
                    "Rank-1 `labels` must be integer class indices. Received "
                    f"dtype {dtype}; pass one-hot/soft labels as (N, C)."
                )
            if self.num_classes is None:
                raise ValueError(
                    "Integer `labels` need `num_classes` to build one-hot targets. "
                    "Pass `num_classes=` to the layer, or give one-hot labels "
                    "of shape (N, C)."
                )
            if ops.name == "tensorflow":
                labels = self._assert_class_indices(labels)
            labels = ops.nn.one_hot(
                ops.numpy.reshape(labels, (-1,)), self.num_classes, dtype="float32"
            )
        elif rank == 2:
            if self.num_classes is not None and labels.shape[-1] not in (
                None,
                self.num_classes,
            ):
                raise ValueError(
                    f"`labels` have {labels.shape[-1]} classes but the layer was "
                    f"built with num_classes={self.num_classes}."
                )
            labels = ops.cast(labels, "float32")
        else:
            raise ValueError(
                "`labels` must be integer (N,) or one-hot/soft (N, C). Received "
                f"shape {tuple(labels.shape)}."
            )
        n_img, n_lab = result.images.shape[0], labels.shape[0]
        if n_img is not None and n_lab is not None and n_img != n_lab:
            raise ValueError(
                f"`labels` batch size ({n_lab}) does not match `images` batch "
                f"size ({n_img})."
            )
        lam = ops.numpy.expand_dims(result.lam, -1)
        partner = ops.numpy.take(labels, result.permutation, axis=0)
        return lam * labels + (1.0 - lam) * partner

    def _assert_class_indices(self, labels: Any) -> Any:
        """With TensorFlow ops (a `tf.data` pipeline, the TensorFlow
        backend): fail at run time, in a graph too, on an index outside
        `[0, num_classes)` instead of one-hot encoding it to zeros."""
        import tensorflow as tf

        valid = tf.reduce_all((labels >= 0) & (labels < self.num_classes))
        check = tf.debugging.Assert(
            valid,
            [
                f"`labels` must be class indices in [0, {self.num_classes}) "
                f"(num_classes={self.num_classes}). Received:",
                labels,
            ],
            summarize=16,
        )
        with tf.control_dependencies([check] if check is not None else []):
            return tf.identity(labels)

    def _mix(self, images: Any) -> MixResult:
        raise NotImplementedError

    # ------------------------------------------------------------------ #
    # Keras plumbing
    # ------------------------------------------------------------------ #
    def compute_output_shape(self, input_shape: Any) -> Any:
        if isinstance(input_shape, dict):
            out = {"images": input_shape["images"]}
            if "labels" in input_shape:
                out["labels"] = self._label_shape(input_shape["labels"])
            return out
        if (
            isinstance(input_shape, (tuple, list))
            and input_shape
            and isinstance(input_shape[0], (tuple, list))
        ):
            return (input_shape[0], self._label_shape(input_shape[1]))
        return input_shape

    def _label_shape(self, shape: Any) -> tuple:
        if len(shape) == 1:
            return (shape[0], self.num_classes)
        return tuple(shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "seed": self.seed,
                "data_format": self.data_format,
            }
        )
        return config


class BaseMixer(MixingLayer):
    """Base class of the single-method mixers (MixUp, CutMix, ...).

    It draws the pairing (a derangement) and the Beta mix ratio; a subclass
    only implements `_blend(images, partner, draw, seed)`, which builds the
    mixed batch (channels-last) and returns it with the exact kept share.

    Args:
        alpha: concentration of the symmetric Beta(alpha, alpha) the mix ratio
            is drawn from.
        mode: `"elem"` draws one ratio (and box or mask) per sample, `"batch"`
            one for the whole batch, as the reference toolbox does.
        num_classes: number of classes; required for integer labels.
        seed: integer seed of the layer's random stream.
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).
    """

    def __init__(
        self,
        alpha: float = 1.0,
        mode: str = "elem",
        num_classes: int | None = None,
        seed: int | None = None,
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            num_classes=num_classes, seed=seed, data_format=data_format, **kwargs
        )
        self.alpha = check_number("alpha", alpha, low=0.0)
        self.mode = check_choice("mode", mode, _MODES)

    # ------------------------------------------------------------------ #
    # The mixing pipeline
    # ------------------------------------------------------------------ #
    def _mix(self, images: Any) -> MixResult:
        ops = self.backend
        images = ops.convert_to_tensor(images)
        self._check_images(images)
        images = ops.cast(images, self.compute_dtype)
        channels_first = self.data_format == "channels_first"
        if channels_first:
            images = ops.numpy.transpose(images, (0, 2, 3, 1))
        seed = self._seed()
        n = ops.shape(images)[0]
        permutation = self._derangement(n, seed)
        partner = ops.numpy.take(images, permutation, axis=0)
        lam = self._draw_lam(n, seed)
        mixed, lam = self._blend(images, partner, lam, seed)
        # A batch of one has no partner: it is returned as it is, keeping all
        # of itself.
        lam = ops.numpy.broadcast_to(ops.cast(lam, "float32"), (n,))
        if isinstance(n, int):
            if n < 2:
                mixed, lam = images, ops.numpy.ones_like(lam)
        else:
            # The batch size is known at run time only (a `tf.data` batch
            # without drop_remainder): branch rather than select element-wise,
            # which would cost another pass over the whole batch.
            paired = ops.numpy.greater_equal(n, 2)
            blended = mixed
            mixed = ops.core.cond(paired, lambda: blended, lambda: images)
            lam = ops.numpy.where(paired, lam, 1.0)
        if channels_first:
            mixed = ops.numpy.transpose(mixed, (0, 3, 1, 2))
        return MixResult(mixed, permutation, lam)

    def _derangement(self, n: Any, seed: Any) -> Any:
        """A random permutation with no fixed point (for n >= 2).

        A shuffled order `p` is closed into one cycle: `p[k] -> p[k + 1]`.
        """
        ops = self.backend
        order = ops.random.shuffle(ops.numpy.arange(n, dtype="int32"), seed=seed)
        successor = ops.numpy.roll(order, -1)
        return ops.cast(ops.numpy.take(successor, ops.numpy.argsort(order)), "int32")

    def _num_draws(self, n: Any) -> Any:
        return 1 if self.mode == "batch" else n

    def _draw_lam(self, n: Any, seed: Any) -> Any:
        """Beta(alpha, alpha) draws: `(N,)` in elem mode, `(1,)` in batch mode.

        Drawn with `sampling.beta` (normal and uniform draws only) rather
        than `keras.random.beta`, whose gamma sampler has no XLA kernel on
        TensorFlow.
        """
        return sampling.beta(
            (self._num_draws(n),), self.alpha, self.alpha, seed, backend=self.backend
        )

    def _blend(self, images: Any, partner: Any, lam: Any, seed: Any):
        """Build the mixed batch (channels-last) and return `(mixed, lam)`."""
        raise NotImplementedError

    # ------------------------------------------------------------------ #
    # Helpers for cutting mixers
    # ------------------------------------------------------------------ #
    def _weighted(self, images: Any, partner: Any, weight: Any) -> Any:
        """`(1 - w) * images + w * partner` with `weight` (M, H, W * C) or
        broadcastable to it (M in {1, N}), on the batch viewed as rows of
        `W * C` values: the weight then broadcasts over outer axes only,
        which element-wise kernels stream (a weight broadcast over the
        channel axis costs several times more on CPU).

        Exact for a hard weight (0 or 1: no rounding), and a non-finite
        pixel reaches both outputs at its position (`0 * NaN` is NaN).
        """
        ops = self.backend
        shape = ops.shape(images)
        rows = (-1, shape[1], shape[2] * shape[3])
        weight = ops.cast(weight, images.dtype)
        images_rows = ops.numpy.reshape(images, rows)
        partner_rows = ops.numpy.reshape(partner, rows)
        mixed = (1.0 - weight) * images_rows + weight * partner_rows
        return ops.numpy.reshape(mixed, shape)

    def _paste(self, images: Any, partner: Any, mask: Any):
        """Take `partner` where `mask` (M, H, W; M in {1, N}) is 1.

        Returns the mixed batch and the exact kept share `1 - mean(mask)`.
        """
        ops = self.backend
        channels = ops.shape(images)[3]
        weight = ops.numpy.repeat(ops.cast(mask, images.dtype), channels, axis=2)
        mixed = self._weighted(images, partner, weight)
        lam = 1.0 - ops.numpy.mean(ops.cast(mask, "float32"), axis=(1, 2))
        return mixed, lam

    def _paste_box(
        self,
        images: Any,
        partner: Any,
        top: Any,
        left: Any,
        bottom: Any,
        right: Any,
    ):
        """Take `partner` inside the boxes `[top, bottom) x [left, right)`
        (each `(M,)`, M in {1, N}).

        The box is the product of a row mask and a column mask, so the full
        mask is never built channel by channel. Returns the mixed batch and
        the exact kept share `1 - rows * cols / (H * W)`.
        """
        ops = self.backend
        shape = ops.shape(images)
        height, width, channels = shape[1], shape[2], shape[3]

        def inside(start, stop, length):
            index = ops.numpy.arange(length, dtype="int32")[None, :]
            start = ops.numpy.reshape(ops.cast(start, "int32"), (-1, 1))
            stop = ops.numpy.reshape(ops.cast(stop, "int32"), (-1, 1))
            return ops.cast((index >= start) & (index < stop), "float32")

        rows = inside(top, bottom, height)  # (M, H)
        cols = inside(left, right, width)  # (M, W)
        # Column j of the (H, W * C) view is pixel column j // C.
        weight = rows[:, :, None] * ops.numpy.repeat(cols, channels, axis=1)[:, None]
        mixed = self._weighted(images, partner, weight)
        area = ops.numpy.sum(rows, axis=1) * ops.numpy.sum(cols, axis=1)
        pixels = ops.cast(height * width, "float32")
        return mixed, 1.0 - area / pixels

    def _centred_box(self, cy: Any, cx: Any, lam: Any, height: Any, width: Any):
        """The reference CutMix box, `(top, left, bottom, right)`, each (M,).

        Side `floor(sqrt(1 - lam) * (H, W))`, centred at `(cy, cx)`, clipped
        to the image (so the true pasted area may be smaller than drawn).
        """
        ops = self.backend
        ratio = ops.numpy.sqrt(1.0 - lam)

        def side(length):
            return ops.cast(
                ops.numpy.floor(ops.cast(length, "float32") * ratio), "int32"
            )

        half_h = ops.numpy.floor_divide(side(height), 2)
        half_w = ops.numpy.floor_divide(side(width), 2)
        cy, cx = ops.cast(cy, "int32"), ops.cast(cx, "int32")
        return (
            ops.numpy.clip(cy - half_h, 0, height),
            ops.numpy.clip(cx - half_w, 0, width),
            ops.numpy.clip(cy + half_h, 0, height),
            ops.numpy.clip(cx + half_w, 0, width),
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"alpha": self.alpha, "mode": self.mode})
        return config
