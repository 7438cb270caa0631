"""What each RLlib process holds: env runners act with an inference-only agent and fixed torch threads."""

import numpy as np
import pytest
import torch

from forethought.config import load_config
from forethought.threads import usable_cores
from forethought.train import algorithm_config, register_env


@pytest.mark.parametrize("preset", ["keydoor_vector", "keydoor_vector_director", "keydoor_vector_planner"])
def test_env_runners_hold_only_what_acting_needs_and_get_the_learners_weights(ray_session, tmp_path, preset):
    config = load_config([preset, "debug"], [f"run.dir={tmp_path}", "scale.num_cpus=1", "train.prefill=32",
                                             "train.rollout_length=32", "scale.env_runner_threads=1",
                                             "scale.learner_threads=2"])
    register_env()

    def runner_view(env_runner):  # runs in the env runner's process (a nested function travels by value)
        agent = env_runner.module.agent
        return torch.get_num_threads(), {k: v.cpu().numpy() for k, v in agent.state_dict().items()}

    algo = algorithm_config(config).build_algo()
    try:
        for _ in range(3):  # past the prefill: the learner trains and syncs its weights to the env runner
            algo.train()
        assert algo.counters["updates"] > 0
        learner = algo.learner_agent()
        (threads, runner_state), = algo.env_runner_group.foreach_env_runner(runner_view, local_env_runner=False)
        learner_threads = torch.get_num_threads()
    finally:
        algo.stop()
    assert (threads, learner_threads) == (1, 2)
    full = learner.state_dict()
    dropped = learner.training_only_modules()
    critics = {"actor_critic.critic", "manager.critic", "worker.critic"}
    assert "world_model.decoder" in dropped and critics & set(dropped)
    # the env runner has none of the critics, heads or decoder, and every weight it has is the learner's
    assert not [k for k in runner_state if any(k.startswith(part + ".") for part in dropped)]
    acting = {k for k in full if not any(k.startswith(part + ".") for part in dropped)}
    assert set(runner_state) == acting
    assert len(acting) < len(full)
    for key in acting:
        np.testing.assert_array_equal(runner_state[key], full[key].cpu().numpy(), err_msg=key)


def test_train_compile_compiles_the_learners_networks_and_training_goes_on(ray_session, tmp_path):
    config = load_config(["keydoor_vector", "debug"], [f"run.dir={tmp_path}", "scale.num_env_runners=0",
                                                       "train.prefill=32", "train.rollout_length=32",
                                                       "train.compile=true", "agent.horizon=2"])  # compiles sooner
    register_env()
    algo = algorithm_config(config).build_algo()
    try:
        for _ in range(3):
            result = algo.train()
        agent = algo.learner_agent()
    finally:
        algo.stop()
    assert algo.counters["updates"] > 0
    assert np.isfinite(result["learners"]["default_policy"]["world_model/loss"])
    world_model, actor_critic = agent.world_model, agent.actor_critic
    compiled = [world_model.encoder, world_model.decoder, actor_critic.actor, actor_critic.critic]
    assert all(module._compiled_call_impl is not None for module in compiled)
    assert not any(name.startswith("_orig_mod") or "._orig_mod" in name for name in agent.state_dict())


def test_train_precision_bfloat16_runs_the_learners_products_in_bfloat16_and_keeps_float32_weights(ray_session,
                                                                                                    tmp_path):
    config = load_config(["keydoor_vector", "debug"], [f"run.dir={tmp_path}", "scale.num_env_runners=0",
                                                       "train.prefill=32", "train.rollout_length=32",
                                                       "train.precision=bfloat16"])
    register_env()
    algo = algorithm_config(config).build_algo()
    seen: set[torch.dtype] = set()
    try:
        agent = algo.learner_agent()
        agent.world_model.reward_head.register_forward_hook(lambda module, args, out: seen.add(out.dtype))
        agent.actor_critic.critic.register_forward_hook(lambda module, args, out: seen.add(out.dtype))
        for _ in range(3):
            result = algo.train()
    finally:
        algo.stop()
    assert algo.counters["updates"] > 0
    metrics = result["learners"]["default_policy"]
    assert np.isfinite(metrics["world_model/loss"]) and np.isfinite(metrics["actor_critic/critic_loss"])
    assert seen == {torch.bfloat16}  # the heads' products ran under autocast
    assert {p.dtype for p in agent.parameters()} == {torch.float32}
    assert {v.dtype for state in agent.world_model.optimizer.state.values() for v in state.values()
            if v.is_floating_point()} == {torch.float32}


@pytest.mark.parametrize("beside", [True, False])
def test_env_runners_sample_the_next_fragment_while_the_learner_trains_and_the_ratio_is_held(
        ray_session, tmp_path, beside):
    config = load_config(["keydoor_vector", "debug"], [f"run.dir={tmp_path}", "scale.num_cpus=1", "train.prefill=32",
                                                       "train.rollout_length=32",
                                                       f"train.sample_beside_learning={str(beside).lower()}",
                                                       "scale.learner_threads=auto"])
    register_env()
    algo = algorithm_config(config).build_algo()
    try:
        in_flight = []
        for _ in range(6):
            result = algo.train()
            counters = dict(algo.counters)
            in_flight.append(algo._in_flight)
            # every round ends with the updates its env steps are owed: replayed / env steps is the train ratio
            assert counters["replayed_steps"] == counters["env_steps"] * 8 - (counters["env_steps"] * 8) % 64
    finally:
        algo.stop()
    assert counters["updates"] > 0 and counters["env_steps"] == 6 * 32
    # with scale.learner_threads=auto the learner tunes its count: the count each update ran with is a metric
    assert 1 <= result["learners"]["default_policy"]["perf/learner_threads"] <= usable_cores()
    # between rounds, the next fragment is already being sampled (after the random-action prefill)
    assert in_flight == ([0] + [32] * 5 if beside else [0] * 6)
