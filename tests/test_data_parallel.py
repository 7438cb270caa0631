"""Two data-parallel learners (CPU, gloo) stay identical because they step with averaged gradients."""

from forethought.config import load_config
from forethought.train import algorithm_config, register_env


def _checksums(learner):
    agent = learner.module["default_policy"].unwrapped().agent
    parts = (agent.world_model, agent.actor_critic.actor, agent.actor_critic.critic)
    return [float(sum(p.double().sum() for p in part.parameters())) for part in parts] + [
        float(agent.actor_critic.retnorm.low), float(agent.actor_critic.retnorm.high)]


def _unsync(learner):
    agent = learner.module["default_policy"].unwrapped().agent
    agent.world_model.grad_sync = agent.actor_critic.grad_sync = agent.actor_critic.stat_sync = None


def test_two_learners_stay_in_sync_and_would_drift_without_averaging(ray_session, tmp_path):
    config = load_config(["keydoor_vector", "debug"],
                         [f"run.dir={tmp_path}", "scale.num_learners=2", "scale.num_env_runners=0"])
    register_env()
    algo = algorithm_config(config).build_algo()
    try:
        while algo.counters["updates"] < 16:
            algo.train()
        first, second = (r.get() for r in algo.learner_group.foreach_learner(_checksums))
        assert first == second
        # the control: without averaging, the learners' different shards pull them apart
        algo.learner_group.foreach_learner(_unsync)
        updates = algo.counters["updates"]
        while algo.counters["updates"] < updates + 8:
            algo.train()
        first, second = (r.get() for r in algo.learner_group.foreach_learner(_checksums))
        assert first[:3] != second[:3]
    finally:
        algo.stop()
