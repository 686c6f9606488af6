"""The named pipelines' defaults: one frozen `PipelineSpec` each.

`PIPELINES` are the names `make_pipeline` takes (and
`keras_sumix.training.TrainConfig.pipeline`); a training recipe of
`keras_sumix.recipes.RECIPES` names one of them as its `"pipeline"`.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

from keras_sumix._validation import check_choice
from keras_sumix.data.transforms import NORMALIZATIONS, PadCropFlip, ResizedCropFlip

__all__ = [
    "PIPELINES",
    "PIPELINE_SPECS",
    "PipelineSpec",
    "pipeline_normalization",
    "pipeline_spec",
]


@dataclasses.dataclass(frozen=True)
class PipelineSpec:
    """The defaults of a named pipeline (see `make_pipeline`).

    Args:
        name: the pipeline's name.
        augmentation: its per-image augmentation with the default options
            (`PadCropFlip` or `ResizedCropFlip`).
        normalization: a key of `NORMALIZATIONS` (`"cifar"`, `"imagenet"`,
            `"unit"`).
        batch_size: the default batch size.
        shuffle_buffer: the default shuffle buffer, in decoded images.

    Example:

    >>> pipeline_spec("fine_grained").augmentation.image_size
    224
    """

    name: str
    augmentation: PadCropFlip | ResizedCropFlip
    normalization: str
    batch_size: int
    shuffle_buffer: int

    def __post_init__(self) -> None:
        check_choice("normalization", self.normalization, tuple(NORMALIZATIONS))

    def options(self) -> tuple[str, ...]:
        """The names of the augmentation options `make_pipeline` accepts
        for this pipeline (besides `image_size`, which every one takes)."""
        fields = dataclasses.fields(self.augmentation)
        return tuple(f.name for f in fields if f.name != "image_size")


PIPELINE_SPECS: MappingProxyType[str, PipelineSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            PipelineSpec(
                "cifar",
                PadCropFlip(padding=4, padding_mode="reflect", image_size=None),
                normalization="cifar",
                batch_size=100,
                shuffle_buffer=50_000,
            ),
            PipelineSpec(
                "tiny_imagenet",
                ResizedCropFlip(
                    image_size=64,
                    resize_size=64,
                    crop_scale=(0.08, 1.0),
                    interpolation="bicubic",
                ),
                normalization="imagenet",
                batch_size=100,
                shuffle_buffer=10_000,
            ),
            PipelineSpec(
                "fine_grained",
                ResizedCropFlip(
                    image_size=224,
                    resize_size=256,
                    crop_scale=(0.5, 1.0),
                    interpolation="bilinear",
                ),
                normalization="imagenet",
                batch_size=16,
                shuffle_buffer=1_000,
            ),
            PipelineSpec(
                "cifar_vit",
                ResizedCropFlip(
                    image_size=224,
                    resize_size=224,
                    crop_scale=(0.8, 1.0),
                    interpolation="bicubic",
                ),
                normalization="cifar",
                batch_size=100,
                shuffle_buffer=50_000,
            ),
        )
    }
)
#: The names of the pipelines, in the order of the documentation.
PIPELINES: tuple[str, ...] = tuple(PIPELINE_SPECS)


def pipeline_spec(pipeline: str) -> PipelineSpec:
    """The defaults of a named pipeline.

    Args:
        pipeline: one of `PIPELINES`.

    Returns:
        Its `PipelineSpec`.

    Raises:
        ValueError: an unknown name.

    Example:

    >>> pipeline_spec("cifar").batch_size
    100
    """
    return PIPELINE_SPECS[check_choice("pipeline", pipeline, PIPELINES)]


def pipeline_normalization(
    pipeline: str,
) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The per-channel `(mean, std)` a named pipeline normalises its images
    with by default, e.g. to undo or reapply it around a model.

    Args:
        pipeline: one of `PIPELINES`.

    Returns:
        `(mean, std)`, two tuples of 3 floats; None if the pipeline leaves
        images in [0, 1].

    Raises:
        ValueError: an unknown name.

    Example:

    >>> pipeline_normalization("cifar")
    ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.201))
    """
    return NORMALIZATIONS[pipeline_spec(pipeline).normalization]
