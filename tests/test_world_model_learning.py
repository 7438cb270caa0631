"""The world model learns Pin Pad's dynamics from random-policy experience, on a CPU, in about a minute."""

import numpy as np
import pytest
import torch

from tests.rollouts import record, sample_batch
from world_models.config import sized
from world_models.world_model import WorldModel

UPDATES = 1600


@pytest.mark.slow  # about 3 minutes on 2 cores: in the learning guard (make test-guard), not the default suite
def test_open_loop_prediction_beats_copying_the_last_observation():
    torch.manual_seed(0)
    stream = record("forethought/PinPadVector4-v0", 20_000, seed=0)
    rng = np.random.default_rng(0)
    # a small model: debug depth, but latents and widths large enough to learn within the budget
    config = sized("debug", units=128, hidden=128, deter=256, stoch=16, classes=16, lr=1e-3)
    model = WorldModel({"vector": stream["vector"].shape[1:]}, stream["action"].shape[1], config)
    first = model.report(sample_batch(stream, 64, 32, np.random.default_rng(1)), context=8)
    for _ in range(UPDATES):
        metrics = model.update(sample_batch(stream, 16, 32, rng))
    assert all(np.isfinite(v) for v in metrics.values())
    held_out = record("forethought/PinPadVector4-v0", 2_000, seed=1)  # another seed's experience
    report = model.report(sample_batch(held_out, 64, 32, np.random.default_rng(2)), context=8)
    model_error = float(report["openloop/vector_mse"].mean())
    copy_error = float(report["openloop/vector_copy_mse"].mean())
    assert model_error < 0.6 * copy_error, (model_error, copy_error)
    assert model_error < 0.5 * float(first["openloop/vector_mse"].mean())
    # the prediction stays useful far into the open-loop part, not just for the first steps
    assert float(report["openloop/vector_mse"][-8:].mean()) < float(report["openloop/vector_copy_mse"][-8:].mean())
