"""The grid-behaviour probe reports where a policy spends its steps and what the agent's model reads there."""

import pytest
import torch

from agents import build_agent
from agents.dreamer import DreamerConfig
from benchmarks.grid_behaviour import main, play
from envs import make
from forethought.config import load_config, save_config
from forethought.spaces import action_spec, obs_shapes
from world_models.config import sized


def test_probe_reports_actions_cells_and_model_readings_by_pad():
    env = make("forethought/PinPadVector3-v0", seed=0)
    torch.manual_seed(0)
    agent = build_agent(obs_shapes(env.observation_space), action_spec(env.action_space), DreamerConfig(sized("debug")))
    results = {mode: play(agent, env, mode, episodes=2, seed=3, max_steps=60) for mode in ("random", "greedy")}
    env.close()
    for r in results.values():
        assert sum(r["actions"]) == pytest.approx(1.0) and len(r["actions"]) == 5
        assert sum(share for share, _, _ in r["kinds"].values()) == pytest.approx(1.0)
        assert 1 <= r["cells"] <= 120 and 0 < r["top_cell"] <= 1 and 0 <= r["still"] <= 1
        assert set(r["kinds"]) <= {0, 1, 2, 3}
    # a uniform random policy tries every move; a greedy policy of an untrained agent repeats one per state
    assert min(results["random"]["actions"]) > 0.05
    assert results["random"]["cells"] > 1


def test_probe_refuses_tasks_that_are_not_grids(tmp_path):
    save_config(load_config(["cartpole"], [f"run.dir={tmp_path}"]), tmp_path / "config.yaml")
    with pytest.raises(SystemExit, match="has no checkpoints"):
        main([str(tmp_path)])
    (tmp_path / "checkpoints" / "step_0000001000").mkdir(parents=True)
    (tmp_path / "checkpoints" / "step_0000001000" / "complete").touch()
    with pytest.raises(SystemExit, match="CartPole-v1; this probe reads the built-in grid tasks only"):
        main([str(tmp_path)])
