"""Two data-parallel learners (CPU, gloo) stay identical because they step with averaged gradients."""

import pytest

from forethought.config import load_config
from forethought.train import algorithm_config, register_env


def _checksums(learner):
    """One sum per optimised part (world model, actors, critics, goal autoencoder), then the statistics."""
    agent = learner.module["default_policy"].unwrapped().agent
    sums = [float(sum(p.double().sum() for p in params)) for _, params in agent.optimizers().values()]
    stats = [float(v) for ac in agent.actor_critics().values() for v in (ac.retnorm.low, ac.retnorm.high)]
    if hasattr(agent, "explore_scale"):
        stats += [float(agent.explore_scale), float(agent.state_mean.sum())]
    return {"params": sums, "stats": stats}


def _unsync(learner):
    agent = learner.module["default_policy"].unwrapped().agent
    agent.set_sync(None, None)


@pytest.mark.parametrize("preset", ["keydoor_vector", "keydoor_vector_director"])
def test_two_learners_stay_in_sync_and_would_drift_without_averaging(ray_session, tmp_path, preset):
    config = load_config([preset, "debug"],
                         [f"run.dir={tmp_path}", "scale.num_learners=2", "scale.num_env_runners=0"])
    register_env()
    algo = algorithm_config(config).build_algo()
    try:
        while algo.counters["updates"] < 16:
            algo.train()
        first, second = (r.get() for r in algo.learner_group.foreach_learner(_checksums))
        assert first == second
        # the whole agent, fetched from the remote learners for the report and the evaluation
        agent = algo.learner_agent()
        sums = [float(sum(p.double().sum() for p in params)) for _, params in agent.optimizers().values()]
        assert sums == first["params"]
        # the control: without averaging, the learners' different shards pull them apart
        algo.learner_group.foreach_learner(_unsync)
        updates = algo.counters["updates"]
        while algo.counters["updates"] < updates + 8:
            algo.train()
        first, second = (r.get() for r in algo.learner_group.foreach_learner(_checksums))
        assert all(a != b for a, b in zip(first["params"], second["params"], strict=True))  # every part drifts
    finally:
        algo.stop()
