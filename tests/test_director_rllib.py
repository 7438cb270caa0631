"""The hierarchical agent inside RLlib: its option state (goal, steps left) travels through state in and out."""

import numpy as np

from forethought.config import load_config
from forethought.train import algorithm_config, register_env


def test_option_state_is_carried_between_env_steps_and_reset_with_episodes(ray_session, tmp_path):
    config = load_config(["keydoor_vector_director", "debug"],
                         [f"run.dir={tmp_path}", "scale.num_env_runners=0", "agent.hierarchy.every=4",
                          "agent.horizon=8", "env.time_limit=10"])
    register_env()
    algo = algorithm_config(config).build_algo()
    try:
        episodes = algo.env_runner.sample(num_timesteps=16, random_actions=False)
    finally:
        algo.stop()
    first, second = episodes[0], episodes[1]
    assert len(first) == 10 and first.is_truncated and first.id_ != second.id_
    states = first.get_extra_model_outputs("state_out")
    # the env runner fed each step's state out back in: the option counts down and a new one starts every 4
    assert states["steps_left"].tolist() == [3, 2, 1, 0, 3, 2, 1, 0, 3, 2]
    goals = states["goal"]
    assert all(np.array_equal(goals[t], goals[t // 4 * 4]) for t in range(10))
    assert not np.array_equal(goals[0], goals[4]) and not np.array_equal(goals[4], goals[8])
    # the next episode starts from RLlib's initial state: a fresh option, although the last had 2 steps left
    assert second.get_extra_model_outputs("state_out")["steps_left"].tolist()[:4] == [3, 2, 1, 0]
