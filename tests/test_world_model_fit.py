"""The world-model fit probe trains a fresh world model on a run's stored replay and reports how well it learns it."""

import json

import numpy as np
import pytest

from benchmarks.world_model_fit import main
from envs import make
from forethought.config import load_config, save_config
from forethought.replay import Replay
from forethought.spaces import action_spec, replay_spec

SMALL = ["agent.world_model.units=32", "agent.world_model.hidden=32", "agent.world_model.deter=32",
         "agent.world_model.stoch=4", "agent.world_model.classes=4", "agent.world_model.layers=1",
         "train.batch_size=4", "train.batch_length=8"]


def pin_pad_run(tmp_path, steps=300):
    """A run folder of Pin Pad vector with one checkpoint whose replay holds ``steps`` steps of random play."""
    save_config(load_config(["pinpad_vector"], [f"run.dir={tmp_path}", *SMALL]), tmp_path / "config.yaml")
    checkpoint = tmp_path / "checkpoints" / "step_0000000300"
    checkpoint.mkdir(parents=True)
    env = make("forethought/PinPadVector3-v0", seed=0)
    spec = action_spec(env.action_space)
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    rows: dict[str, list] = {"vector": [], "action": [], "reward": [], "is_first": [], "is_terminal": []}
    reward = 0.0
    for t in range(steps):
        action = int(env.action_space.sample())
        for key, value in (("vector", obs["vector"]), ("action", np.eye(spec.dim, dtype=np.float32)[action]),
                           ("reward", reward), ("is_first", t == 0), ("is_terminal", False)):
            rows[key].append(value)
        obs, reward, *_ = env.step(action)
    env.close()
    replay = Replay(replay_spec(env.observation_space, spec), capacity=steps, lanes=1)
    replay.add("a", {k: np.array(v) for k, v in rows.items()}, done=False)
    replay.save(checkpoint / "replay.npz")
    (checkpoint / "complete").touch()
    return tmp_path, checkpoint


def test_fit_reports_the_loss_falling_and_pin_pads_figures(tmp_path, capsys):
    run_dir, _ = pin_pad_run(tmp_path)
    main([str(run_dir), "--updates", "40", "--every", "20", "--replay-steps", "300",
          "--json", str(tmp_path / "f.json")])
    out = json.loads((tmp_path / "f.json").read_text())
    reports = out["reports"]
    assert [r["updates"] for r in reports] == [20, 40]
    assert reports[1]["world_model/loss"] < reports[0]["world_model/loss"]  # it learns the stored steps
    pinpad = reports[-1]["pinpad"]
    assert pinpad["steps"] == 300 and pinpad["changes"] > 0
    assert 0 <= pinpad["prior_right"] <= 1 and set(pinpad["position_right"]) == {"prior", "posterior"}
    assert "history changed at" in capsys.readouterr().out


def test_fit_takes_overrides_and_refuses_bad_ones_and_a_checkpoint_without_replay(tmp_path):
    run_dir, checkpoint = pin_pad_run(tmp_path, steps=40)
    main([str(run_dir), "agent.world_model.lr=1e-3", "--updates", "2", "--every", "2", "--replay-steps", "40",
          "--json", str(tmp_path / "f.json")])
    assert json.loads((tmp_path / "f.json").read_text())["overrides"] == ["agent.world_model.lr=1e-3"]
    with pytest.raises(SystemExit, match=r"unknown config key 'agent\.world_model\.bogus'"):
        main([str(run_dir), "agent.world_model.bogus=1", "--updates", "2"])
    (checkpoint / "replay.npz").unlink()
    with pytest.raises(SystemExit, match=r"holds no replay\.npz"):
        main([str(run_dir), "--updates", "2"])


def test_replay_from_file_restores_the_saved_layout(tmp_path):
    _, checkpoint = pin_pad_run(tmp_path, steps=40)
    replay = Replay.from_file(checkpoint / "replay.npz")
    assert len(replay) == 40 and replay.lanes == 1
    assert replay.sample(2, 8)["vector"].shape == (2, 8, *replay.spec["vector"][0])
    (tmp_path / "bad.npz").write_bytes(b"not a replay")
    with pytest.raises(ValueError, match="is not a readable replay file"):
        Replay.from_file(tmp_path / "bad.npz")
