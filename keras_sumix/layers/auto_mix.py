"""AutoMix (Liu et al., ECCV 2022): a learned mixer. A mix block, trained by
a loss of its own, turns the feature maps of a momentum encoder into a soft
mask per pair.

The model that trains with it (`MixupModel`, `SUMixModel`) keeps the
momentum (EMA) copy of its backbone and classifier the features come from,
runs the mix block's loss through that frozen copy and updates it after
every optimizer step: the learned-mixer step,
`keras_sumix.models.learned_mixer`. The layer holds what is AutoMix's own:
the mix block, its mask loss and the lam margin; and, as the user gives them
to `AutoMix(...)` and its config saves them, the hyperparameters of that
step (the loss weights `mix_block_weight`, `clean_weight` and the momentum
schedule, `momentum_at`), which the step reads through the contract
`keras_sumix.models.learned_mixer.LearnedMixer`.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from keras_sumix._validation import check_choice, check_int, check_number
from keras_sumix.layers.base import BaseMixer

_UPSAMPLING = ("nearest", "bilinear")
#: The reference's momentum (OpenMixup's AutoMix, ~10^5 steps on CIFAR).
REFERENCE_MOMENTUM = 0.999
#: The default EMA time scale `1 / (1 - momentum)`, as a share of
#: `momentum_steps`: 1 %, the reference's 0.999 at 10^5 steps.
MOMENTUM_TIME_SHARE = 0.01


@keras.saving.register_keras_serializable(package="keras_sumix")
class MixBlock(keras.layers.Layer):
    """AutoMix's mix block: attention between the feature maps of each image
    and of its partner, with lam embedded, read out into the share each
    pixel keeps from the image.

    With `f` the features `(N, h, w, D)` of the batch, `p` the pairing and
    `lam` the drawn ratios, the block reads `a = f`, `b = f[p]` (with
    `lam_channel`, lam embedded as one more channel: `a = [f, lam]`,
    `b = [f[p], 1 - lam]`), and with `q` a 1x1 convolution to
    `D' = max(D // reduction, 1)` channels and `v` one to a single channel
    computes

        P = softmax(q(a) q(b)^T / sqrt(D'))        (N, hw, hw)
        partner share = sigmoid(upsample(P v(b)))  (N, H, W)

    and returns `mask = 1 - partner share`, the kept share of each output
    pixel in `[0, 1]`. As the reference (OpenMixup's `PixelMixBlock` with
    `mask_mode="none_v_"`), one convolution serves query and key, and every
    weight starts from N(0, 0.01) with zero bias, so the first masks are
    about 0.5 everywhere.

    Args:
        reduction: the channel reduction of the query/key embedding.
        upsampling: `"nearest"` (the reference's CIFAR setting) or
            `"bilinear"`, from the feature map's size to the image's.
        lam_channel: whether lam is embedded as one more channel (the
            reference's `lam_concat`; its CIFAR setting has none).
        seed: integer seed of the initial weights (None: Keras's global
            random state).
        **kwargs: base layer keyword arguments.
    """

    def __init__(
        self,
        reduction: int = 2,
        upsampling: str = "nearest",
        seed: int | None = None,
        lam_channel: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.reduction = check_int("reduction", reduction, 1)
        self.upsampling = check_choice("upsampling", upsampling, _UPSAMPLING)
        if not isinstance(lam_channel, bool):
            raise TypeError(
                f"`lam_channel` must be a bool. Received: lam_channel={lam_channel!r}."
            )
        self.lam_channel = lam_channel
        self.seed = check_int("seed", seed, 0, allow_none=True)
        self.query = None
        self.value = None

    def build(self, input_shape: Any) -> None:
        """`input_shape`: the channels-last feature map's, `(N, h, w, D)`."""
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                "The mix block needs the feature map's channel count; received "
                f"a feature shape {tuple(input_shape)}."
            )

        def init(offset):
            seed = None if self.seed is None else self.seed + offset
            return keras.initializers.RandomNormal(stddev=0.01, seed=seed)

        width = max(int(channels) // self.reduction, 1)
        self.query = keras.layers.Dense(width, kernel_initializer=init(0), name="query")
        self.value = keras.layers.Dense(1, kernel_initializer=init(1), name="value")
        shape = (*tuple(input_shape)[:-1], int(channels) + int(self.lam_channel))
        self.query.build(shape)
        self.value.build(shape)
        self.built = True

    def call(self, features: Any, permutation: Any, lam: Any, size: Any) -> Any:
        """The kept share `(N, H, W)` (float32, with gradient to the block).

        Args:
            features: channels-last `(N, h, w, D)`.
            permutation: int32 `(N,)`.
            lam: float32 `(N,)`.
            size: the images' `(H, W)`.
        """
        features = ops.cast(features, "float32")
        shape = ops.shape(features)
        n, h, w = shape[0], shape[1], shape[2]
        own, partner = features, ops.take(features, permutation, axis=0)
        if self.lam_channel:
            lam = ops.reshape(ops.cast(lam, "float32"), (-1, 1, 1, 1))
            ones = ops.ones((n, h, w, 1), "float32")
            own = ops.concatenate([own, lam * ones], axis=-1)
            partner = ops.concatenate([partner, (1.0 - lam) * ones], axis=-1)
        query = ops.reshape(ops.cast(self.query(own), "float32"), (n, h * w, -1))
        key = ops.reshape(ops.cast(self.query(partner), "float32"), (n, h * w, -1))
        value = ops.reshape(ops.cast(self.value(partner), "float32"), (n, h * w, 1))
        scale = 1.0 / math.sqrt(self.query.units)
        attention = ops.softmax(
            ops.matmul(query, ops.transpose(key, (0, 2, 1))) * scale, axis=-1
        )
        logits = ops.reshape(ops.matmul(attention, value), (n, h, w, 1))
        return 1.0 - ops.sigmoid(self._upsample(logits, (h, w), size)[..., 0])

    def _upsample(self, logits: Any, small: tuple, size: tuple) -> Any:
        if self.upsampling == "bilinear":
            return ops.image.resize(
                logits, size, interpolation="bilinear", data_format="channels_last"
            )
        # Nearest as a gather (pixel i reads cell floor(i * h / H)), whose
        # gradient XLA compiles (resize's nearest-neighbour gradient it
        # does not).
        for axis, (cells, pixels) in enumerate(zip(small, size, strict=True), 1):
            index = ops.floor_divide(ops.arange(pixels, dtype="int32") * cells, pixels)
            logits = ops.take(logits, index, axis=axis)
        return logits

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "reduction": self.reduction,
            "upsampling": self.upsampling,
            "seed": self.seed,
            "lam_channel": self.lam_channel,
        }


@keras.saving.register_keras_serializable(package="keras_sumix")
class AutoMix(BaseMixer, name="automix", true_share=True, needs_features=True):
    """AutoMix: a soft mask per pair, learned by a mix block from the
    feature maps of a momentum (EMA) copy of the network.

    A learned mixer: give it as `mixer=` to `MixupModel` or `SUMixModel`,
    which then (every training step, on every backend):

    1. read the feature map `feature_layer` of the clean batch from the
       momentum encoder (training mode, as the reference's copy: batch norm
       on the batch's statistics; no gradient);
    2. draw two mixes, each with its own pairing and Beta(alpha, alpha) lam,
       and run the mix block on both;
    3. train the mix block with the first: the mixed cross-entropy of the
       momentum encoder and classifier (training mode again, frozen: only
       the block gets this gradient) on its images, weighted `mix_block_weight`, plus
       `mask_loss_weight * mean(max(|mean(mask) - lam| - mask_margin, 0))`;
    4. train the network with the second, whose mask is detached
       (`stop_gradient`): the model's own mixed loss (MCE, or the SUMix
       loss with the clean pass as its raw pass) plus `clean_weight` times
       the clean cross-entropy of that same clean pass;
    5. after the optimizer step, move the momentum encoder towards the
       network's parameters: `ema = m * ema + (1 - m) * online`, `m` from
       `momentum_at(step)` (the copy's batch-norm moving statistics are its
       own, not averaged, and unused).

    The block trains with the network's optimizer (one optimizer, as the
    reference's), on the mix block loss only.

    The mask the network trains with falls back to the constant `lam` when
    `lam < lam_margin` or `lam > 1 - lam_margin`; its lam is the mask's
    mean, the exact share of each image kept (`MixResult.lam`). How this
    differs from the reference (OpenMixup's `AutoMixup`): the
    documentation's Layers page, section AutoMix.

    The features come from the model; called by hand, `mix(images,
    features=...)` mixes with the block as it stands (a channels-last
    feature map `(N, h, w, D)`, channels-first `(N, D, h, w)`). It does not
    run inside a `tf.data` pipeline: it is part of the model.

    Reference: [AutoMix: Unveiling the Power of Mixup for Stronger
    Classifiers](https://arxiv.org/abs/2103.13027).

    Args:
        alpha: Beta concentration. Defaults to 2.0 (the toolbox's CIFAR
            setting).
        feature_layer: what the mix block reads: the name of a backbone
            layer, or a key of a keras-hub backbone's `pyramid_outputs`
            (`"P3"`, `"P4"`, ...). Defaults to `"stage3"`, the third
            stage of this library's CNNs (8x8 for 32x32 images in the
            CIFAR ResNets, as the reference's `mask_layer=2`).
        reduction: the mix block's channel reduction. Defaults to 2.
        upsampling: `"nearest"` (default) or `"bilinear"`.
        lam_channel: whether the block embeds lam as one more channel of
            its features (the reference's `lam_concat`). Defaults to False,
            the reference's CIFAR setting: with the channel, a block whose
            features are still weak can meet the mask loss through the lam
            channel's value weight alone, a uniform mask at the drawn share
            (the documentation's Layers page, section AutoMix).
        mix_block_weight: weight of the mix block's mixed cross-entropy.
            Defaults to 1.0.
        mask_loss_weight: weight of the mask loss. Defaults to 0.1.
        mask_margin: the mask loss's margin. Defaults to 0.1.
        lam_margin: below it (or above `1 - lam_margin`) the network trains
            on the constant mask `lam`. Defaults to 0.08 (the toolbox's
            CIFAR ResNet setting).
        clean_weight: weight of the clean cross-entropy added to the
            network's loss. Defaults to 1.0.
        momentum: the EMA momentum at the start. None (default) ties it to
            the training length: `1 - 1 / (MOMENTUM_TIME_SHARE *
            momentum_steps)`, an EMA time scale of 1 % of the run, capped
            at the reference's 0.999 (reached at 10^5 steps; a 500-step run
            starts at 0.8); 0.999 when `momentum_steps` is None. A copy
            whose time scale is a large share of the run barely leaves its
            initial weights, and its features tell the block little.
        end_momentum: the momentum at the end of `momentum_steps`.
            Defaults to 0.999999.
        momentum_steps: the training length (optimizer steps) of the
            cosine schedule; give it (e.g. `epochs * steps_per_epoch`).
            None (default) keeps the momentum constant.
        momentum_warmup: the fraction of `momentum_steps` the momentum stays
            at `momentum` before the cosine starts. Defaults to 0.1.

    Keyword Args:
        mode: `"elem"` (a lam per sample) or `"batch"` (one, as the
            reference).
        num_classes, seed, data_format, **kwargs: as every mixer.

    Example:

    ```python
    model = keras_sumix.SUMixModel(
        keras_sumix.models.resnet18_cifar(), 100,
        keras_sumix.layers.AutoMix(momentum_steps=epochs * steps_per_epoch),
        variant="recommended",
    )
    model.compile(optimizer="sgd", metrics=["accuracy"])
    model.fit(images, labels, epochs=epochs)  # history: mix_block_loss too
    ```
    """

    def __init__(
        self,
        alpha: float = 2.0,
        feature_layer: str = "stage3",
        reduction: int = 2,
        upsampling: str = "nearest",
        mix_block_weight: float = 1.0,
        mask_loss_weight: float = 0.1,
        mask_margin: float = 0.1,
        lam_margin: float = 0.08,
        clean_weight: float = 1.0,
        momentum: float | None = None,
        end_momentum: float = 0.999999,
        momentum_steps: int | None = None,
        momentum_warmup: float = 0.1,
        lam_channel: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(alpha=alpha, **kwargs)
        if not isinstance(feature_layer, str) or not feature_layer:
            raise TypeError(
                "`feature_layer` must be a layer name or a pyramid key (a "
                f"non-empty str). Received: feature_layer={feature_layer!r}."
            )
        self.feature_layer = feature_layer
        # The block's initial weights follow the layer's seed.
        seed = None if self.seed is None else abs(self.seed) % 2**31
        self.mix_block = MixBlock(
            reduction, upsampling, seed, lam_channel, name="mix_block"
        )

        def weight(name, value):
            return check_number(name, value, low=0.0, include_low=True, high=None)

        self.mix_block_weight = weight("mix_block_weight", mix_block_weight)
        self.mask_loss_weight = weight("mask_loss_weight", mask_loss_weight)
        self.mask_margin = check_number(
            "mask_margin", mask_margin, low=0.0, include_low=True, high=1.0
        )
        self.lam_margin = check_number(
            "lam_margin", lam_margin, low=0.0, include_low=True, high=0.5
        )
        self.clean_weight = weight("clean_weight", clean_weight)
        self.momentum_steps = check_int("momentum_steps", momentum_steps, 1, True)
        self.momentum = None
        if momentum is not None:
            self.momentum = check_number(
                "momentum", momentum, low=0.0, include_low=True, high=1.0
            )
        self.end_momentum = check_number(
            "end_momentum",
            end_momentum,
            low=self.start_momentum,
            include_low=True,
            high=1.0,
        )
        self.momentum_warmup = check_number(
            "momentum_warmup", momentum_warmup, low=0.0, include_low=True, high=1.0
        )

    @property
    def reduction(self) -> int:
        return self.mix_block.reduction

    @property
    def upsampling(self) -> str:
        return self.mix_block.upsampling

    @property
    def lam_channel(self) -> bool:
        return self.mix_block.lam_channel

    @property
    def start_momentum(self) -> float:
        """The momentum at the start: `momentum`, or if None the one tied to
        `momentum_steps` (see the class arguments)."""
        if self.momentum is not None:
            return self.momentum
        if self.momentum_steps is None:
            return REFERENCE_MOMENTUM
        scale = max(MOMENTUM_TIME_SHARE * self.momentum_steps, 1.0)
        return min(1.0 - 1.0 / scale, REFERENCE_MOMENTUM)

    def build_mix_block(self, feature_shape: Any) -> None:
        """Build the mix block for feature maps of `feature_shape` (in this
        layer's `data_format`); the models call it when they are built."""
        shape = tuple(feature_shape)
        if len(shape) != 4:
            raise ValueError(
                f"AutoMix reads a 4-D feature map (`feature_layer="
                f"{self.feature_layer!r}`); it has shape {shape}. Choose a "
                "convolutional stage (or a keras-hub pyramid output)."
            )
        if self.data_format == "channels_first":
            shape = (shape[0], shape[2], shape[3], shape[1])
        if not self.mix_block.built:
            self.mix_block.build(shape)

    # ------------------------------------------------------------------ #
    # Drawing: the block's mask, and the network's
    # ------------------------------------------------------------------ #
    def _draw(
        self,
        images: Any,
        permutation: Any,
        lam: Any,
        seed: Any,
        features: Any = None,
    ) -> dict[str, Any]:
        if self.backend.name != keras.backend.backend():
            raise ValueError(
                "AutoMix is a learned mixer: it runs inside MixupModel or "
                "SUMixModel (`mixer=AutoMix(...)`), not in a tf.data pipeline."
            )
        if features is None:
            raise TypeError(
                "AutoMix.mix needs `features`, the feature map the mix block "
                "reads (`(N, h, w, D)`); MixupModel and SUMixModel pass it."
            )
        features = ops.convert_to_tensor(features)
        if len(features.shape) != 4:
            raise ValueError(
                "`features` must be a 4-D feature map. Received shape "
                f"{tuple(features.shape)}."
            )
        if self.data_format == "channels_first":
            features = ops.transpose(features, (0, 2, 3, 1))
        n_images, n_features = images.shape[0], features.shape[0]
        if None not in (n_images, n_features) and n_images != n_features:
            raise ValueError(
                f"`features` hold {n_features} samples and the images {n_images}."
            )
        if not self.mix_block.built:
            self.mix_block.build(features.shape)
        shape = ops.shape(images)
        lam = ops.broadcast_to(ops.cast(lam, "float32"), (shape[0],))
        block_mask = self.mix_block(
            features, permutation, lam, size=(shape[1], shape[2])
        )
        near_end = (lam < self.lam_margin) | (lam > 1.0 - self.lam_margin)
        mask = ops.where(near_end[:, None, None], lam[:, None, None], block_mask)
        return {"mask": ops.stop_gradient(mask), "block_mask": block_mask}

    def block_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """The draw as the mix block trains on it: its own mask, with
        gradient and without the lam margin (`apply(images,
        block_params(params))`)."""
        return {**params, "mask": params["block_mask"]}

    def mask_loss(self, params: dict[str, Any]) -> Any:
        """`mask_loss_weight * mean_i max(|mean(block mask_i) - lam_i| -
        mask_margin, 0)`: keeps the block's share near the drawn lam
        (per sample; the reference takes one batch mean, for its one lam)."""
        block_mask = params["block_mask"]
        lam = ops.broadcast_to(
            ops.cast(params["lam"], "float32"), (ops.shape(block_mask)[0],)
        )
        gap = ops.abs(ops.mean(block_mask, axis=(1, 2)) - lam) - self.mask_margin
        return self.mask_loss_weight * ops.mean(ops.maximum(gap, 0.0))

    def momentum_at(self, step: Any) -> Any:
        """The EMA momentum after `step` optimizer steps: `start_momentum`
        for the first `momentum_warmup` of `momentum_steps`, then the
        reference's cosine `end - (end - start) * (cos(pi * step / steps) +
        1) / 2`, and `end_momentum` past `momentum_steps` (constant
        `start_momentum` when `momentum_steps` is None).

        Example:

        >>> from keras_sumix.layers import AutoMix
        >>> mixer = AutoMix(momentum=0.99, end_momentum=1.0, momentum_steps=100)
        >>> [round(float(mixer.momentum_at(s)), 4) for s in (0, 9, 50, 100)]
        [0.99, 0.99, 0.995, 1.0]
        >>> round(AutoMix(momentum_steps=500).start_momentum, 4)  # tied
        0.8
        """
        base = self.start_momentum
        if self.momentum_steps is None:
            return ops.convert_to_tensor(base, "float32")
        step = ops.cast(step, "float32")
        total = float(self.momentum_steps)
        cosine = (
            self.end_momentum
            - (self.end_momentum - base)
            * (ops.cos(math.pi * ops.minimum(step, total) / total) + 1.0)
            / 2.0
        )
        return ops.where(step < self.momentum_warmup * total, base, cosine)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "feature_layer": self.feature_layer,
                "reduction": self.reduction,
                "upsampling": self.upsampling,
                "mix_block_weight": self.mix_block_weight,
                "mask_loss_weight": self.mask_loss_weight,
                "mask_margin": self.mask_margin,
                "lam_margin": self.lam_margin,
                "clean_weight": self.clean_weight,
                "momentum": self.momentum,
                "end_momentum": self.end_momentum,
                "momentum_steps": self.momentum_steps,
                "momentum_warmup": self.momentum_warmup,
                "lam_channel": self.lam_channel,
            }
        )
        return config
