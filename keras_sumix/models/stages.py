"""The staged forward pass of a mixer that mixes hidden features
(`mixes_features`: ManifoldMix).

The backbone is split at its stage boundaries into segments, functional
models that share its layers (and weights): input -> stage 1 -> stage 2 ->
... -> output. The mixed pass runs them in turn and, after each boundary
the mixer may draw, replaces the feature map by its blend
(`ManifoldMix.blend`) where the drawn stage is that boundary:
`ops.where(stage == k, blend(h), h)`. The stage is a tensor drawn inside
the compiled step, so the pass holds no Python branch on it; the blend at
the boundaries not drawn costs a gather and an element-wise pass over a
feature map, little beside the convolutions between them.

Under `tf.distribute` the pairing is global (`keras_sumix.models.backend.
replicas`): at each boundary the replicas' feature maps are all-gathered
(with gradient), blended as one device would, and each replica keeps its
own rows, so a step equals one device's on the same global batch (batch
normalisation statistics aside, as for every mixer). JAX's data
parallelism needs nothing (one global program).
"""

from __future__ import annotations

import contextlib
import re
import threading
from typing import Any, NamedTuple

import keras
from keras import ops

from keras_sumix.layers.manifold_mix import INPUT
from keras_sumix.models.backend import replicas
from keras_sumix.models.pooling import pool_features, token_pooling_of

_STAGE_LAYER = re.compile(r"stage(\d+)$")


class StagedMix(NamedTuple):
    """A drawn mix of hidden features, as the models' losses read a
    `MixResult`: `permutation`, `lam` (float32 `(N,)`, the weight of each
    sample's own features and label) and no `images` or `mask`; `params`
    holds the whole draw (with `"stage"`, the index of the stage mixed at)."""

    permutation: Any
    lam: Any
    params: dict[str, Any]
    images: Any = None
    mask: Any = None


def draw(mixer: Any, images: Any) -> StagedMix:
    """Draw a mix of `images`' features (the global batch under
    `tf.distribute`): the pairing, lam and the stage. A batch of one keeps
    itself (`lam = 1`), as with every mixer."""
    params = mixer.draw(images)
    n = ops.shape(images)[0]
    lam = ops.broadcast_to(ops.cast(params["lam"], "float32"), (n,))
    if isinstance(n, int):
        if n < 2:
            lam = ops.ones_like(lam)
    else:
        lam = ops.where(ops.greater_equal(n, 2), lam, 1.0)
    params = {**params, "lam": lam}
    return StagedMix(params["permutation"], lam, params)


def default_stages(backbone: keras.Model) -> tuple[str, ...]:
    """The reference's stages for `backbone`: the input and its first two
    stages, the keras-hub `pyramid_outputs` keys in the backbone's order
    (`"P2"`, `"P3"` of a ResNet), else the layers named `stage1` and
    `stage2` (`keras_sumix.models`' CNNs).

    Raises:
        ValueError: the backbone has neither (the message says what to name
            or pass).
    """
    pyramid = list(getattr(backbone, "pyramid_outputs", None) or {})
    if len(pyramid) >= 2:
        return (INPUT, *pyramid[:2])
    named = sorted(
        (int(m.group(1)), layer.name)
        for layer in getattr(backbone, "layers", [])
        if (m := _STAGE_LAYER.match(layer.name))
    )
    if len(named) >= 2:
        return (INPUT, named[0][1], named[1][1])
    raise ValueError(
        "ManifoldMix(stages=None) mixes at the input and the backbone's first "
        f"two stages, but the backbone {getattr(backbone, 'name', backbone)!r} "
        "has neither layers named `stage1`, `stage2` (as keras_sumix.models' "
        "CNNs name their stage outputs) nor keras-hub `pyramid_outputs`. Name "
        "its stage outputs (e.g. `keras.layers.Identity(name='stage1')`) or "
        "pass them: `ManifoldMix(stages=['input', 'layer_name', ...])`."
    )


def _graph_points(backbone: keras.Model, hidden: list[str]) -> list[Any]:
    """The symbolic input of `backbone`, the outputs of its stages `hidden`
    (keras-hub pyramid keys or layer names) and its output."""
    pyramid = getattr(backbone, "pyramid_outputs", None) or {}
    if isinstance(backbone, keras.Sequential):
        # A Sequential's layers may keep the nodes of an earlier build (a
        # loaded model's, or one built before its input was known), not
        # connected to its `inputs`: the chain is traced afresh through
        # its (shared) layers.
        spec = backbone.inputs[0]
        x = start = keras.Input(batch_shape=spec.shape, dtype=spec.dtype)
        outputs = {}
        for layer in backbone.layers:
            x = outputs[layer.name] = layer(x)
        stop = x
    else:
        start, stop = backbone.inputs[0], backbone.outputs[0]
        outputs = {}
        for name in hidden:
            with contextlib.suppress(ValueError):
                outputs[name] = backbone.get_layer(name).output
    points = [start]
    for name in hidden:
        if name in pyramid:
            points.append(pyramid[name])
        elif name in outputs:
            points.append(outputs[name])
        else:
            layers = (layer.name for layer in backbone.layers)
            raise ValueError(
                f"ManifoldMix stage {name!r}: the backbone {backbone.name!r} has "
                "no layer or pyramid output of that name. Its stage layers: "
                f"{[n for n in layers if 'stage' in n]}; its pyramid outputs: "
                f"{sorted(pyramid)}; `{INPUT!r}` is the images."
            )
    return [*points, stop]


class StagedBackbone:
    """`backbone` cut at `mixer`'s stages, and the mixed pass through it.

    Args:
        backbone: a functional (or Sequential) Keras model with one input,
            or a keras-hub backbone.
        mixer: a mixer with `mixes_features` (ManifoldMix).

    Raises:
        ValueError: the backbone is not functional, a stage is unknown (the
            message lists the stages it has), listed out of the network's
            order, or cannot be cut at (a connection skips over it).
    """

    def __init__(self, backbone: keras.Model, mixer: Any) -> None:
        inputs = getattr(backbone, "inputs", None)
        if not isinstance(inputs, list) or len(inputs) != 1:
            raise ValueError(
                "ManifoldMix runs the backbone stage by stage, so the backbone "
                "must be a functional or Sequential Keras model with one input "
                "(or a keras-hub backbone). Received "
                f"{type(backbone).__name__} {getattr(backbone, 'name', '')!r}."
            )
        self.mixer = mixer
        # Per thread: `tf.distribute.MirroredStrategy` traces each replica's
        # step in a thread of its own, through this one object.
        self._local = threading.local()
        self.names = mixer.stages or default_stages(backbone)
        self.token_pooling = token_pooling_of(backbone)
        hidden = [n for n in self.names if n != INPUT]
        points = _graph_points(backbone, hidden)
        bounds = (INPUT, *hidden, "output")
        # The draw index blended before each segment (None: not a stage).
        mixed_at = [0 if INPUT in self.names else None]
        mixed_at += [self.names.index(n) for n in hidden]
        #: `(draw index blended before the segment or None, segment)`.
        self.plan: list[tuple[int | None, keras.Model]] = [
            (mixed_at[k], _segment(backbone, points[k], points[k + 1], bounds[k:], k))
            for k in range(len(points) - 1)
        ]

    @property
    def active(self) -> StagedMix | None:
        """The mix of the pass this thread is running (`mixing`), else None."""
        return getattr(self._local, "mix", None)

    @contextlib.contextmanager
    def mixing(self, mix: StagedMix):
        """Inside the scope, `active` is `mix`: the model's `features` then
        runs this staged pass (so each model's own forward, heads and
        `training` flag apply unchanged)."""
        self._local.mix = mix
        try:
            yield
        finally:
            self._local.mix = None

    def __call__(self, images: Any, training: bool = True) -> Any:
        """The backbone's pooled features of the clean `images` (this
        replica's rows), with the feature maps blended as `active` says."""
        mix = self.active
        stage = mix.params["stage"]
        x = images
        for k, (index, segment) in enumerate(self.plan):
            if index is not None:
                if k == 0:  # the images: blended in the mixer's dtype
                    x = ops.cast(x, self.mixer.compute_dtype)
                blended = replicas.local_rows(
                    self.mixer.blend(replicas.gather(x), mix.params), x
                )
                x = ops.where(ops.equal(stage, index), blended, x)
            x = segment(x, training=training)
        return pool_features(x, self.token_pooling, self.mixer.data_format)


def _segment(
    backbone: keras.Model, start: Any, stop: Any, bounds: tuple, k: int
) -> keras.Model:
    """The layers of `backbone` from `start` to `stop` (shared)."""
    try:
        return keras.Model(start, stop, name=f"{backbone.name}_segment{k}")
    except ValueError as error:
        raise ValueError(
            f"ManifoldMix cannot cut the backbone {backbone.name!r} between "
            f"{bounds[0]!r} and {bounds[1]!r}: the layers after {bounds[0]!r} "
            f"need more than its output ({error}). List the stages in the order "
            "the network computes them, at points every path goes through (the "
            "output of a residual stage, not a tensor a connection skips over)."
        ) from error
