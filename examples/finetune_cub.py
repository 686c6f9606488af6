"""Fine-tune an ImageNet ResNet-18 / ResNeXt-50 on CUB-200-2011 (the paper's
recipe: SGD lr 0.001, momentum 0.9, wd 5e-4, batch 16, 200 epochs, 224 px).

    python examples/finetune_cub.py --data-dir ~/data --weights resnet18.weights.h5
    python examples/finetune_cub.py --recipe cub-rx50 --weights rx50.weights.h5

Data: the official `CUB_200_2011/` folder (images.txt, image_class_labels.txt,
train_test_split.txt, classes.txt, images/) under `--data-dir`, from
https://www.vision.caltech.edu/datasets/cub_200_2011/ ; without it the TFDS
`caltech_birds2011` builder is used. Weights: a local Keras `.weights.h5` of
the backbone (converted ImageNet weights), or `--recipe cub-r18-hub`:
keras-hub's `resnet_18_imagenet` preset (needs `pip install
'keras-sumix[hub]'` and a download from Kaggle; `--weights hub:DIR` for a
preset directory saved with `backbone.save_to_preset(DIR)`, offline).
keras-hub has no ResNeXt-50 preset. `--weights none` starts from random
weights and works offline. `--smoke`: a few images at 32 px.

    python examples/finetune_cub.py --recipe cub-r18-hub --data-dir ~/data
"""

from __future__ import annotations

from _recipe_cli import run

SMOKE = {"limit": 8, "epochs": 1, "batch_size": 2, "image_size": 32}


def main(argv=None):
    return run(__doc__, ["cub-r18", "cub-r18-hub", "cub-rx50"], argv, SMOKE)


if __name__ == "__main__":
    main()
