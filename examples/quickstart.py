"""Quickstart: SUMix vs the mixed cross-entropy baseline on the embedded data.

    python examples/quickstart.py            # a few minutes on a CPU
    python examples/quickstart.py --smoke    # seconds (what the tests run)

Backend: set KERAS_BACKEND (tensorflow, jax or torch).
"""

from __future__ import annotations

import argparse

import keras

import keras_sumix
from keras_sumix.data import OCCLUDED_NUM_CLASSES, occluded_objects


def main(argv=None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny, seconds")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args(argv)
    n_train, n_test, epochs = (64, 32, 1) if args.smoke else (4000, 1000, args.epochs)

    train = occluded_objects(n_train, seed=0)
    test = occluded_objects(n_test, seed=1)
    results = {}
    for name, cls in [
        ("MCE", keras_sumix.MixupModel),
        ("SUMix", keras_sumix.SUMixModel),
    ]:
        keras.utils.set_random_seed(0)
        model = cls(
            keras_sumix.models.small_cnn(),
            OCCLUDED_NUM_CLASSES,
            keras_sumix.layers.CutMix(alpha=0.2),
        )
        model.compile(
            optimizer=keras.optimizers.SGD(0.05, momentum=0.9), metrics=["accuracy"]
        )
        model.fit(train.images, train.labels, batch_size=64, epochs=epochs, verbose=2)
        logs = model.evaluate(test.images, test.labels, verbose=0, return_dict=True)
        results[name] = logs["accuracy"]
        print(f"{name}: test top-1 {100 * logs['accuracy']:.1f}%")
    return results


if __name__ == "__main__":
    main()
