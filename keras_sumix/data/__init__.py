"""Datasets and input pipelines.

- The embedded occluded-objects set (`occluded_objects`, no download) and
  its fine-grained companion, 64 classes that differ in small details
  (`fine_grained_objects`, no download).
- scikit-learn's bundled handwritten digits (`load_digits_split`, no
  download; the `study` extra).
- CIFAR-100 and CUB-200-2011 through TensorFlow Datasets (`load_cifar100`,
  `load_caltech_birds2011`; the `data` extra).
- Official on-disk layouts (`load_fgvc_aircraft`, `load_cub200_2011`,
  `load_tiny_imagenet`, `load_cifar100_c`).
- A folder of your own images, one subfolder per class
  (`load_image_folder`).
- `tf.data` pipelines of the paper's recipes (`make_pipeline` and the
  per-recipe `cifar_pipeline`, `tiny_imagenet_pipeline`,
  `fine_grained_pipeline`).

Nothing here downloads data unless asked (`download=True`); TensorFlow and
TensorFlow Datasets are imported only when a loader or pipeline is called.
"""

from keras_sumix.data.digits import DIGITS_NUM_CLASSES, DigitsSplit, load_digits_split
from keras_sumix.data.directories import (
    CIFAR100_C_CORRUPTIONS,
    load_cifar100_c,
    load_cub200_2011,
    load_fgvc_aircraft,
    load_image_folder,
    load_tiny_imagenet,
)
from keras_sumix.data.fine_grained import (
    FINE_GRAINED_CLASS_NAMES,
    FINE_GRAINED_NUM_CLASSES,
    fine_grained_objects,
)
from keras_sumix.data.occluded import (
    CLASS_NAMES,
    NUM_CLASSES,
    OccludedObjects,
    occluded_objects,
    true_lam,
)
from keras_sumix.data.pipelines import (
    CIFAR_MEAN,
    CIFAR_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    RECIPES,
    cifar_pipeline,
    fine_grained_pipeline,
    make_pipeline,
    tiny_imagenet_pipeline,
)
from keras_sumix.data.tfds import load_caltech_birds2011, load_cifar100

__all__ = [
    "CIFAR100_C_CORRUPTIONS",
    "CIFAR_MEAN",
    "CIFAR_STD",
    "CLASS_NAMES",
    "DIGITS_NUM_CLASSES",
    "FINE_GRAINED_CLASS_NAMES",
    "FINE_GRAINED_NUM_CLASSES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "NUM_CLASSES",
    "RECIPES",
    "DigitsSplit",
    "OccludedObjects",
    "cifar_pipeline",
    "fine_grained_objects",
    "fine_grained_pipeline",
    "load_caltech_birds2011",
    "load_cifar100",
    "load_cifar100_c",
    "load_cub200_2011",
    "load_digits_split",
    "load_fgvc_aircraft",
    "load_image_folder",
    "load_tiny_imagenet",
    "make_pipeline",
    "occluded_objects",
    "tiny_imagenet_pipeline",
    "true_lam",
]
