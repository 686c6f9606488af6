"""Datasets: the embedded occluded-objects set (no download)."""

from keras_sumix.data.occluded import (
    CLASS_NAMES,
    NUM_CLASSES,
    OccludedObjects,
    occluded_objects,
    true_lam,
)

__all__ = [
    "CLASS_NAMES",
    "NUM_CLASSES",
    "OccludedObjects",
    "occluded_objects",
    "true_lam",
]
