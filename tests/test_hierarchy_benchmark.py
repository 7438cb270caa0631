"""benchmarks/hierarchy_vs_flat.py: the table and the learning-curve figure from stored runs."""

import numpy as np

from benchmarks.hierarchy_vs_flat import load_runs, plot, summary, table
from forethought.stats import final_return


def fake_run(task, agent, seed, level, steps=1000):
    curve = [[s, level * s / steps] for s in range(100, steps + 1, 100)]
    return {"task": task, "agent": agent, "seed": seed, "steps": steps, "curve": curve, "eval_return": level,
            "wall_s": 120.0}


def test_final_return_is_the_last_recorded_mean_of_recent_episodes():
    # every table (this one, sample_efficiency's, sweeps') and the learning tests use this one measure
    assert final_return([[100, 0.0], [900, 0.5], [1000, 1.0]]) == 1.0
    assert final_return([[100, 0.2]]) == 0.2
    assert final_return([]) is None  # no episode has ended


def test_table_and_figure_summarise_seeds(tmp_path):
    runs = [fake_run("keydoor_vector", "flat", s, 0.5) for s in (0, 1)] + [
        fake_run("keydoor_vector", "director", 0, 1.0), fake_run("minigrid", "ppo", 0, 0.25)]
    runs[1]["eval_return"] = 0.7
    rows = summary(runs)
    assert rows[1] == {"task": "keydoor_vector", "agent": "flat", "seeds": [0, 1], "budget": 1000,
                       "final_return": [0.5, 0.5], "final_greedy": [0.5, 0.7], "wall_s": [120.0, 120.0]}
    text = table(rows)
    assert "| keydoor_vector | flat | 0,1 | 1,000 | 0.50 ± 0.00 | 0.50, 0.50 | 0.60 ± 0.14 | 0.50, 0.70 | 2.0 |" in text
    assert "| keydoor_vector | director | 0 | 1,000 | 1.00 | 1.00 | 1.00 | 1.00 | 2.0 |" in text  # one seed: no spread
    assert "| minigrid | ppo |" in text
    silent = {**fake_run("pinpad4_vector", "ppo", 0, 0.0), "curve": []}  # no episode ended within the budget
    assert "| pinpad4_vector | ppo | 0 | 1,000 | - | - | 0.00 | 0.00 | 2.0 |" in table(summary([silent]))
    path = plot(runs, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "keydoor_vector-flat-seed0.json").write_text(__import__("json").dumps(runs[0]))
    (tmp_path / "runs" / "summary.json").write_text(__import__("json").dumps(rows))  # written beside the runs
    assert load_runs(tmp_path / "runs") == [runs[0]]


def test_ppo_sees_images_as_floats_in_0_1_and_vectors_as_they_are():
    from benchmarks.hierarchy_vs_flat import ppo_observation
    from envs import make

    env = ppo_observation(make("forethought/KeyDoor-v0", seed=0))
    obs, _ = env.reset(seed=0)
    assert env.observation_space.dtype == np.float32 and obs.dtype == np.float32 and env.observation_space.contains(obs)
    assert obs.shape == (64, 64, 3) and 0.0 <= obs.min() and obs.max() <= 1.0 and obs.max() > 0.5
    vector = ppo_observation(make("forethought/KeyDoorVector-v0", seed=0))
    assert vector.observation_space.contains(vector.reset(seed=0)[0])


def test_ppo_gets_images_at_a_size_its_default_cnn_has_a_layout_for():
    from benchmarks.hierarchy_vs_flat import ppo_config

    pixels, note = ppo_config("keydoor", ["run.seed=1"])  # the preset's 32 x 32: RLlib's catalog has no layout
    assert pixels.env.image_size == (64, 64) and "64 x 64" in note and pixels.run.seed == 1
    assert pixels.env.id == "forethought/KeyDoor-v0" and pixels.train.train_ratio == 96
    minigrid, note = ppo_config("minigrid", [])  # 64 x 64 already
    assert minigrid.env.image_size == (64, 64) and note == ""
