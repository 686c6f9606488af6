"""ManifoldMix (Verma et al., ICML 2019): MixUp of hidden feature maps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from keras_sumix.layers.mix_up import MixUp

#: The stage name of the images themselves (stage 0).
INPUT = "input"
#: How many stages the default draws from: the input and the backbone's
#: first two stages (OpenMixup's `manifoldmix=dict(layer=(0, 3))`).
DEFAULT_NUM_STAGES = 3


def _check_stages(stages: Any) -> tuple[str, ...] | None:
    if stages is None:
        return None
    if isinstance(stages, str) or not isinstance(stages, Sequence):
        raise TypeError(
            "`stages` must be None (the reference's stages) or a list of stage "
            f'names, e.g. ["{INPUT}", "stage1", "stage2"]. Received: '
            f"stages={stages!r}."
        )
    names = tuple(stages)
    if (
        not names
        or not all(isinstance(n, str) and n for n in names)
        or len(set(names)) != len(names)
    ):
        raise ValueError(
            "`stages` must be a non-empty list of distinct names: "
            f'"{INPUT}" (the images) and layer names or keras-hub pyramid keys '
            f"of the backbone. Received: stages={stages!r}."
        )
    if INPUT in names[1:]:
        raise ValueError(
            f'`stages` lists "{INPUT}" (the images) after a hidden stage; list the '
            f"stages in the order the network computes them. Received: "
            f"stages={stages!r}."
        )
    return names


@keras.saving.register_keras_serializable(package="keras_sumix")
class ManifoldMix(MixUp, name="manifoldmix", mixes_features=True):
    """ManifoldMix: MixUp of the feature maps at a stage drawn for each batch.

    Each training step draws a stage (the images count as stage
    `"input"`), a pairing and `lam ~ Beta(alpha, alpha)` per sample; the
    model runs its backbone up to that stage, blends the feature maps
    `lam * h + (1 - lam) * h[permutation]`, runs the rest of the network on
    the blend, and mixes the labels with the same `lam` and pairing. Only a
    model can do that: give the layer to `keras_sumix.MixupModel` or
    `keras_sumix.SUMixModel` as `mixer=`. Called on images alone (`mix`, a
    `tf.data` map, the layer call) it raises a ValueError saying so.

    The stages are the outputs of named layers of a functional backbone
    (`stage1`, `stage2`, ... in `keras_sumix.models`' CNNs) or keys of a
    keras-hub backbone's `pyramid_outputs` (`"P2"`, `"P3"`, ... of its
    ResNets); `keras_sumix.models.stages` splits the backbone there.

    Differences from the reference (OpenMixup's `ResNet_Mix`): lam is drawn
    per sample (`mode="elem"`, as every mixer here; `mode="batch"` draws one
    per batch, as the reference does), and the pairing never pairs a sample
    with itself (a derangement, as every mixer here; the reference shuffles
    with `randperm`). The stages and alpha are the reference's CIFAR
    defaults.

    Reference: [Manifold Mixup: Better Representations by Interpolating
    Hidden States](https://arxiv.org/abs/1806.05236).

    Args:
        alpha: Beta concentration. Defaults to 2.0 (OpenMixup's CIFAR-100
            ResNet configs).
        stages: the stages drawn from, uniformly, in the order the network
            computes them: `"input"` (the images) and layer names or
            keras-hub pyramid keys. None (default): the reference's, the
            input and the backbone's first two stages (`"stage1"`,
            `"stage2"` of the library's CNNs; the first two pyramid outputs
            of a keras-hub backbone).
        mode: `"elem"` (one lam per sample) or `"batch"` (one per batch).
        num_classes: number of classes, required for integer labels.
        seed: integer seed.
        data_format: `"channels_last"` or `"channels_first"`.
        **kwargs: base layer keyword arguments.

    Example:

    ```python
    import keras_sumix

    data = keras_sumix.data.occluded_objects(32, image_size=16, seed=0)
    model = keras_sumix.MixupModel(
        keras_sumix.models.small_cnn((16, 16, 3), widths=(8, 16)),
        10,
        keras_sumix.layers.ManifoldMix(seed=0),
    )
    model.compile(optimizer="adam")
    model.fit(data.images, data.labels, batch_size=16, epochs=1, verbose=0)
    ```
    """

    def __init__(
        self,
        alpha: float = 2.0,
        stages: Sequence[str] | None = None,
        mode: str = "elem",
        num_classes: int | None = None,
        seed: int | None = None,
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            alpha=alpha,
            mode=mode,
            num_classes=num_classes,
            seed=seed,
            data_format=data_format,
            **kwargs,
        )
        self.stages = _check_stages(stages)

    @property
    def num_stages(self) -> int:
        """How many stages a draw chooses from."""
        return DEFAULT_NUM_STAGES if self.stages is None else len(self.stages)

    def _draw(
        self, images: Any, permutation: Any, lam: Any, seed: Any, **context: Any
    ) -> dict[str, Any]:
        """`"stage"`: int32 scalar, the index (into the model's stages) of
        the stage this batch mixes at, uniform."""
        ops = self.backend
        stage = ops.random.randint((1,), 0, self.num_stages, dtype="int32", seed=seed)
        return {"stage": ops.numpy.reshape(stage, ())}

    def blend(self, features: Any, params: dict[str, Any]) -> Any:
        """Blend a feature map with a drawn mix (`draw`):
        `lam * h + (1 - lam) * h[permutation]` per sample.

        Args:
            features: the batch's feature map at the drawn stage, batch
                first, of any rank and layout (the blend is the same at
                every position).
            params: what `draw` returned for the batch.

        Returns:
            The blended feature map, in the dtype of `features`.
        """
        ops = self.backend
        features = ops.convert_to_tensor(features)
        partner = ops.numpy.take(features, params["permutation"], axis=0)
        return self._apply(features, partner, params)[0]

    def _refusal(self) -> ValueError:
        return ValueError(
            "ManifoldMix mixes the hidden feature maps inside the network, at "
            "a stage it draws, so it cannot mix a batch of images on its own "
            "(a `tf.data` map, `mix`, or a layer call). Give it to a model as "
            "`mixer=`: `keras_sumix.MixupModel(backbone, num_classes, "
            "ManifoldMix())` or `keras_sumix.SUMixModel(backbone, num_classes, "
            "ManifoldMix())`."
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise self._refusal()

    def _mix(self, images: Any, masks: Any = None, **context: Any):
        raise self._refusal()

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["stages"] = None if self.stages is None else list(self.stages)
        return config
