"""The paper's training recipes (the documentation's Data page, section
Recipes), as presets of `keras_sumix.training.TrainConfig`."""

from __future__ import annotations

from typing import Any

from keras_sumix.options import DEFAULTS

# Beta concentration the paper uses per mixer for CNNs.
PAPER_ALPHA = {
    "mixup": 1.0,
    "cutmix": 0.2,
    "fmix": 0.2,
    "saliencymix": 0.2,
    "resizemix": 1.0,
    # Section 5.2: PuzzleMix (and AutoMix) mix with alpha 1.0 for CNNs.
    "puzzlemix": 1.0,
    "automix": 1.0,
    # Not in the paper: OpenMixup's CIFAR-100 ResNet configs (alpha 2).
    "manifoldmix": 2.0,
}
# ... and for the vision transformers (DeiT-S, Swin-T; section 5 of the
# paper): CutMix 2.0 and FMix 1.0, SaliencyMix and ResizeMix as for CNNs.
# The paper gives no MixUp value for them; 0.8 is the reference configs'
# (OpenMixup's `deit_s_mixup_a0_8`).
PAPER_ALPHA_VIT = {
    "mixup": 0.8,
    "cutmix": 2.0,
    "fmix": 1.0,
    "saliencymix": 0.2,
    "resizemix": 1.0,
    # Not in the paper (Table 4 is CNNs only): the CNN value.
    "puzzlemix": 1.0,
    "automix": 1.0,
    "manifoldmix": 2.0,
}

# The SUMix regulariser weight gamma the paper reports per recipe and mixer
# (appendix A.1, Tables 7-9); recipes and mixers not listed use the default.
PAPER_GAMMA: dict[str, dict[str, float]] = {
    "cifar100-r18": {"cutmix": 0.5, "fmix": 1.0, "saliencymix": 0.5, "resizemix": 0.2},
    "cifar100-rx50": {
        "cutmix": 0.5,
        "fmix": 1.0,
        "saliencymix": 1.0,
        "resizemix": 0.5,
    },
    "cifar100-wrn28-8": {
        "cutmix": 0.5,
        "fmix": 0.5,
        "saliencymix": 0.5,
        "resizemix": 0.5,
    },
    "cub-r18": {"cutmix": 1.0, "fmix": 0.5, "saliencymix": 0.5, "resizemix": 0.5},
    "cub-rx50": {"cutmix": 0.5, "fmix": 0.1, "saliencymix": 0.2, "resizemix": 0.5},
    "aircraft-r18": {
        "cutmix": 1.0,
        "fmix": 0.5,
        "saliencymix": 1.0,
        "resizemix": 0.5,
    },
    "aircraft-rx50": {
        "cutmix": 0.5,
        "fmix": 0.5,
        "saliencymix": 0.5,
        "resizemix": 0.5,
    },
    "cifar100-deit-s": {
        "cutmix": 0.5,
        "fmix": 0.5,
        "saliencymix": 0.5,
        "resizemix": 0.5,
    },
    "cifar100-swin-t": {
        "cutmix": 0.5,
        "fmix": 0.5,
        "saliencymix": 0.5,
        "resizemix": 0.5,
    },
}
# The keras-hub fine-tuning recipes are the paper's ResNet-18 rows.
PAPER_GAMMA["cub-r18-hub"] = PAPER_GAMMA["cub-r18"]
PAPER_GAMMA["aircraft-r18-hub"] = PAPER_GAMMA["aircraft-r18"]


def paper_gamma(recipe: str, mixer: str, default: float = DEFAULTS["gamma"]) -> float:
    """The paper's gamma for a recipe and mixer (`PAPER_GAMMA`), or `default`.

    Args:
        recipe: a key of `RECIPES`.
        mixer: a mixer name (`"cutmix"`, `"fmix"`, ...).
        default: returned when the paper gives no value.

    Returns:
        The regulariser weight.
    """
    return PAPER_GAMMA.get(recipe, {}).get(str(mixer).lower(), default)


def paper_alpha(mixer: str, transformer: bool = False) -> float:
    """The paper's Beta concentration for a mixer, for CNNs (`PAPER_ALPHA`)
    or vision transformers (`PAPER_ALPHA_VIT`).

    Args:
        mixer: a mixer name (`"cutmix"`, `"fmix"`, ...).
        transformer: the ViT values (DeiT-S, Swin-T) instead of the CNN ones.

    Returns:
        The mixing `alpha`.

    Raises:
        ValueError: an unknown mixer.

    Example:

    >>> paper_alpha("cutmix"), paper_alpha("cutmix", transformer=True)
    (0.2, 2.0)
    """
    table = PAPER_ALPHA_VIT if transformer else PAPER_ALPHA
    key = str(mixer).lower()
    if key not in table:
        raise ValueError(f"Unknown mixer {mixer!r}. Expected one of {sorted(table)}.")
    return table[key]


_CIFAR = {
    "dataset": "cifar100",
    "pipeline": "cifar",
    "learning_rate": 0.1,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "batch_size": 100,
    "epochs": 800,
}
# DeiT-S / Swin-T on CIFAR-100 at 224 px (paper section 5.3: AdamW, weight
# decay 0.05, 200 epochs, batch 100, RandAugment); the 20-epoch linear
# warm-up and the gradient clipping at norm 5 are the reference configs'.
_CIFAR_VIT = {
    "dataset": "cifar100",
    "pipeline": "cifar_vit",
    "image_size": 224,
    "rand_augment": True,
    "optimizer": "adamw",
    "weight_decay": 0.05,
    "batch_size": 100,
    "epochs": 200,
    "warmup_epochs": 20,
    "clipnorm": 5.0,
}
_FINE_GRAINED = {
    "pipeline": "fine_grained",
    "learning_rate": 0.001,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "batch_size": 16,
    "epochs": 200,
    "image_size": 224,
}

#: The paper's training recipes, by name: `TrainConfig` fields, each naming a
#: dataset, a backbone and one of `keras_sumix.data.PIPELINES` (its
#: augmentation).
RECIPES: dict[str, dict[str, Any]] = {
    "cifar100-r18": {**_CIFAR, "backbone": "resnet18_cifar"},
    "cifar100-rx50": {**_CIFAR, "backbone": "resnext50_cifar"},
    "cifar100-wrn28-8": {
        **_CIFAR,
        "backbone": "wide_resnet28_8",
        "learning_rate": 0.03,
        "weight_decay": 1e-3,
        "epochs": 400,
    },
    "tiny-imagenet-r18": {
        **_CIFAR,
        "dataset": "tiny_imagenet",
        "pipeline": "tiny_imagenet",
        "backbone": "resnet18_cifar",
        "learning_rate": 0.2,
        "epochs": 400,
        "image_size": 64,
    },
    "cub-r18": {**_FINE_GRAINED, "dataset": "cub", "backbone": "resnet18"},
    "cub-rx50": {**_FINE_GRAINED, "dataset": "cub", "backbone": "resnext50_32x4d"},
    "aircraft-r18": {**_FINE_GRAINED, "dataset": "aircraft", "backbone": "resnet18"},
    "aircraft-rx50": {
        **_FINE_GRAINED,
        "dataset": "aircraft",
        "backbone": "resnext50_32x4d",
    },
    "cifar100-deit-s": {**_CIFAR_VIT, "backbone": "deit_small", "learning_rate": 1e-3},
    "cifar100-swin-t": {**_CIFAR_VIT, "backbone": "swin_tiny", "learning_rate": 5e-4},
    # Table 2's ResNet-18 rows from keras-hub's ImageNet ResNet-18 (a Kaggle
    # download; `weights="hub:DIR"` for a local preset directory). keras-hub
    # has no ResNeXt-50 preset: the rx50 recipes take a local .weights.h5.
    "cub-r18-hub": {
        **_FINE_GRAINED,
        "dataset": "cub",
        "backbone": "resnet18",
        "weights": "hub:resnet_18_imagenet",
    },
    "aircraft-r18-hub": {
        **_FINE_GRAINED,
        "dataset": "aircraft",
        "backbone": "resnet18",
        "weights": "hub:resnet_18_imagenet",
    },
    # CPU-sized: the embedded dataset and a small CNN (minutes).
    "occluded-small": {
        "dataset": "occluded",
        "pipeline": "cifar",
        "backbone": "small_cnn",
        "learning_rate": 0.05,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "batch_size": 64,
        "epochs": 15,
    },
}
