"""The learned-mixer step (AutoMix): what a model does for a mixer with
`needs_features`, around the mixer's own draw.

The model keeps a momentum (EMA) copy of its backbone and classifier
(`keras_sumix.models.momentum.MomentumEncoder`, built by `momentum_encoder`
and `build`); every training step

1. reads the copy's feature map of the clean batch (`mix`);
2. draws two mixes from it: the first trains the mix block (the copy's
   mixed cross-entropy on its images, gradient to the block only, plus the
   mixer's mask loss: the block loss), the second, detached, is the mix the
   network trains on;
3. adds to the network's loss the block loss and the clean cross-entropy
   of the network's clean pass (`add_losses`), and logs the block loss as
   `BLOCK_LOSS`;
4. after the optimizer step, moves the copy towards the network
   (`follow`).

What the step reads from the mixer is the contract `LearnedMixer`: the
mixer owns its hyperparameters (the user sets them where they choose the
mixer, `AutoMix(momentum_steps=...)`, and they are saved in its config),
this module owns what is done with them.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import keras

from keras_sumix.models import cross_entropy
from keras_sumix.models.backend import replicas
from keras_sumix.models.momentum import MomentumEncoder

#: The loss term (and training metric) of the mix block's loss.
BLOCK_LOSS = "mix_block_loss"


@runtime_checkable
class LearnedMixer(Protocol):
    """What the learned-mixer step reads from a mixer with `needs_features`
    (`keras_sumix.layers.AutoMix` implements it; `check` enforces it).

    Attributes:
        feature_layer: the backbone layer (or keras-hub pyramid key) whose
            feature map the mixer reads.
        data_format: the images' (and the feature map's) layout.
        mix_block_weight: weight of the copy's mixed cross-entropy in the
            block loss.
        clean_weight: weight of the network's clean cross-entropy.
    """

    feature_layer: str
    data_format: str
    mix_block_weight: float
    clean_weight: float

    def build_mix_block(self, feature_shape: Any) -> None:
        """Build the mixer's weights for feature maps of `feature_shape`."""

    def draw(self, images: Any, seed: Any = None, **context: Any) -> dict[str, Any]:
        """A draw from `features=`, with the network's (detached) mask and
        the block's own."""

    def apply(self, images: Any, params: dict[str, Any]) -> Any:
        """The `MixResult` of a draw."""

    def block_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """The draw as the block trains on it (its own mask, with gradient)."""

    def mask_loss(self, params: dict[str, Any]) -> Any:
        """The mixer's own loss on the block's draw (weighted)."""

    def momentum_at(self, step: Any) -> Any:
        """The copy's EMA momentum after `step` optimizer steps."""


def _missing(mixer: Any) -> list[str]:
    members = [
        name
        for name in dir(LearnedMixer)
        if not name.startswith("_") and name not in ("register",)
    ]
    members += list(LearnedMixer.__annotations__)
    return sorted({name for name in members if not hasattr(mixer, name)})


def momentum_encoder(
    backbone: keras.Model, classifier: keras.layers.Layer, mixer: LearnedMixer
) -> MomentumEncoder:
    """The momentum copy of `backbone` and `classifier` that `mixer` reads
    (unbuilt until `build`).

    Raises:
        TypeError: `mixer` does not implement `LearnedMixer` (the message
            names what it lacks).
    """
    if not isinstance(mixer, LearnedMixer):
        raise TypeError(
            f"A mixer with `needs_features` is a learned mixer: the model reads "
            f"it through `keras_sumix.models.learned_mixer.LearnedMixer`. "
            f"Received: {type(mixer).__name__}, which lacks {_missing(mixer)}."
        )
    return MomentumEncoder(
        backbone,
        classifier,
        mixer.feature_layer,
        mixer.data_format,
        name="momentum_encoder",
    )


def build(
    encoder: MomentumEncoder,
    mixer: LearnedMixer,
    input_shape: tuple,
    feature_dim: int,
    backbone: keras.Model,
    classifier: keras.layers.Layer,
) -> None:
    """Build the copy's head and the mixer's block for images of
    `input_shape` (pooled features of `feature_dim`), and start the copy
    equal to the network."""
    encoder.classifier.build((input_shape[0], feature_dim))
    mixer.build_mix_block(encoder.feature_shape(input_shape))
    encoder.reset(backbone, classifier)


def mix(
    encoder: MomentumEncoder, mixer: LearnedMixer, images: Any, dense: Any
) -> tuple[Any, Any]:
    """Two draws on the copy's features of the global batch (see
    `replicas`): the block loss on the first (the frozen copy's mixed
    cross-entropy with the drawn lam, weighted `mix_block_weight`, and the
    mask loss; gradient to the block only), and the second, detached, as
    the mix the network trains on.

    Args:
        encoder: the model's momentum copy.
        mixer: the learned mixer.
        images: the clean batch (this replica's).
        dense: its one-hot labels `(N, C)`.

    Returns:
        `(mix, block_loss)`: the global `MixResult` and a scalar.
    """
    features = replicas.gather(encoder.features(images))
    global_images, global_dense = replicas.gather(images), replicas.gather(dense)
    block = mixer.draw(global_images, features=features)
    block_images = mixer.apply(global_images, mixer.block_params(block)).images
    logits = encoder(replicas.local_rows(block_images, images))
    block_loss = mixer.mix_block_weight * cross_entropy.mixed(
        replicas.gather(logits), global_dense, block["permutation"], block["lam"]
    )
    block_loss = block_loss + mixer.mask_loss(block)
    params = mixer.draw(global_images, features=features)
    return mixer.apply(global_images, params), block_loss


def add_losses(
    terms: dict[str, Any],
    mixer: LearnedMixer,
    block_loss: Any,
    clean_logits: Any,
    targets: Any,
    weight: Any | None = None,
) -> dict[str, Any]:
    """`terms` with the learned mixer's: its block loss (logged as
    `BLOCK_LOSS`) and `clean_weight` times the clean cross-entropy of the
    network's clean pass, each clean sample weighted by its own `weight`
    (if given), added to `terms["loss"]`.

    Args:
        terms: the model's loss terms, `"loss"` among them.
        mixer: the learned mixer.
        block_loss: `mix`'s block loss.
        clean_logits: the network's logits on the clean batch (this
            replica's), with gradient.
        targets: the clean batch's (smoothed) targets `(N, C)`.
        weight: None or each clean sample's weight `(N,)`.
    """
    clean = cross_entropy.weighted_mean(
        cross_entropy.per_sample(
            replicas.gather(clean_logits), replicas.gather(targets)
        ),
        replicas.gather(weight),
    )
    loss = terms["loss"] + mixer.clean_weight * clean + block_loss
    return {**terms, "loss": loss, BLOCK_LOSS: block_loss}


def features(encoder: MomentumEncoder, images: Any) -> Any:
    """The copy's feature map of `images`, as in training (batch norm on the
    statistics of `images`), assigning nothing: the copy's moving statistics
    and seed states stay as they are."""
    with keras.StatelessScope():  # drops the training-mode assignments
        return encoder.features(images)


def follow(
    encoder: MomentumEncoder,
    mixer: LearnedMixer,
    backbone: keras.Model,
    classifier: keras.layers.Layer,
    step: Any,
) -> None:
    """Move the copy towards the network with the mixer's momentum for
    optimizer step `step` (the one just taken, counted from 0)."""
    encoder.update(backbone, classifier, mixer.momentum_at(step))
