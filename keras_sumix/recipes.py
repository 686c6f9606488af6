"""The paper's training recipes (`docs/data.md`, "Recipes"), as
presets of `keras_sumix.training.TrainConfig`."""

from __future__ import annotations

from typing import Any

# Beta concentration the paper uses per mixer for CNNs.
PAPER_ALPHA = {
    "mixup": 1.0,
    "cutmix": 0.2,
    "fmix": 0.2,
    "saliencymix": 0.2,
    "resizemix": 1.0,
}

# The SUMix regulariser weight gamma the paper reports per recipe and mixer
# (appendix A.1, Tables 7-9); recipes and mixers not listed use 0.5.
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
}


def paper_gamma(recipe: str, mixer: str, default: float = 0.5) -> float:
    """The paper's gamma for a recipe and mixer (`PAPER_GAMMA`), or `default`.

    Args:
        recipe: a key of `RECIPES`.
        mixer: a mixer name (`"cutmix"`, `"fmix"`, ...).
        default: returned when the paper gives no value.

    Returns:
        The regulariser weight.
    """
    return PAPER_GAMMA.get(recipe, {}).get(str(mixer).lower(), default)


_CIFAR = {
    "dataset": "cifar100",
    "pipeline": "cifar",
    "learning_rate": 0.1,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "batch_size": 100,
    "epochs": 800,
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
