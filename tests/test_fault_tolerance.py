"""An env runner that dies is restarted by RLlib and training goes on."""

import time

from forethought.config import load_config
from forethought.train import algorithm_config, register_env


def test_killed_env_runner_is_replaced_and_training_continues(ray_session, tmp_path):
    config = load_config(["keydoor_vector", "debug"], [f"run.dir={tmp_path}"])
    register_env()
    algo = algorithm_config(config).build_algo()
    try:
        algo.train()
        before = algo.counters["env_steps"]
        group = algo.env_runner_group
        (runner_id,) = group.healthy_worker_ids()
        ray_session.kill(group._worker_manager._actors[runner_id], no_restart=False)
        # the next rounds notice the dead runner, RLlib restarts it, and sampling resumes
        deadline = time.time() + 120
        while algo.counters["env_steps"] < before + 3 * 32 and time.time() < deadline:
            algo.train()
        assert algo.counters["env_steps"] >= before + 3 * 32
        assert group.num_healthy_remote_workers() == 1
        assert group.num_remote_worker_restarts() >= 1
    finally:
        algo.stop()
