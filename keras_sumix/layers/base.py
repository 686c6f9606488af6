"""What every mixer shares: pairing, Beta draws, label mixing, validation,
`tf.data` safety and registration.

A mix is drawn (`draw`: the pairing, lam and the mixer's own random choices,
a dict of tensors) separately from its application (`apply`: the mixed
batch, its kept mask and the exact lam). A concrete mixer declares its facts
as class keywords (`registry`) and implements two hooks on channels-last
tensors, `_draw` and `_apply`; everything else lives here.
"""

from __future__ import annotations

import contextlib
from typing import Any, NamedTuple

import keras

from keras_sumix._keras_compat import (
    DynamicBackend,
    current_call_context,
    in_stateless_scope,
    in_tf_graph,
    inputs_not_converted,
    is_in_jax_tracing_scope,
    no_automatic_dependency_tracking,
)
from keras_sumix._validation import (
    check_choice,
    check_class_indices,
    check_int,
    check_number,
    host_array,
    misplaced_channels,
)
from keras_sumix.layers import registry, sampling

_MODES = ("elem", "batch")
_DATA_FORMATS = ("channels_last", "channels_first")


class _SeedStream(keras.random.SeedGenerator):
    """The seeds of one mix drawn from an explicit seed, without state.

    Draw `k` (from 0) gets `seed + [0, k]`, the seeds a `SeedGenerator`
    whose state is `seed` hands out, so `mix(x, seed=s)` draws what
    `mix(x)` of a fresh layer built with `seed=s` draws. Nothing is stored
    in a variable: it runs inside `jax.jit`, `lax.switch` branches and
    `tf.data` graphs, and leaves the layer's own stream where it was.
    """

    def __init__(self, seed: Any, backend: Any) -> None:
        # No `super().__init__()`: that would create the state variable.
        self.name = "seed_stream"
        self.backend = backend
        self._initial_seed = None
        self._seed_value = seed
        self._draws = 0

    def next(self, ordered: bool = True) -> Any:
        step = self.backend.convert_to_tensor(
            [0, self._draws], dtype=self._seed_value.dtype
        )
        self._draws += 1
        return self.backend.numpy.add(self._seed_value, step)


class MixResult(NamedTuple):
    """The output of `mixer.mix(images)`.

    Attributes:
        images: the mixed batch, same shape as the input, in the layer's
            compute dtype.
        permutation: int32 `(N,)`. Sample `i` is mixed with
            `images[permutation[i]]`; never with itself when `N >= 2`.
        lam: float32 `(N,)`, the exact share of `images[i]` kept in output
            `i`: the mean of `mask` over the pixels (for MixUp, which has no
            mask, the interpolation weight).
        mask: float32 `(N, H, W, 1)` (`(N, 1, H, W)` for channels-first),
            the per-pixel share each output keeps from `images[i]` (1 kept,
            0 taken from the partner, between for a soft mask), in output
            coordinates; None for MixUp (every pixel is a blend of weight
            `lam`).
    """

    images: Any
    permutation: Any
    lam: Any
    mask: Any = None


class MixingLayer(keras.layers.Layer):
    """Base class of every mixing layer: input handling, label mixing and
    `tf.data` safety.

    A mixer registers itself by declaring its facts as class keywords (see
    `keras_sumix.layers.registry`):

    ```python
    class CutMix(BaseMixer, name="cutmix", in_place=True):
        ...
    ```

    `name` (omit it for a mixer not built by name), `in_place`,
    `true_share` (defaults to `in_place`), `needs_saliency`,
    `needs_features` and `mixes_features` (False);
    a subclass without keywords inherits its parent's facts but not its
    name.

    Subclasses implement `_mix(images, masks=None, **context) -> (MixResult,
    mixed masks or None)` (masks: Keras's `segmentation_masks`, mixed with the
    images' draw), drawing from `self._seed()` and computing with
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
      blended into; a box mixer makes the whole of the sample's own output
      NaN, even where its non-finite pixel was covered, so that it is never
      silently dropped). `lam` and `permutation` never depend on pixel
      values through NaN, so they stay finite and exact. Training models
      (`MixingModel.fit`) reject or stop on non-finite data.
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
    - Integer labels of shape `(N,)` or `(N, 1)` (what
      `keras.datasets.cifar10.load_data()` returns) are class indices, and
      need `num_classes`; `(N, C)` labels (C > 1, or float) are one-hot or
      soft. Rank-1 float labels raise a TypeError; labels whose batch size
      differs from the images' raise a ValueError.
    - With `label_smoothing` = e, the one-hot (or given soft) labels of C
      columns are smoothed first, `y * (1 - e) + e / C`, then mixed.
    - A dict may also hold Keras's `"segmentation_masks"`, `(N, H, W, K)`
      (`(N, K, H, W)` channels-first): they are mixed with the images' own
      draw (the same pixel mask, the same blend) and returned in the compute
      dtype. `"bounding_boxes"` raise a ValueError.
    - Called on images alone inside a model (a symbolic Keras input, or from
      a model's call), a mixer would mix the images but not the labels the
      model is trained against: it raises a ValueError saying where to mix
      instead.

    Randomness: each call draws from the layer's `SeedGenerator`, whose state
    is a variable (saved with the weights). A compiled model threads that
    state through its train step; a function compiled by hand (`jax.jit`)
    does not, so there pass an explicit `seed` to `mix`, `draw` or the call
    (an int, or an integer tensor of shape `(2,)` such as a JAX PRNG key):
    the mix then depends on that seed alone and leaves the layer's state
    untouched. Under `jax.jit`, a call without `seed` outside a
    `keras.StatelessScope` raises a RuntimeError (it would repeat one draw
    at every step).

    Args:
        num_classes: number of classes; required for integer labels.
        seed: integer seed of the layer's random stream.
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.
        label_smoothing: share e in [0, 1) of each label spread uniformly
            over the classes before mixing. Defaults to 0.
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).
    """

    #: The registry name (None: not built by name, e.g. `RandomChoice`).
    mixer_name: str | None = None
    #: Every output pixel comes from the same position of either image.
    in_place: bool = False
    #: Object masks mixed the same way give the true label share.
    true_share: bool = False
    #: `mix` takes the model's `saliency` (N, H, W).
    needs_saliency: bool = False
    #: `mix` takes `features`, a feature map of the batch (a learned mixer:
    #: AutoMix); the models then run the encoder it reads and its own losses.
    needs_features: bool = False
    #: The mixer blends the network's hidden feature maps (ManifoldMix): only
    #: a model's staged forward pass runs it; `mix` on images alone raises.
    mixes_features: bool = False

    def __init_subclass__(
        cls,
        name: str | None = None,
        in_place: bool | None = None,
        true_share: bool | None = None,
        needs_saliency: bool | None = None,
        needs_features: bool | None = None,
        mixes_features: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls.mixer_name = name
        if in_place is not None:
            cls.in_place = in_place
            cls.true_share = in_place
        if true_share is not None:
            cls.true_share = true_share
        if needs_saliency is not None:
            cls.needs_saliency = needs_saliency
        if needs_features is not None:
            cls.needs_features = needs_features
        if mixes_features is not None:
            cls.mixes_features = mixes_features
        if name is not None:
            registry.register(cls, name)

    def __init__(
        self,
        num_classes: int | None = None,
        seed: int | None = None,
        data_format: str | None = None,
        label_smoothing: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_classes = check_int("num_classes", num_classes, 1, allow_none=True)
        self.label_smoothing = check_number(
            "label_smoothing",
            label_smoothing,
            low=0.0,
            high=1.0,
            include_low=True,
            include_high=False,
        )
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
        self.backend = DynamicBackend()
        self._allow_non_tensor_positional_args = True
        self._set_seed_stream(None)

    # ------------------------------------------------------------------ #
    # Backend selection (what keras' DataLayer does, shared by __call__ and
    # mix): inside a tf.data graph the layer computes with TensorFlow ops
    # whatever the Keras backend is.
    # ------------------------------------------------------------------ #
    @staticmethod
    def _in_tf_data(sample: Any) -> bool:
        return (
            not isinstance(sample, keras.KerasTensor)
            and in_tf_graph()
            and not is_in_jax_tracing_scope(sample)
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

    def _concrete(self, value: Any) -> bool:
        """Whether `value` is known now (eager), not traced."""
        name = self.backend.name
        if name == "jax":
            return not is_in_jax_tracing_scope(value)
        if name == "tensorflow":
            import tensorflow as tf

            return tf.executing_eagerly()
        # torch: Python control flow (torch.compile breaks the graph there).
        return True

    @no_automatic_dependency_tracking
    def _set_seed_stream(self, stream: _SeedStream | None) -> None:
        # Untracked: a stream is no part of the layer's state.
        self._seed_stream = stream

    @contextlib.contextmanager
    def _seed_scope(self, seed: Any):
        """Draw from `seed` (see `_seed_tensor`) inside the scope; None
        keeps the layer's own stream."""
        if seed is None:
            yield
            return
        previous = self._seed_stream
        self._set_seed_stream(_SeedStream(self._seed_tensor(seed), self.backend))
        try:
            yield
        finally:
            self._set_seed_stream(previous)

    def _seed_tensor(self, seed: Any) -> Any:
        """An explicit `seed` as the `(2,)` seed tensor of the backend."""
        ops = self.backend
        dtype = ops.random_seed_dtype()
        if isinstance(seed, int) and not isinstance(seed, bool):
            return ops.convert_to_tensor([seed, 0], dtype=dtype)
        if ops.name == "jax":
            import jax

            if jax.dtypes.issubdtype(getattr(seed, "dtype", None), jax.dtypes.prng_key):
                seed = jax.random.key_data(seed)  # a typed `jax.random.key`
        try:
            tensor = ops.convert_to_tensor(seed)
        except (TypeError, ValueError) as error:
            raise TypeError(
                "`seed` must be an int or an integer tensor of shape (2,) (e.g. "
                f"a JAX PRNG key). Received: seed={seed!r}."
            ) from error
        kind = keras.backend.standardize_dtype(tensor.dtype)
        if "int" not in kind or tuple(tensor.shape) != (2,):
            raise ValueError(
                "`seed` must be an int or an integer tensor of shape (2,) (e.g. "
                f"a JAX PRNG key). Received a tensor of shape {tuple(tensor.shape)} "
                f"and dtype {kind}."
            )
        return ops.cast(tensor, dtype)

    @no_automatic_dependency_tracking
    def _seed(self) -> keras.random.SeedGenerator:
        if self._seed_stream is not None:
            return self._seed_stream
        # Inside tf.data under another backend: a TensorFlow-side generator,
        # untracked (it is not part of the model's state).
        name = self.backend.name
        if name == keras.backend.backend():
            if name == "jax" and not in_stateless_scope() and is_in_jax_tracing_scope():
                raise RuntimeError(
                    f"{type(self).__name__} was called inside a compiled JAX "
                    "function (`jax.jit`) without `seed`: its random state would "
                    "be baked into the compiled function, repeating the same "
                    "draw at every step. Pass a fresh seed at each step, e.g. "
                    "`key, step_key = jax.random.split(key)` then "
                    "`mixer.mix(images, seed=step_key)` or "
                    "`mixer(images, labels, seed=step_key)` (the Layers page "
                    "of the docs, 'In a compiled loop'), or call it inside a "
                    "`keras.StatelessScope` that maps its state."
                )
            return self.generator
        if not hasattr(self, "_backend_generators"):
            self._backend_generators = {}
        if name not in self._backend_generators:
            self._backend_generators[name] = keras.random.SeedGenerator(
                self.seed, backend=self.backend
            )
        return self._backend_generators[name]

    def __call__(self, inputs: Any, labels: Any = None, **kwargs: Any) -> Any:
        # `ds.map(mixer)` on an (images, labels) dataset passes two arguments.
        if labels is not None:
            if isinstance(inputs, (dict, tuple, list)):
                raise ValueError(
                    "Pass labels either inside `inputs` (a dict or an "
                    "(images, labels) tuple) or as the second argument, not both."
                )
            inputs = (inputs, labels)
        images, labels, _ = self._unpack(inputs)
        if labels is None and not (
            isinstance(inputs, dict) and "segmentation_masks" in inputs
        ):
            self._check_not_in_model(images)
        # Host (NumPy) labels are range-checked here, before conversion.
        labels = host_array(labels)
        if labels is not None and self.num_classes and _are_indices(labels):
            check_class_indices("labels", labels, self.num_classes)
        sample = keras.tree.flatten(inputs)[0]
        with self._backend_scope(sample) as switched:
            if not switched:
                return super().__call__(inputs, **kwargs)
            with inputs_not_converted(self):
                return super().__call__(inputs, **kwargs)

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

    def _check_not_in_model(self, images: Any) -> None:
        """Images alone inside a model are mixed without their labels."""
        context = current_call_context()
        caller = getattr(context, "entry_layer", None)
        if isinstance(images, keras.KerasTensor):
            where = "on a symbolic input (a layer of a Sequential or functional model)"
        elif isinstance(caller, keras.Model) and caller is not self:
            where = f"by the model {caller.name!r}"
        else:
            return
        raise ValueError(
            f"{type(self).__name__} was called on images alone {where}: it would "
            "mix the images but not the labels the model is trained against, "
            "which never pass through it. Mix images and labels together "
            "instead: in the input pipeline (`ds.map(mixer)` on an "
            "(images, labels) dataset, or `mixer(images, labels)`), or let the "
            "model mix inside its train step: `keras_sumix.MixupModel(backbone, "
            "num_classes, mixer)` or `keras_sumix.SUMixModel(backbone, "
            "num_classes, mixer)`."
        )

    def _run(
        self, images: Any, masks: Any, seed: Any, context: dict[str, Any]
    ) -> tuple[MixResult, Any]:
        """`_mix` on the right backend and seed."""
        with self._backend_scope(images), self._seed_scope(seed):
            return self._mix(images, masks, **context)

    def mix(self, images: Any, seed: Any = None, **context: Any) -> MixResult:
        """Mix a batch of images.

        Args:
            images: rank-4 batch, `(N, H, W, C)` or `(N, C, H, W)` following
                `data_format`, N >= 1. Integer and bool images are cast to
                the compute dtype, not rescaled; see the class docstring for
                NaN pixels, a batch of one and tiny images.
            **context: what a mixer with `needs_saliency` takes: `saliency`,
                `(N, H, W)`; with `needs_features`: `features`, a feature
                map of the batch `(N, h, w, D)` (`(N, D, h, w)` for
                channels-first). Any other keyword (or one given to a mixer
                that does not use it) raises a TypeError.
            seed: None draws from the layer's own stream (advancing it); an
                int, or an integer tensor of shape `(2,)` (a JAX PRNG key,
                `jax.random.split(key)[1]`), draws from that seed alone, the
                functional form for a compiled loop (see the class
                docstring): the same seed gives the same mix, and
                `mix(x, seed=s)` equals `mix(x)` of a fresh layer built with
                `seed=s`.

        Returns:
            A `MixResult(images, permutation, lam, mask)`.

        Example:

        >>> import numpy as np, keras_sumix
        >>> mixer = keras_sumix.layers.MixUp()
        >>> x = np.random.rand(4, 8, 8, 3)
        >>> a, b = mixer.mix(x, seed=7), mixer.mix(x, seed=7)
        >>> bool(np.array_equal(a.lam, b.lam))
        True
        """
        return self._run(images, None, seed, context)[0]

    def call(self, inputs: Any, training: bool = True, seed: Any = None) -> Any:
        images, labels, pack = self._unpack(inputs)
        if not training:
            return inputs
        context, masks = {}, None
        if isinstance(inputs, dict):
            context = {k: inputs[k] for k in self._context_keys() if k in inputs}
            masks = inputs.get("segmentation_masks")
        with self._seed_scope(seed):
            result, mixed_masks = self._mix(images, masks, **context)
        out = pack(
            result.images,
            None if labels is None else self._mix_labels(labels, result),
        )
        if masks is not None:
            out["segmentation_masks"] = mixed_masks
        return out

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
            if "bounding_boxes" in inputs:
                raise ValueError(
                    f"{type(self).__name__} does not mix `bounding_boxes`: the "
                    "pixels it takes from the partner (a pasted region, a blend) "
                    "carry no box of their own. Drop the 'bounding_boxes' key, or "
                    "use `keras.layers.MixUp`, which keeps both images' boxes."
                )
            allowed = (
                "images",
                "labels",
                "segmentation_masks",
                *self._context_keys(),
            )
            extra = {k: v for k, v in inputs.items() if k not in allowed}
            if extra:
                raise ValueError(
                    "A dict input may only hold "
                    + ", ".join(repr(k) for k in allowed)
                    + f". Received extra keys: {sorted(extra)}."
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

    def _check_images(self, images: Any, name: str = "images") -> None:
        shape = tuple(images.shape)
        if len(shape) == 3:
            raise ValueError(
                f"`{name}` must be a batch of rank 4 (N, H, W, C) or (N, C, H, W): "
                f"mixing pairs samples within a batch. Received a single image of "
                f"shape {shape}; batch your data first (e.g. `ds.batch(n)`)."
            )
        if len(shape) != 4:
            raise ValueError(
                f"`{name}` must be a rank-4 batch (N, H, W, C) or (N, C, H, W). "
                f"Received shape {shape}."
            )
        if 0 in shape:
            raise ValueError(
                f"`{name}` must not be empty: at least one image, of at least "
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
                f"`{name}` of shape {shape} look {other} but the layer uses "
                f"data_format={self.data_format!r} (from "
                "keras.config.image_data_format()). Pass "
                f"data_format={other!r} to the layer (or transpose the batch); "
                f"pass data_format={self.data_format!r} explicitly to mix this "
                "shape as it is."
            )

    def _mix_labels(self, labels: Any, result: MixResult) -> Any:
        """`lam * y + (1 - lam) * y[permutation]` of the (smoothed) one-hot
        or soft labels, float32 `(N, C)`."""
        ops = self.backend
        labels = self._label_matrix(labels)
        n_img, n_lab = result.images.shape[0], labels.shape[0]
        if n_img is not None and n_lab is not None and n_img != n_lab:
            raise ValueError(
                f"`labels` batch size ({n_lab}) does not match `images` batch "
                f"size ({n_img})."
            )
        lam = ops.numpy.expand_dims(result.lam, -1)
        partner = ops.numpy.take(labels, result.permutation, axis=0)
        return lam * labels + (1.0 - lam) * partner

    def _label_matrix(self, labels: Any) -> Any:
        """Labels as float32 `(N, C)`: class indices `(N,)` or `(N, 1)`
        one-hot encoded, `(N, C)` labels as given; then smoothed."""
        ops = self.backend
        labels = ops.convert_to_tensor(labels)
        rank = len(labels.shape)
        dtype = keras.backend.standardize_dtype(labels.dtype)
        if rank == 2 and labels.shape[-1] == 1 and "int" in dtype:
            # (N, 1) integers (keras.datasets' labels): class indices.
            labels = ops.numpy.reshape(labels, (-1,))
            rank = 1
        if rank == 1:
            if "int" not in dtype:
                raise TypeError(
                    "Rank-1 `labels` must be integer class indices. Received "
                    f"dtype {dtype}; pass one-hot/soft labels as (N, C)."
                )
            if self.num_classes is None:
                raise ValueError(
                    "Integer `labels` of shape (N,) or (N, 1) are class indices "
                    "and need `num_classes` to build one-hot targets (mixing "
                    "indices as numbers means nothing). Pass `num_classes=` to "
                    "the layer, or give one-hot labels of shape (N, C)."
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
                    f"`labels` of shape {tuple(labels.shape)} and dtype {dtype} "
                    f"are one-hot/soft labels of {labels.shape[-1]} classes, but "
                    f"the layer was built with num_classes={self.num_classes}. "
                    "Give class indices as integers, (N,) or (N, 1), or one-hot "
                    f"labels of shape (N, {self.num_classes})."
                )
            labels = ops.cast(labels, "float32")
        else:
            raise ValueError(
                "`labels` must be integer (N,) or (N, 1) class indices, or "
                f"one-hot/soft (N, C). Received shape {tuple(labels.shape)}."
            )
        if self.label_smoothing:
            classes = ops.cast(ops.shape(labels)[-1], "float32")
            labels = labels * (1.0 - self.label_smoothing) + (
                self.label_smoothing / classes
            )
        return labels

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

    def _context_keys(self) -> tuple[str, ...]:
        """The keywords `mix` takes besides the images (its facts say)."""
        return ("saliency",) * self.needs_saliency + ("features",) * (
            self.needs_features
        )

    def _check_context(self, context: dict[str, Any]) -> None:
        """Only a mixer with `needs_saliency` takes `saliency`, one with
        `needs_features` `features`; nothing else is taken."""
        allowed = self._context_keys()
        unexpected = sorted(set(context) - set(allowed))
        if unexpected:
            takes = (
                "takes only " + ", ".join(f"`{k}`" for k in allowed)
                if allowed
                else "takes no keyword arguments (it uses no saliency)"
            )
            raise TypeError(
                f"{type(self).__name__}.mix {takes}. Received: "
                + ", ".join(f"{k}=..." for k in unexpected)
                + "."
            )

    def _mix(
        self, images: Any, masks: Any = None, **context: Any
    ) -> tuple[MixResult, Any]:
        """The mix of `images` and, when given, of Keras's
        `segmentation_masks` with the same draw: `(result, mixed masks or
        None)`."""
        raise NotImplementedError

    # ------------------------------------------------------------------ #
    # Keras plumbing
    # ------------------------------------------------------------------ #
    def compute_output_shape(self, input_shape: Any) -> Any:
        if isinstance(input_shape, dict):
            out = {"images": input_shape["images"]}
            if "labels" in input_shape:
                out["labels"] = self._label_shape(input_shape["labels"])
            if "segmentation_masks" in input_shape:
                out["segmentation_masks"] = input_shape["segmentation_masks"]
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
                "label_smoothing": self.label_smoothing,
            }
        )
        return config


def _are_indices(labels: Any) -> bool:
    """Host labels that are class indices: integers `(N,)` or `(N, 1)`."""
    return labels.dtype.kind in "iu" and (
        labels.ndim == 1 or (labels.ndim == 2 and labels.shape[1] == 1)
    )


class BaseMixer(MixingLayer):
    """Base class of the single-method mixers (MixUp, CutMix, ...).

    It draws the pairing (a derangement) and the Beta mix ratio, and turns a
    mixer's kept mask into the exact lam. A subclass implements two hooks,
    on channels-last tensors:

    - `_draw(images, permutation, lam, seed, **context) -> dict`: the
      mixer's own random choices (a box, a mask, ...), added to the
      parameters `draw` returns (an entry may replace `lam`, the drawn
      ratio, when the mixer draws something else, as ResizeMix does);
    - `_apply(images, partner, params) -> (mixed, mask)`: the mixed batch
      and the share `(M, H, W)` (M in {1, N}) each output keeps from
      `images`, or None when there is no mask (MixUp). The default pastes
      `params["box"]` (`(M, 4)` int32: top, left, bottom, right) or keeps
      `params["mask"]` (`(M, H, W)`, the kept share). It must be linear in
      `images` and `partner` (lambda fidelity mixes object masks with it).

    Args:
        alpha: concentration of the symmetric Beta(alpha, alpha) the mix ratio
            is drawn from.
        mode: `"elem"` draws one ratio (and box or mask) per sample, `"batch"`
            one for the whole batch, as the reference toolbox does.
        num_classes: number of classes; required for integer labels.
        seed: integer seed of the layer's random stream.
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.
        label_smoothing: share in [0, 1) of each label spread over the
            classes before mixing (see `MixingLayer`).
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).
    """

    def __init__(
        self,
        alpha: float = 1.0,
        mode: str = "elem",
        num_classes: int | None = None,
        seed: int | None = None,
        data_format: str | None = None,
        label_smoothing: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            seed=seed,
            data_format=data_format,
            label_smoothing=label_smoothing,
            **kwargs,
        )
        self.alpha = check_number("alpha", alpha, low=0.0)
        self.mode = check_choice("mode", mode, _MODES)

    # ------------------------------------------------------------------ #
    # Drawing a mix, applying it
    # ------------------------------------------------------------------ #
    def draw(self, images: Any, seed: Any = None, **context: Any) -> dict[str, Any]:
        """Draw a mix of `images` without applying it.

        Args:
            images: the batch, as `mix` takes it.
            seed: None (the layer's own stream) or an explicit seed, as `mix`
                takes it.
            **context: as `mix` takes it (`saliency` for a mixer with
                `needs_saliency`, `features` for one with `needs_features`).

        Returns:
            A dict of tensors: `"permutation"` (int32 `(N,)`), `"lam"` (the
            drawn ratio, `(N,)` or `(1,)` in batch mode) and the mixer's own
            draws (e.g. `"box"`, `"mask"`). `apply(images, params)` turns it
            into the `MixResult` that `mix(images)` would have returned.

        Example:

        >>> import numpy as np, keras_sumix
        >>> mixer = keras_sumix.layers.CutMix(seed=1)
        >>> x = np.random.rand(4, 8, 8, 3)
        >>> params = mixer.draw(x)
        >>> sorted(params)
        ['box', 'lam', 'permutation']
        >>> result = mixer.apply(x, params)
        >>> bool(np.allclose(result.lam, result.mask.mean(axis=(1, 2, 3))))
        True
        """
        with self._backend_scope(images), self._seed_scope(seed):
            return self._draw_params(self._prepare(images), context)

    def apply(
        self, images: Any, params: dict[str, Any], partner: Any = None
    ) -> MixResult:
        """Apply a drawn mix (`draw`) to `images`.

        Args:
            images: the batch the mix was drawn for (or another batch of the
                same shape: object masks, a feature map of the same size).
            params: what `draw` returned.
            partner: what output `i` takes from its partner, same shape as
                `images`; defaults to `images[permutation]`. Mixing is linear
                in `images` and `partner`, so passing zeros for one of them
                gives the other's contribution alone.

        Returns:
            A `MixResult(images, permutation, lam, mask)`.
        """
        with self._backend_scope(images):
            images = self._prepare(images)
            if partner is not None:
                partner = self._prepare(partner, "partner")
                if tuple(partner.shape) != tuple(images.shape):
                    raise ValueError(
                        "`partner` must have the shape of `images`. Received "
                        f"{tuple(partner.shape)} and {tuple(images.shape)}."
                    )
            return self._apply_params(images, params, partner)

    def _mix(
        self, images: Any, masks: Any = None, **context: Any
    ) -> tuple[MixResult, Any]:
        images = self._prepare(images)
        params = self._draw_params(images, context)
        result = self._apply_params(images, params)
        if masks is None:
            return result, None
        masks = self._prepare(masks, "segmentation_masks")
        if tuple(masks.shape[:3]) != tuple(images.shape[:3]):
            raise ValueError(
                "`segmentation_masks` must have the batch size and the height "
                "and width of `images`. Received shapes "
                f"{tuple(masks.shape)} and {tuple(images.shape)} (channels-last)."
            )
        return result, self._apply_params(masks, params).images

    def _prepare(self, images: Any, name: str = "images") -> Any:
        """Checked, cast to the compute dtype, channels-last."""
        ops = self.backend
        images = ops.convert_to_tensor(images)
        self._check_images(images, name)
        images = ops.cast(images, self.compute_dtype)
        if self.data_format == "channels_first":
            images = ops.numpy.transpose(images, (0, 2, 3, 1))
        return images

    def _draw_params(self, images: Any, context: dict[str, Any]) -> dict[str, Any]:
        self._check_context(context)
        seed = self._seed()
        n = self.backend.shape(images)[0]
        permutation = self._derangement(n, seed)
        lam = self._draw_lam(n, seed)
        params = {"permutation": permutation, "lam": lam}
        params.update(self._draw(images, permutation, lam, seed, **context))
        return params

    def _apply_params(
        self, images: Any, params: dict[str, Any], partner: Any = None
    ) -> MixResult:
        ops = self.backend
        permutation = params["permutation"]
        if partner is None:
            partner = ops.numpy.take(images, permutation, axis=0)
        mixed, mask = self._apply(images, partner, params)
        shape = ops.shape(images)
        n = shape[0]
        if mask is None:
            lam = ops.numpy.broadcast_to(ops.cast(params["lam"], "float32"), (n,))
        else:
            mask = ops.numpy.broadcast_to(
                ops.cast(mask, "float32"), (n, shape[1], shape[2])
            )
            if "box" in params:  # the mask's mean, without reading the mask
                lam = self._box_lam(params["box"], shape[1], shape[2])
                lam = ops.numpy.broadcast_to(lam, (n,))
            else:
                lam = ops.numpy.mean(mask, axis=(1, 2))
        # A batch of one has no partner: it is returned as it is, keeping all
        # of itself.
        if isinstance(n, int):
            if n < 2:
                mixed, lam = images, ops.numpy.ones_like(lam)
                mask = None if mask is None else ops.numpy.ones_like(mask)
        else:
            # The batch size is known at run time only (a `tf.data` batch
            # without drop_remainder): branch rather than select element-wise,
            # which would cost another pass over the whole batch.
            paired = ops.numpy.greater_equal(n, 2)
            blended = mixed
            mixed = ops.core.cond(paired, lambda: blended, lambda: images)
            lam = ops.numpy.where(paired, lam, 1.0)
            if mask is not None:
                mask = ops.numpy.where(paired, mask, 1.0)
        if self.data_format == "channels_first":
            mixed = ops.numpy.transpose(mixed, (0, 3, 1, 2))
            mask = None if mask is None else mask[:, None]
        elif mask is not None:
            mask = mask[..., None]
        return MixResult(mixed, permutation, lam, mask)

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

    def _draw(
        self, images: Any, permutation: Any, lam: Any, seed: Any, **context: Any
    ) -> dict[str, Any]:
        """The mixer's own random choices (channels-last `images`)."""
        return {}

    def _apply(self, images: Any, partner: Any, params: dict[str, Any]):
        """`(mixed, kept mask)` from `params["box"]` or `params["mask"]`."""
        if "box" in params:
            return self._paste_box(images, partner, params["box"])
        return self._keep(images, partner, params["mask"])

    # ------------------------------------------------------------------ #
    # Helpers for cutting mixers
    # ------------------------------------------------------------------ #
    def _weighted(self, images: Any, partner: Any, keep: Any) -> Any:
        """`keep * images + (1 - keep) * partner` with `keep` (M, H, W * C)
        or broadcastable to it (M in {1, N}), on the batch viewed as rows of
        `W * C` values: the weight then broadcasts over outer axes only,
        which element-wise kernels stream (a weight broadcast over the
        channel axis costs several times more on CPU).

        Exact for a hard weight (0 or 1: no rounding), and a non-finite
        pixel reaches both outputs at its position (`0 * NaN` is NaN).
        """
        ops = self.backend
        shape = ops.shape(images)
        rows = (-1, shape[1], shape[2] * shape[3])
        keep = ops.cast(keep, images.dtype)
        images_rows = ops.numpy.reshape(images, rows)
        partner_rows = ops.numpy.reshape(partner, rows)
        mixed = keep * images_rows + (1.0 - keep) * partner_rows
        return ops.numpy.reshape(mixed, shape)

    def _rows(self, per_pixel: Any, images: Any) -> Any:
        """`per_pixel` `(M, H, W)` repeated over the channels of `images`:
        `(M, H, W * C)`, the batch's row view (`_weighted`, `_select`)."""
        ops = self.backend
        return ops.numpy.repeat(per_pixel, ops.shape(images)[3], axis=2)

    def _keep(self, images: Any, partner: Any, mask: Any):
        """Keep `images` with weight `mask` (M, H, W; M in {1, N}), take the
        rest from `partner`. Returns the mixed batch and the mask."""
        weight = self._rows(self.backend.cast(mask, images.dtype), images)
        return self._weighted(images, partner, weight), mask

    def _paste_box(self, images: Any, partner: Any, box: Any):
        """Take `partner` inside the boxes `[top, bottom) x [left, right)`
        (`box` `(M, 4)`, M in {1, N}).

        Each output pixel is selected from `images` or `partner` (one read of
        each, one write: the speed of MixUp's blend, where a weighted sum
        with the mask writes the batch several times over), by a boolean
        box built from a row and a column test, so the full mask is never
        built channel by channel. A sample with a non-finite pixel is made
        non-finite whole in its own output (`_non_finite_kept`). Returns the
        mixed batch and the kept mask `(M, H, W)`.
        """
        ops = self.backend
        shape = ops.shape(images)
        height, width, channels = shape[1], shape[2], shape[3]
        box = ops.cast(box, "int32")

        def inside(start, stop, index):
            index = index[None, :]
            return (index >= start[:, None]) & (index < stop[:, None])

        rows = inside(box[:, 0], box[:, 2], ops.numpy.arange(height, dtype="int32"))
        # Column j of the (H, W * C) view is pixel column j // C.
        view_cols = ops.numpy.arange(width * channels, dtype="int32") // channels
        pasted = rows[:, :, None] & inside(box[:, 1], box[:, 3], view_cols)[:, None]
        mixed = self._select(images, partner, pasted)
        cols = inside(box[:, 1], box[:, 3], ops.numpy.arange(width, dtype="int32"))
        kept = (
            1.0
            - ops.cast(rows, "float32")[:, :, None]
            * ops.cast(cols, "float32")[:, None, :]
        )
        return mixed, kept

    def _select(self, images: Any, partner: Any, taken: Any) -> Any:
        """Each output pixel from `partner` where `taken`, else from
        `images`: one read of each and one write, exact.

        `taken` is boolean `(M, H, W * C)` (M in {1, N}), on the batch viewed
        as rows of `W * C` values (so it never broadcasts over the channel
        axis). A sample with a non-finite pixel is made non-finite whole in
        its own output (`_non_finite_kept`)."""
        ops = self.backend
        shape = ops.shape(images)
        view = (-1, shape[1], shape[2] * shape[3])
        mixed = ops.numpy.where(
            taken, ops.numpy.reshape(partner, view), ops.numpy.reshape(images, view)
        )
        return self._non_finite_kept(images, ops.numpy.reshape(mixed, shape))

    def _non_finite_kept(self, images: Any, mixed: Any) -> Any:
        """`mixed`, with the output of every sample of `images` that holds a
        NaN or Inf pixel made NaN whole (a selection would drop a non-finite
        pixel the partner's box covers). Finite batches, the usual case, take
        a branch that costs one read of `images` and nothing else."""
        ops = self.backend

        def poisoned():
            finite = ops.numpy.all(ops.numpy.isfinite(images), axis=(1, 2, 3))
            nan = ops.numpy.where(finite, 0.0, float("nan"))
            return mixed + ops.cast(nan, mixed.dtype)[:, None, None, None]

        all_finite = ops.numpy.all(ops.numpy.isfinite(images))
        return ops.core.cond(all_finite, lambda: mixed, poisoned)

    def _box_lam(self, box: Any, height: Any, width: Any) -> Any:
        """The share of pixels outside each box `(M, 4)`, float32 `(M,)`:
        the kept count over `H * W`, as the mean of the kept mask gives it
        (both exact integers divided once)."""
        ops = self.backend
        box = ops.cast(box, "int32")
        area = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])
        pixels = height * width
        kept = ops.cast(pixels - area, "float32")
        return kept / ops.cast(pixels, "float32")

    def _centred_box(self, cy: Any, cx: Any, lam: Any, height: Any, width: Any):
        """The reference CutMix box, `(M, 4)` int32: top, left, bottom, right.

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
        return ops.numpy.stack(
            [
                ops.numpy.clip(cy - half_h, 0, height),
                ops.numpy.clip(cx - half_w, 0, width),
                ops.numpy.clip(cy + half_h, 0, height),
                ops.numpy.clip(cx + half_w, 0, width),
            ],
            axis=1,
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"alpha": self.alpha, "mode": self.mode})
        return config
