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

from keras_sumix._validation import check_choice, check_int, check_number

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
        self.data_format = check_choice(
            "data_format",
            data_format or keras.config.image_data_format(),
            _DATA_FORMATS,
        )
        self.generator = keras.random.SeedGenerator(seed)
        # TensorFlow's XLA has no kernel for the Beta (gamma) sampler: a model
        # holding a mixer runs as a plain tf.function there (jit_compile="auto"
        # resolves to False). JAX jits it as usual.
        self.supports_jit = keras.backend.backend() != "tensorflow"
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

    def mix(self, images: Any) -> MixResult:
        """Mix a batch of images.

        Args:
            images: rank-4 batch, `(N, H, W, C)` or `(N, C, H, W)` following
                `data_format`. Integer images are cast to the compute dtype.

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
            paired = ops.numpy.greater_equal(n, 2)
            mixed = ops.numpy.where(paired, mixed, images)
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
        """Beta(alpha, alpha) draws: `(N,)` in elem mode, `(1,)` in batch mode."""
        return self.backend.random.beta(
            (self._num_draws(n),), self.alpha, self.alpha, dtype="float32", seed=seed
        )

    def _blend(self, images: Any, partner: Any, lam: Any, seed: Any):
        """Build the mixed batch (channels-last) and return `(mixed, lam)`."""
        raise NotImplementedError

    # ------------------------------------------------------------------ #
    # Helpers for cutting mixers
    # ------------------------------------------------------------------ #
    def _paste(self, images: Any, partner: Any, mask: Any):
        """Take `partner` where `mask` (M, H, W; M in {1, N}) is 1.

        Returns the mixed batch and the exact kept share `1 - mean(mask)`.
        """
        ops = self.backend
        m = ops.numpy.expand_dims(ops.cast(mask, images.dtype), -1)
        # (1 - m) * x + m * x' is exact for a hard mask (no rounding).
        mixed = (1.0 - m) * images + m * partner
        lam = 1.0 - ops.numpy.mean(ops.cast(mask, "float32"), axis=(1, 2))
        return mixed, lam

    def _box_mask(
        self, top: Any, left: Any, bottom: Any, right: Any, height: Any, width: Any
    ):
        """Boolean masks (M, H, W), True inside `[top, bottom) x [left, right)`."""
        ops = self.backend
        rows = ops.numpy.arange(height, dtype="int32")[None, :, None]
        cols = ops.numpy.arange(width, dtype="int32")[None, None, :]

        def col(v):
            return ops.numpy.reshape(ops.cast(v, "int32"), (-1, 1, 1))

        return (
            (rows >= col(top))
            & (rows < col(bottom))
            & (cols >= col(left))
            & (cols < col(right))
        )

    def _centred_box_mask(
        self, cy: Any, cx: Any, lam: Any, height: Any, width: Any
    ) -> Any:
        """The reference CutMix box as masks (M, H, W).

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
        return self._box_mask(
            ops.numpy.clip(cy - half_h, 0, height),
            ops.numpy.clip(cx - half_w, 0, width),
            ops.numpy.clip(cy + half_h, 0, height),
            ops.numpy.clip(cx + half_w, 0, width),
            height,
            width,
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"alpha": self.alpha, "mode": self.mode})
        return config
