"""Datasets and input pipelines.

- The embedded occluded-objects set (`occluded_objects`, no download) and
  its fine-grained companion, 64 classes that differ in small details
  (`fine_grained_objects`, no download).
- scikit-learn's bundled handwritten digits (`load_digits_split`, no
  download; needs scikit-learn).
- CIFAR-100 and CUB-200-2011 through TensorFlow Datasets (`load_cifar100`,
  `load_caltech_birds2011`; the `data` extra).
- Official on-disk layouts (`load_fgvc_aircraft`, `load_cub200_2011`,
  `load_tiny_imagenet`, `load_cifar100_c`).
- A folder of your own images, one subfolder per class
  (`load_image_folder`).
- `tf.data` pipelines of the paper's recipes: `make_pipeline` with one of
  the named `PIPELINES` (and the shortcuts `cifar_pipeline`,
  `tiny_imagenet_pipeline`, `fine_grained_pipeline`); each one's defaults
  are a `PipelineSpec` (`pipeline_spec`, `pipeline_normalization`).

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
    OCCLUDED_CLASS_NAMES,
    OCCLUDED_NUM_CLASSES,
    OccludedObjects,
    occluded_objects,
    true_lam,
)
from keras_sumix.data.pipeline_specs import (
    PIPELINES,
    PipelineSpec,
    pipeline_normalization,
    pipeline_spec,
)
from keras_sumix.data.pipelines import (
    cifar_pipeline,
    fine_grained_pipeline,
    make_pipeline,
    tiny_imagenet_pipeline,
)
from keras_sumix.data.tfds import load_caltech_birds2011, load_cifar100
from keras_sumix.data.transforms import (
    CIFAR_MEAN,
    CIFAR_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
)

__all__ = [
    "CIFAR100_C_CORRUPTIONS",
    "CIFAR_MEAN",
    "CIFAR_STD",
    "DIGITS_NUM_CLASSES",
    "FINE_GRAINED_CLASS_NAMES",
    "FINE_GRAINED_NUM_CLASSES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "OCCLUDED_CLASS_NAMES",
    "OCCLUDED_NUM_CLASSES",
    "PIPELINES",
    "DigitsSplit",
    "OccludedObjects",
    "PipelineSpec",
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
    "pipeline_normalization",
    "pipeline_spec",
    "tiny_imagenet_pipeline",
    "true_lam",
]
