"""The planner through RLlib and the command line: its option state travels between env steps, and a short
`forethought train` run is evaluated by `forethought eval`, goal video included."""

from pathlib import Path

import imageio.v3 as iio
import numpy as np

from forethought.config import load_config
from forethought.diagnose import diagnose
from forethought.evaluate_checkpoint import evaluate_checkpoint
from forethought.train import algorithm_config, register_env
from tests.conftest import train_briefly


def test_option_state_is_carried_between_env_steps_and_reset_with_episodes(ray_session, tmp_path):
    config = load_config(["keydoor_vector_planner", "debug"],
                         [f"run.dir={tmp_path}", "scale.num_env_runners=0", "agent.planner.every=4",
                          "agent.horizon=8", "env.time_limit=10"])
    register_env()
    algo = algorithm_config(config).build_algo()
    try:
        algo.train()  # the learner's first update fills the landmarks the env runner plans with
        episodes = algo.env_runner.sample(num_timesteps=32, random_actions=False, force_reset=True)
    finally:
        algo.stop()
    first, second = episodes[0], episodes[1]
    assert first.t_started == 0 and len(first) == 10 and first.is_truncated
    states = first.get_extra_model_outputs("state_out")
    assert states["steps_left"].tolist() == [3, 2, 1, 0, 3, 2, 1, 0, 3, 2]
    goals = states["goal"]
    assert all(np.array_equal(goals[t], goals[t // 4 * 4]) for t in range(10))
    assert second.get_extra_model_outputs("state_out")["steps_left"].tolist()[:4] == [3, 2, 1, 0]


def test_a_trained_planner_is_evaluated_from_its_checkpoint_with_its_goals_filmed(tmp_path):
    run = train_briefly(tmp_path / "run", "keydoor_planner")
    report = evaluate_checkpoint(run, ["eval.episodes=1", "eval.video=true"], progress=False)
    assert len(report["episode_returns"]) == 1 and report["video_goals"] and Path(report["video"]).exists()
    frames = list(iio.imiter(report["video"]))
    assert frames[0].shape[1] == 2 * frames[0].shape[0]  # the env's frame, then the decoded goal
    diagnosis = diagnose(run)  # the task value is the planner's critic; it has no task actor
    assert diagnosis["discount"] == 0.99 and "actor" not in diagnosis
    assert all(v is None or np.isfinite(v) for v in diagnosis["critic"].values())
