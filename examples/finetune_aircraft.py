"""Fine-tune an ImageNet ResNet-18 / ResNeXt-50 on FGVC-Aircraft (100
variants; the paper's recipe: SGD lr 0.001, momentum 0.9, wd 5e-4, batch 16,
200 epochs, 224 px).

    python examples/finetune_aircraft.py --data-dir ~/data --weights r18.weights.h5

Data: the official `fgvc-aircraft-2013b/` folder under `--data-dir`, from
https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/ (the 20-pixel banner at
the bottom of each image is cropped).
`--recipe aircraft-r18-hub` starts from keras-hub's `resnet_18_imagenet`
preset (needs `pip install 'keras-sumix[hub]'` and a download from Kaggle;
`--weights hub:DIR` for a preset directory saved with
`backbone.save_to_preset(DIR)`, offline). keras-hub has no ResNeXt-50
preset. `--weights none` starts from random weights and works offline.
`--smoke`: a few images at 32 px.
"""

from __future__ import annotations

from _recipe_cli import run

SMOKE = {"limit": 4, "epochs": 1, "batch_size": 2, "image_size": 32}


def main(argv=None):
    return run(
        __doc__, ["aircraft-r18", "aircraft-r18-hub", "aircraft-rx50"], argv, SMOKE
    )


if __name__ == "__main__":
    main()
