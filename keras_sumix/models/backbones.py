"""The networks of the SUMix paper as backend-agnostic Keras 3 functional models.

Every builder returns a `keras.Model` from images to POOLED features
(global average pooling at the end, output shape `(N, feature_dim)`); wrap one
with `classifier` to get logits.

| builder              | stem            | feature_dim | trainable params |
| -------------------- | --------------- | ----------- | ---------------- |
| `resnet18_cifar`     | 3x3 s1, no pool | 512         | 11,168,832       |
| `resnext50_cifar`    | 3x3 s1, no pool | 2048        | 22,972,224       |
| `wide_resnet28_8`    | 3x3 s1          | 512         | 23,357,792       |
| `resnet18`           | 7x7 s2 + pool   | 512         | 11,176,512       |
| `resnext50_32x4d`    | 7x7 s2 + pool   | 2048        | 22,979,904       |

The ResNet/ResNeXt layer structure follows torchvision (`bias=False` convs,
BatchNorm `epsilon=1e-5`, Keras `momentum=0.9` i.e. PyTorch `momentum=0.1`,
stride on the 3x3 conv of a bottleneck, symmetric zero padding exactly as
PyTorch pads), and layers are named after the torchvision modules with `.`
replaced by `_` (`layer1.0.conv1` -> `layer1_0_conv1`,
`layer2.0.downsample.0` -> `layer2_0_downsample_0`), so converted torchvision
weights can be assigned layer by layer. The CIFAR variants only swap the stem
(as kuangliu/pytorch-cifar and OpenMixup's `ResNet_CIFAR`/`ResNeXt_CIFAR` do).
`wide_resnet28_8` follows OpenMixup's `WideResNet` (the paper's code base).

Keras counts a BatchNormalization layer's moving mean and variance among
`count_params()` (as non-trainable weights) while PyTorch keeps them as
buffers: `model.count_params()` = trainable params + 2 x (BN channels), and
the trainable count equals the PyTorch parameter count.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Callable, Sequence
from typing import Any

import keras
from keras import layers

from keras_sumix.models.pooling import TokenPooling, token_pooling_of

__all__ = [
    "classifier",
    "resnet18",
    "resnet18_cifar",
    "resnext50_32x4d",
    "resnext50_cifar",
    "wide_resnet28_8",
]

WeightsArg = str | os.PathLike | None
ShapeArg = Sequence[int | None] | None

_WEIGHTS_SUFFIX = ".weights.h5"


# ---------------------------------------------------------------------------
# Argument validation
# ---------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_data_format() -> str:
    data_format = keras.config.image_data_format()
    if data_format not in ("channels_last", "channels_first"):  # pragma: no cover
        raise ValueError(
            "keras.config.image_data_format() must be 'channels_last' or "
            f"'channels_first'. Received: {data_format!r}."
        )
    return data_format


def _check_input_shape(
    input_shape: ShapeArg,
    default_size: int,
    data_format: str,
    channels: tuple[int, ...] = (3,),
) -> tuple[int | None, int | None, int]:
    """Return the validated `input_shape` (the default when None).

    Args:
        input_shape: the builder's `input_shape` argument, or None.
        default_size: the height and width of the default shape.
        data_format: `"channels_last"` or `"channels_first"`.
        channels: the channel counts the network takes (its first entry is
            the default's). A shape whose other end holds an accepted count
            (`(3, 32, 32)` for a channels-last network) is named as being in
            the wrong layout.

    Raises:
        ValueError: `input_shape` is not three entries with positive (or
            None) height and width and an accepted channel count.
    """
    channels_first = data_format == "channels_first"
    if input_shape is None:
        size = (default_size, default_size)
        return (channels[0], *size) if channels_first else (*size, channels[0])
    *others, last = sorted(channels)
    count = f"{', '.join(map(str, others))} or {last}" if others else str(last)
    c = str(last) if not others else "C"
    expected = (
        f"({c}, height, width) since keras.config.image_data_format() is "
        "'channels_first'"
        if channels_first
        else f"(height, width, {c})"
    )
    if others:
        expected += f", C = {count}"
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Sequence):
        raise ValueError(
            f"`input_shape` must be a tuple {expected}. "
            f"Received: input_shape={input_shape!r}."
        )
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(
            f"`input_shape` must have 3 entries {expected} (no batch dimension). "
            f"Received: input_shape={input_shape!r}."
        )
    channel_index = 0 if channels_first else 2
    for i, dim in enumerate(shape):
        spatial = i != channel_index
        if spatial and dim is None:
            continue  # variable image size
        if not _is_int(dim) or dim <= 0:
            what = "positive ints (or None for a variable size)" if spatial else count
            raise ValueError(
                f"`input_shape` must be {expected} with height and width "
                f"positive ints (or None). Entry {i} is {dim!r}, expected {what}. "
                f"Received: input_shape={input_shape!r}."
            )
    if shape[channel_index] not in channels:
        other = shape[2 - channel_index]
        given, wanted = ("last", "first") if channels_first else ("first", "last")
        hint = (
            f" It looks like a channels-{given} shape: give the channels "
            f"{wanted}, or set keras.config.set_image_data_format("
            f"'channels_{given}') before building."
            if other in channels
            else ""
        )
        raise ValueError(
            f"`input_shape` must be {expected}: this network takes images with "
            f"{count} channels.{hint} Received: input_shape={input_shape!r}."
        )
    return tuple(None if d is None else int(d) for d in shape)  # type: ignore[return-value]


def _check_weights(weights: WeightsArg) -> str | None:
    """Return the local weights path to load (None for random init)."""
    if weights is None:
        return None
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(
            "`weights` must be None or the path to a local "
            f"'{_WEIGHTS_SUFFIX}' file. Received: weights={weights!r} of type "
            f"{type(weights).__name__}."
        )
    path = os.fspath(weights)
    if not isinstance(path, str) or not path.endswith(_WEIGHTS_SUFFIX):
        raise ValueError(
            "`weights` must be None (random initialization) or the path to a "
            f"local '{_WEIGHTS_SUFFIX}' file. Received: weights={weights!r}. "
            "keras_sumix cannot download pretrained weights (such as "
            "'imagenet'): convert or download them yourself, save them with "
            f"`model.save_weights('name{_WEIGHTS_SUFFIX}')` and pass that file "
            "path, or use a keras_hub preset backbone instead "
            "(`keras_sumix.models.from_hub('resnet_18_imagenet')`, or a local "
            "preset directory; `--weights hub:<preset>` on the command line)."
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"`weights` file not found: {path!r} does not exist or is not a file."
        )
    return path


def _check_positive_int(name: str, value: Any) -> int:
    if not _is_int(value) or value < 1:
        raise ValueError(
            f"`{name}` must be a positive int. Received: {name}={value!r}."
        )
    return int(value)


def _check_rate(name: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0.0 <= value < 1.0
    ):
        raise ValueError(
            f"`{name}` must be a float in [0, 1). Received: {name}={value!r}."
        )
    return float(value)


# ---------------------------------------------------------------------------
# Shared building blocks
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Ops:
    """Layer factory shared by every architecture in this module.

    It fixes the conventions that make a Keras network interchangeable with
    its PyTorch reference: conv padding, conv bias, BatchNorm epsilon/momentum
    (Keras `momentum` = 1 - PyTorch `momentum`), the activation and the
    initializer (He normal with fan-out, torchvision's and mmcv's default).
    """

    data_format: str
    bn_epsilon: float = 1e-5
    bn_momentum: float = 0.9
    conv_bias: bool = False
    negative_slope: float = 0.0  # 0 for ReLU, > 0 for LeakyReLU

    @property
    def channel_axis(self) -> int:
        return 1 if self.data_format == "channels_first" else -1

    def pad(self, x: Any, amount: int, name: str) -> Any:
        return layers.ZeroPadding2D(amount, data_format=self.data_format, name=name)(x)

    def conv(
        self,
        x: Any,
        filters: int,
        kernel_size: int,
        name: str,
        strides: int = 1,
        groups: int = 1,
    ) -> Any:
        """`kernel_size`x`kernel_size` conv padded by `kernel_size // 2` on every
        side, as PyTorch's `Conv2d(..., padding=kernel_size // 2)`.

        Keras' `padding="same"` pads asymmetrically (bottom/right only) for
        even inputs with stride 2, so strided convs get an explicit
        `ZeroPadding2D` and `padding="valid"`.
        """
        amount = kernel_size // 2
        if amount == 0:
            padding = "valid"
        elif strides == 1:
            padding = "same"  # identical to symmetric padding for odd kernels
        else:
            x = self.pad(x, amount, name=f"{name}_pad")
            padding = "valid"
        return layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            groups=groups,
            use_bias=self.conv_bias,
            data_format=self.data_format,
            kernel_initializer=keras.initializers.VarianceScaling(
                scale=2.0, mode="fan_out", distribution="untruncated_normal"
            ),
            bias_initializer="zeros",
            name=name,
        )(x)

    def bn(self, x: Any, name: str) -> Any:
        return layers.BatchNormalization(
            axis=self.channel_axis,
            momentum=self.bn_momentum,
            epsilon=self.bn_epsilon,
            name=name,
        )(x)

    def act(self, x: Any, name: str) -> Any:
        if self.negative_slope:
            return layers.LeakyReLU(negative_slope=self.negative_slope, name=name)(x)
        return layers.ReLU(name=name)(x)

    def add(self, tensors: list[Any], name: str) -> Any:
        return layers.Add(name=name)(tensors)

    def stage(self, x: Any, index: int) -> Any:
        """Name the output of stage `index` (0-based) `stage{index + 1}`
        (a weightless `Identity`): the feature map AutoMix's
        `feature_layer` reads."""
        return layers.Identity(name=f"stage{index + 1}")(x)

    def global_pool(self, x: Any, name: str = "avgpool") -> Any:
        return layers.GlobalAveragePooling2D(data_format=self.data_format, name=name)(x)

    def channels(self, x: Any) -> int:
        return int(x.shape[self.channel_axis])


# A residual block: (ops, x, width, stride, name) -> y.
_Block = Callable[[_Ops, Any, int, int, str], Any]


def _basic_block(ops: _Ops, x: Any, planes: int, stride: int, name: str) -> Any:
    """torchvision `BasicBlock` (expansion 1): two 3x3 convs + shortcut."""
    shortcut = x
    if stride != 1 or ops.channels(x) != planes:
        shortcut = ops.conv(x, planes, 1, strides=stride, name=f"{name}_downsample_0")
        shortcut = ops.bn(shortcut, name=f"{name}_downsample_1")
    y = ops.conv(x, planes, 3, strides=stride, name=f"{name}_conv1")
    y = ops.bn(y, name=f"{name}_bn1")
    y = ops.act(y, name=f"{name}_relu1")
    y = ops.conv(y, planes, 3, name=f"{name}_conv2")
    y = ops.bn(y, name=f"{name}_bn2")
    y = ops.add([y, shortcut], name=f"{name}_add")
    return ops.act(y, name=f"{name}_relu2")


def _bottleneck_block(groups: int, width_per_group: int) -> _Block:
    """torchvision `Bottleneck` (expansion 4, ResNet v1.5: the stride sits on
    the 3x3 conv); grouped 3x3 conv of width
    `planes * width_per_group / 64 * groups` for ResNeXt."""

    def block(ops: _Ops, x: Any, planes: int, stride: int, name: str) -> Any:
        width = int(planes * (width_per_group / 64.0)) * groups
        out_channels = planes * 4
        shortcut = x
        if stride != 1 or ops.channels(x) != out_channels:
            shortcut = ops.conv(
                x, out_channels, 1, strides=stride, name=f"{name}_downsample_0"
            )
            shortcut = ops.bn(shortcut, name=f"{name}_downsample_1")
        y = ops.conv(x, width, 1, name=f"{name}_conv1")
        y = ops.bn(y, name=f"{name}_bn1")
        y = ops.act(y, name=f"{name}_relu1")
        y = ops.conv(y, width, 3, strides=stride, groups=groups, name=f"{name}_conv2")
        y = ops.bn(y, name=f"{name}_bn2")
        y = ops.act(y, name=f"{name}_relu2")
        y = ops.conv(y, out_channels, 1, name=f"{name}_conv3")
        y = ops.bn(y, name=f"{name}_bn3")
        y = ops.add([y, shortcut], name=f"{name}_add")
        return ops.act(y, name=f"{name}_relu3")

    return block


def _finish(
    inputs: Any, features: Any, name: str, weights_path: str | None
) -> keras.Model:
    model = keras.Model(inputs, features, name=name)
    if weights_path is not None:
        model.load_weights(weights_path)
    return model


def _resnet(
    *,
    input_shape: ShapeArg,
    weights: WeightsArg,
    name: str,
    block: _Block,
    depths: Sequence[int],
    imagenet_stem: bool,
    default_size: int,
) -> keras.Model:
    """Generic torchvision-style ResNet/ResNeXt feature extractor."""
    data_format = _check_data_format()
    shape = _check_input_shape(input_shape, default_size, data_format)
    weights_path = _check_weights(weights)
    ops = _Ops(data_format=data_format)

    inputs = keras.Input(shape=shape, name="images")
    if imagenet_stem:
        # torchvision: Conv2d(3, 64, 7, stride=2, padding=3) ... MaxPool2d(3, 2, 1).
        x = ops.conv(inputs, 64, 7, strides=2, name="conv1")
        x = ops.bn(x, name="bn1")
        x = ops.act(x, name="relu")
        # Zero padding equals PyTorch's -inf padding here: inputs are >= 0.
        x = ops.pad(x, 1, name="maxpool_pad")
        x = layers.MaxPooling2D(
            3, strides=2, padding="valid", data_format=data_format, name="maxpool"
        )(x)
    else:
        # CIFAR stem: Conv2d(3, 64, 3, stride=1, padding=1), no max-pool.
        x = ops.conv(inputs, 64, 3, name="conv1")
        x = ops.bn(x, name="bn1")
        x = ops.act(x, name="relu")
    for stage, (planes, depth) in enumerate(
        zip((64, 128, 256, 512), depths, strict=True)
    ):
        for i in range(depth):
            stride = 2 if stage > 0 and i == 0 else 1
            x = block(ops, x, planes, stride, f"layer{stage + 1}_{i}")
        x = ops.stage(x, stage)
    return _finish(inputs, ops.global_pool(x), name, weights_path)


def _wide_basic_block(dropout: float, activate_before_residual: bool) -> _Block:
    """Pre-activation wide basic block of OpenMixup's `WideResNet`:
    BN-act-conv3x3(stride)-BN-act-[dropout]-conv3x3, plus an identity shortcut
    or a 1x1 conv shortcut when the width or resolution changes. The 1x1
    shortcut takes the activated input with `activate_before_residual` (the
    first stage, whose input is the bare stem conv) and the raw input
    otherwise."""

    def block(ops: _Ops, x: Any, planes: int, stride: int, name: str) -> Any:
        equal_in_out = ops.channels(x) == planes and stride == 1
        pre = ops.bn(x, name=f"{name}_bn1")
        pre = ops.act(pre, name=f"{name}_relu1")
        if equal_in_out:
            shortcut = x
        else:
            source = pre if activate_before_residual else x
            shortcut = ops.conv(
                source, planes, 1, strides=stride, name=f"{name}_convShortcut"
            )
        y = ops.conv(pre, planes, 3, strides=stride, name=f"{name}_conv1")
        y = ops.bn(y, name=f"{name}_bn2")
        y = ops.act(y, name=f"{name}_relu2")
        if dropout > 0.0:
            y = layers.Dropout(dropout, name=f"{name}_dropout")(y)
        y = ops.conv(y, planes, 3, name=f"{name}_conv2")
        return ops.add([y, shortcut], name=f"{name}_add")

    return block


# ---------------------------------------------------------------------------
# Public builders
# ---------------------------------------------------------------------------


def resnet18_cifar(
    input_shape: ShapeArg = None,
    weights: WeightsArg = None,
    name: str = "resnet18_cifar",
) -> keras.Model:
    """ResNet-18 for 32x32 images (CIFAR stem), images -> 512 pooled features.

    Stem: 3x3 conv (stride 1, 64 channels), BN, ReLU, no max-pool; then
    BasicBlocks `[2, 2, 2, 2]` of widths 64-128-256-512 and global average
    pooling, as kuangliu/pytorch-cifar and OpenMixup's `ResNet_CIFAR`.
    11,168,832 trainable parameters (11,220,132 with a 100-class head).

    Args:
        input_shape: `(height, width, 3)` (`(3, height, width)` when
            `keras.config.image_data_format()` is `"channels_first"`); height
            and width may be None. None means 32x32 RGB.
        weights: None for random initialization, or the path to a local
            `.weights.h5` file saved from this architecture.
        name: the model name.

    Returns:
        A `keras.Model` mapping images to features of shape `(N, 512)`.

    Example:

    >>> backbone = resnet18_cifar()
    >>> backbone.output_shape
    (None, 512)
    """
    return _resnet(
        input_shape=input_shape,
        weights=weights,
        name=name,
        block=_basic_block,
        depths=(2, 2, 2, 2),
        imagenet_stem=False,
        default_size=32,
    )


def resnext50_cifar(
    input_shape: ShapeArg = None,
    weights: WeightsArg = None,
    name: str = "resnext50_cifar",
) -> keras.Model:
    """ResNeXt-50 (32x4d) for 32x32 images (CIFAR stem), images -> 2048 pooled
    features.

    Stem: 3x3 conv (stride 1, 64 channels), BN, ReLU, no max-pool; then
    bottleneck blocks `[3, 4, 6, 3]` with cardinality 32 and base width 4
    (grouped 3x3 convs via `Conv2D(groups=32)`), as OpenMixup's
    `ResNeXt_CIFAR`. 22,972,224 trainable parameters.

    Args:
        input_shape: `(height, width, 3)` (`(3, height, width)` for
            channels_first); height and width may be None. None means 32x32.
        weights: None for random initialization, or the path to a local
            `.weights.h5` file saved from this architecture.
        name: the model name.

    Returns:
        A `keras.Model` mapping images to features of shape `(N, 2048)`.

    Example:

    >>> backbone = resnext50_cifar()
    >>> backbone.output_shape
    (None, 2048)
    """
    return _resnet(
        input_shape=input_shape,
        weights=weights,
        name=name,
        block=_bottleneck_block(groups=32, width_per_group=4),
        depths=(3, 4, 6, 3),
        imagenet_stem=False,
        default_size=32,
    )


def wide_resnet28_8(
    input_shape: ShapeArg = None,
    weights: WeightsArg = None,
    dropout: float = 0.0,
    name: str = "wide_resnet28_8",
) -> keras.Model:
    """WRN-28-8 for 32x32 images, images -> 512 pooled features.

    OpenMixup's `WideResNet(first_stride=1, depth=28, widen_factor=8)`, the
    network of the paper's CIFAR-100 benchmark: a 3x3 conv to 16 channels,
    three stages of 4 pre-activation wide basic blocks of widths 128, 256, 512
    (strides 1, 2, 2), a final BN + activation and global average pooling.
    As in that code base, convs have biases, activations are
    LeakyReLU(0.1) and BatchNorm uses `epsilon=1e-3` and PyTorch momentum
    0.001 (Keras `momentum=0.999`). 23,357,792 trainable parameters
    (23,409,092 with a 100-class head).

    Args:
        input_shape: `(height, width, 3)` (`(3, height, width)` for
            channels_first); height and width may be None. None means 32x32.
        weights: None for random initialization, or the path to a local
            `.weights.h5` file saved from this architecture.
        dropout: dropout rate between the two convs of each block, in [0, 1).
        name: the model name.

    Returns:
        A `keras.Model` mapping images to features of shape `(N, 512)`.

    Example:

    >>> backbone = wide_resnet28_8(dropout=0.3)
    >>> backbone.output_shape
    (None, 512)
    """
    data_format = _check_data_format()
    shape = _check_input_shape(input_shape, 32, data_format)
    weights_path = _check_weights(weights)
    rate = _check_rate("dropout", dropout)
    ops = _Ops(
        data_format=data_format,
        bn_epsilon=1e-3,
        bn_momentum=0.999,
        conv_bias=True,
        negative_slope=0.1,
    )

    inputs = keras.Input(shape=shape, name="images")
    x = ops.conv(inputs, 16, 3, name="conv1")
    depth, widen_factor = 28, 8
    blocks_per_stage = (depth - 4) // 6
    for stage, (width, stride) in enumerate(
        zip(
            (16 * widen_factor, 32 * widen_factor, 64 * widen_factor),
            (1, 2, 2),
            strict=True,
        )
    ):
        block = _wide_basic_block(rate, activate_before_residual=stage == 0)
        for i in range(blocks_per_stage):
            x = block(
                ops, x, width, stride if i == 0 else 1, f"block{stage + 1}_layer_{i}"
            )
        x = ops.stage(x, stage)
    x = ops.bn(x, name="bn1")
    x = ops.act(x, name="relu")
    return _finish(inputs, ops.global_pool(x), name, weights_path)


def resnet18(
    input_shape: ShapeArg = None,
    weights: WeightsArg = None,
    name: str = "resnet18",
) -> keras.Model:
    """torchvision's ResNet-18 (ImageNet stem), images -> 512 pooled features.

    Stem: 7x7 conv stride 2 (padding 3), BN, ReLU, 3x3 max-pool stride 2
    (padding 1); BasicBlocks `[2, 2, 2, 2]`; global average pooling. The
    trainable parameters (11,176,512) equal torchvision's `resnet18` minus its
    1000-class `fc` (513,000): 11,689,512 in all.

    Args:
        input_shape: `(height, width, 3)` (`(3, height, width)` for
            channels_first); height and width may be None. None means 224x224.
        weights: None for random initialization, or the path to a local
            `.weights.h5` file (e.g. torchvision weights converted with the
            layer names of this model and saved with `save_weights`).
        name: the model name.

    Returns:
        A `keras.Model` mapping images to features of shape `(N, 512)`.

    Example:

    >>> backbone = resnet18(input_shape=(224, 224, 3))
    >>> backbone.get_layer("layer4_1_conv2").kernel.shape
    (3, 3, 512, 512)
    """
    return _resnet(
        input_shape=input_shape,
        weights=weights,
        name=name,
        block=_basic_block,
        depths=(2, 2, 2, 2),
        imagenet_stem=True,
        default_size=224,
    )


def resnext50_32x4d(
    input_shape: ShapeArg = None,
    weights: WeightsArg = None,
    name: str = "resnext50_32x4d",
) -> keras.Model:
    """torchvision's ResNeXt-50 32x4d (ImageNet stem), images -> 2048 pooled
    features.

    Stem as `resnet18`; bottleneck blocks `[3, 4, 6, 3]`, cardinality 32,
    base width 4. The trainable parameters (22,979,904) equal torchvision's
    `resnext50_32x4d` minus its 1000-class `fc` (2,049,000): 25,028,904 in
    all.

    Args:
        input_shape: `(height, width, 3)` (`(3, height, width)` for
            channels_first); height and width may be None. None means 224x224.
        weights: None for random initialization, or the path to a local
            `.weights.h5` file saved from this architecture.
        name: the model name.

    Returns:
        A `keras.Model` mapping images to features of shape `(N, 2048)`.

    Example:

    >>> model = classifier(resnext50_32x4d(), num_classes=1000)
    >>> model.output_shape
    (None, 1000)
    """
    return _resnet(
        input_shape=input_shape,
        weights=weights,
        name=name,
        block=_bottleneck_block(groups=32, width_per_group=4),
        depths=(3, 4, 6, 3),
        imagenet_stem=True,
        default_size=224,
    )


def classifier(
    backbone: keras.Model, num_classes: int, name: str | None = None
) -> keras.Model:
    """Put a linear classification head on a backbone: images -> logits.

    The backbone is nested as one layer (so its weights are shared with the
    returned model) and followed by `Dense(num_classes)` named `"fc"`, with no
    activation. A backbone that outputs a 4-D feature map (e.g. a keras-hub
    ResNet) is global-average-pooled first; one that outputs `(N, L, D)`
    tokens is pooled as `MixupModel` / `SUMixModel` pool them: the class
    token of a keras-hub ViT/DeiT backbone, the mean of the tokens otherwise
    (`keras_sumix.models.pooling`).

    Args:
        backbone: a `keras.Model` with one image input and one output:
            pooled features `(N, D)`, tokens `(N, L, D)` or a feature map
            `(N, H, W, D)` (`(N, D, H, W)` for channels_first).
        num_classes: number of classes, a positive int.
        name: the model name; defaults to `"<backbone name>_classifier"`.

    Returns:
        A `keras.Model` mapping images to logits of shape `(N, num_classes)`.

    Example:

    >>> model = classifier(resnet18_cifar(), num_classes=100)
    >>> model.count_params() - model.get_layer("resnet18_cifar").count_params()
    51300
    """
    if not isinstance(backbone, keras.Model):
        raise TypeError(
            "`backbone` must be a keras.Model. "
            f"Received: backbone={backbone!r} of type {type(backbone).__name__}."
        )
    num_classes = _check_positive_int("num_classes", num_classes)
    try:
        model_inputs = backbone.inputs
        model_outputs = backbone.outputs
    except (AttributeError, ValueError):
        model_inputs = model_outputs = None
    if not model_inputs or not model_outputs:
        raise ValueError(
            "`backbone` must be a built functional model with known inputs and "
            f"outputs. Received: backbone={backbone.name!r} without them."
        )
    if len(model_inputs) != 1 or len(model_outputs) != 1:
        raise ValueError(
            "`backbone` must have exactly one input and one output. Received: "
            f"backbone={backbone.name!r} with {len(model_inputs)} inputs and "
            f"{len(model_outputs)} outputs."
        )
    spec = model_inputs[0]
    inputs = keras.Input(shape=tuple(spec.shape[1:]), dtype=spec.dtype, name="images")
    features = backbone(inputs)
    rank = len(features.shape)
    if rank == 4:
        features = layers.GlobalAveragePooling2D(
            data_format=keras.config.image_data_format(), name="avgpool"
        )(features)
    elif rank == 3:
        features = TokenPooling(token_pooling_of(backbone), name="token_pooling")(
            features
        )
    elif rank != 2:
        raise ValueError(
            "`backbone` must output pooled features (N, D), tokens (N, L, D) or "
            f"a 4-D feature map. Received: backbone={backbone.name!r} with output "
            f"shape {tuple(features.shape)}."
        )
    logits = layers.Dense(num_classes, name="fc")(features)
    return keras.Model(inputs, logits, name=name or f"{backbone.name}_classifier")
