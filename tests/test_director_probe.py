"""The Director probe measures goal-space statistics on states the world model reaches in a real env."""

import math

import pytest
import torch

from agents import build_agent
from agents.director import DirectorConfig
from agents.goals import GoalConfig
from benchmarks.director_probe import load_agent, probe
from envs import make
from forethought.config import load_config, save_config
from forethought.spaces import action_spec, obs_shapes
from world_models.config import sized


def test_probe_reports_similarities_on_grid_cells():
    env = make("forethought/KeyDoorVector-v0", seed=0)
    torch.manual_seed(0)
    config = DirectorConfig(sized("debug"), goal=GoalConfig(units=16, layers=1))
    agent = build_agent(obs_shapes(env.observation_space), action_spec(env.action_space), config)
    agent.state_mean.copy_(torch.randn_like(agent.state_mean))
    result = probe(agent, env, episodes=2, steps=12)
    env.close()
    assert result["states"] == 24
    counts = ("states", "manager_entropy", "manager_max", "goal_norm")
    similarities = {k: v for k, v in result.items() if not k.startswith(counts)}
    assert {"same_cell", "other_cell", "raw_same_cell", "ahead_1", "autoencoded_own", "worker_reach",
            "random_reach", "random_code_match", "manager_goal_match"} <= set(similarities)
    assert all(-1.0 <= v <= 1.0 for v in similarities.values() if not math.isnan(v)), similarities
    assert 0 < result["manager_entropy"] <= result["manager_max_entropy"] + 1e-4


def test_probe_refuses_runs_that_are_not_director(tmp_path):
    save_config(load_config(["keydoor_vector"], [f"run.dir={tmp_path}"]), tmp_path / "config.yaml")
    with pytest.raises(SystemExit, match="reads director runs only"):
        load_agent(tmp_path)
    save_config(load_config(["keydoor_vector_director"], [f"run.dir={tmp_path}"]), tmp_path / "config.yaml")
    with pytest.raises(SystemExit, match="has no checkpoints"):
        load_agent(tmp_path)
