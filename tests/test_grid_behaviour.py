"""The grid-behaviour probe reports where a policy spends its steps and what the agent's model reads there."""

import numpy as np
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


def test_pin_pad_replay_figures_count_history_changes_and_completions(tmp_path):
    from benchmarks.grid_behaviour import pinpad_replay
    from envs.pinpad import PinPad
    from forethought.replay import Replay
    from tests.test_pinpad import enter

    env = make("forethought/PinPadVector3-v0", seed=0)  # the agent's spaces
    pinpad = PinPad(num_pads=3, obs_type="vector")
    obs, _ = pinpad.reset(seed=0)
    rng = np.random.default_rng(0)
    steps: dict[str, list] = {"vector": [], "action": [], "reward": [0.0], "is_first": [True], "is_terminal": []}
    for _ in range(3):  # a few random moves, then the order 1, 2, 3 (a completion) and the celebration
        for action in [*rng.integers(0, 5, 4), None, None, None, *rng.integers(0, 5, 12)]:
            steps["vector"].append(obs)
            if action is None:  # put the agent beside the next pad and step onto it (stored as a no-op)
                before = pinpad.history[-1] if pinpad.history else 0
                (obs, reward, *_), action = enter(pinpad, {0: 1, 1: 2, 2: 3, 3: 1}[before]), 0
            else:
                obs, reward, *_ = pinpad.step(int(action))
            steps["action"].append(np.eye(5, dtype=np.float32)[int(action)])
            steps["reward"].append(reward)
            steps["is_first"].append(False)
    steps["vector"].append(obs)
    steps["action"].append(np.zeros(5, np.float32))
    count = len(steps["vector"])
    replay = Replay({"vector": ((obs.shape[0],), np.float32), "action": ((5,), np.float32), "reward": ((), np.float32),
                     "is_first": ((), bool), "is_terminal": ((), bool)}, capacity=count, lanes=1)
    replay.add("a", {"vector": np.array(steps["vector"], np.float32), "action": np.array(steps["action"]),
                     "reward": np.array(steps["reward"], np.float32), "is_first": np.array(steps["is_first"]),
                     "is_terminal": np.arange(count) == count - 1}, done=True)  # ended: every return is known
    replay.save(tmp_path / "replay.npz")
    torch.manual_seed(0)
    agent = build_agent(obs_shapes(env.observation_space), action_spec(env.action_space), DreamerConfig(sized("debug")))
    result = pinpad_replay(agent, tmp_path, env, steps=count)
    env.close()
    history = np.array(steps["vector"])[:, 30:39]
    assert result["steps"] == count and result["changes"] == int((np.abs(np.diff(history, axis=0)).sum(1) > 0).sum())
    assert result["changes"] >= 7  # pads 1, 2 and 3 each round, less any repeat of the last pad
    assert len(result["completions"]) == 4  # posterior and prior: countdown and reward head
    assert all(len(v) == 3 for v in result["completions"].values())  # three completions, each read once
    assert set(result["position_right"]) == {"prior", "posterior"}
    shares = (result["prior_right"], result["posterior_right"], *result["position_right"].values())
    assert all(0 <= v <= 1 for v in shares)
    assert all(0.0 <= x <= 1.0 for x in [result["prior_right"], result["posterior_right"], *result["posterior_later"]])
    assert "last pads 1, 2" in result["by_history"]
