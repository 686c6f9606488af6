"""Data-parallel training matches single-device training.

For the same global batch, seed and initial weights, one step on two
virtual CPU devices (JAX `DataParallel`, TensorFlow `MirroredStrategy`)
gives the same loss, logged terms and updated weights as one step on one
device: mixing pairs samples across the global batch and SUMix's batch
statistics (`semantic_scale=None` is the global batch size) are global.
Each backend runs `distributed_worker.py` in a fresh process, because the
device count must be fixed before the backend starts. Keras's torch trainer
is single-device, so there is nothing to test there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

BACKEND = keras.backend.backend()
WORKER = Path(__file__).with_name("distributed_worker.py")
# BatchNormalization is global under JAX (one program) and synchronised under
# TensorFlow; each backend runs one case with it.
# Each case compiles two steps (one and two devices), so the cases do not
# repeat each other: the paper's SUMix (every option at its default) is the
# ManifoldMix case's loss, and AutoMix's block runs in the batch-norm case.
CASES = [
    # MixupModel's step is SUMixModel's mixed pass. Under TensorFlow its case
    # is TransMix's (MirroredStrategy traces each replica in a thread, and
    # TransMix records the attention per thread); JAX runs one program.
    "mce_transmix:plain" if BACKEND == "tensorflow" else "mce:plain",
    "sumix_distance_per_sample:bn",
    "sumix_puzzlemix:plain",
    # The momentum copy's batch norm on the batch's statistics: global too.
    "sumix_automix:bn",
    # ManifoldMix: the pairing global at a hidden stage; the staged pass's
    # state is per thread (each replica is traced in a thread of its own).
    # With DecoupleMix's regulariser (its term is logged and compared).
    "sumix_manifoldmix:plain",
]

pytestmark = pytest.mark.skipif(
    BACKEND == "torch", reason="Keras's torch trainer is single-device"
)


@pytest.fixture(scope="module")
def comparisons():
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="3")
    # Two virtual devices, beside the lane's own XLA flags (Makefile).
    flags = [
        os.environ.get("XLA_FLAGS", ""),
        "--xla_force_host_platform_device_count=2",
    ]
    env["XLA_FLAGS"] = " ".join(flags).strip()
    done = subprocess.run(
        [sys.executable, str(WORKER), *CASES],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", CASES)
def test_one_step_on_two_devices_matches_one_device(comparisons, case):
    result = comparisons[case]
    assert result["replicas"] == [1, 2]  # really ran data-parallel
    single, multi = result["single"], result["multi"]
    assert single.keys() == multi.keys()
    for name, value in single.items():
        np.testing.assert_allclose(multi[name], value, rtol=1e-5, err_msg=name)
    # The step moved the weights, and identically on both setups.
    assert result["max_weight_update"] > 1e-2
    assert result["max_weight_diff"] < 1e-5
