"""Sequence replay: lanes keep episodes contiguous, bounded memory, sampling, save and load in one piece."""

import numpy as np
import pytest

from forethought.replay import Replay

SPEC = {"image": ((4, 4, 3), np.uint8), "vector": ((2,), np.float32), "action": ((3,), np.float32),
        "reward": ((), np.float32), "is_first": ((), bool), "is_terminal": ((), bool)}


def chunk(start: int, n: int, first: bool = False, terminal: bool = False):
    """Steps whose vector and reward count up from ``start``, so windows can be checked."""
    t = np.arange(start, start + n)
    steps = {"image": np.repeat(t[:, None, None, None] % 256, 48).reshape(n, 4, 4, 3).astype(np.uint8),
             "vector": np.stack([t, t], -1).astype(np.float32), "action": np.eye(3, dtype=np.float32)[t % 3],
             "reward": t.astype(np.float32), "is_first": np.zeros(n, bool), "is_terminal": np.zeros(n, bool)}
    steps["is_first"][0] = first
    steps["is_terminal"][-1] = terminal
    return steps


def test_memory_is_bounded_and_allocated_up_front():
    replay = Replay(SPEC, capacity=1000, lanes=4)
    per_step = 48 + 8 + 12 + 4 + 1 + 1
    assert replay.nbytes == 1000 * per_step
    for i in range(30):
        replay.add(f"ep{i}", chunk(0, 100, first=True, terminal=True), done=True)
    assert len(replay) == 1000 and replay.steps_added == 3000
    assert replay.data["image"].dtype == np.uint8


def test_interleaved_chunks_of_an_episode_stay_contiguous():
    replay = Replay(SPEC, capacity=400, lanes=2, seed=0)
    # two streams whose chunks arrive interleaved, as from two env runners
    for k in range(4):
        replay.add("a", chunk(1000 + 10 * k, 10, first=k == 0), done=False)
        replay.add("b", chunk(2000 + 10 * k, 10, first=k == 0), done=False)
    batch = replay.sample(64, 8)
    assert batch["vector"].shape == (64, 8, 2) and batch["image"].shape == (64, 8, 4, 4, 3)
    steps = np.diff(batch["reward"], axis=1)
    assert np.all(steps == 1), "every window is one stream's consecutive steps"
    assert np.all(batch["is_first"][:, 0])


def test_a_new_episode_follows_a_finished_one_in_its_lane():
    replay = Replay(SPEC, capacity=200, lanes=2, seed=1)
    replay.add("a", chunk(0, 5, first=True, terminal=True), done=True)
    replay.add("b", chunk(100, 5, first=True), done=False)
    replay.add("c", chunk(200, 5, first=True), done=False)  # takes a's lane, not b's
    assert replay.owner.count("b") == 1 and replay.owner.count("c") == 1
    lane = replay.owner.index("c")
    np.testing.assert_array_equal(replay.data["reward"][lane, :10], [0, 1, 2, 3, 4, 200, 201, 202, 203, 204])
    np.testing.assert_array_equal(replay.data["is_first"][lane, :10], [1, 0, 0, 0, 0, 1, 0, 0, 0, 0])


def test_wraps_around_and_samples_only_whole_windows():
    replay = Replay(SPEC, capacity=50, lanes=1, seed=2)
    replay.add("a", chunk(0, 120, first=True), done=False)
    assert len(replay) == 50
    batch = replay.sample(200, 10)
    assert batch["reward"].min() >= 70 and np.all(np.diff(batch["reward"], axis=1) == 1)
    assert replay.can_sample(50) and not replay.can_sample(51)
    with pytest.raises(ValueError, match="no window of 51 steps"):
        replay.sample(1, 51)


def test_recent_fraction_favours_new_data():
    replay = Replay(SPEC, capacity=1000, lanes=1, recent_fraction=1.0, recent_window=100, seed=3)
    replay.add("a", chunk(0, 1000, first=True), done=False)
    batch = replay.sample(100, 10)
    assert batch["reward"][:, 0].min() >= 900


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="at least the number of lanes"):
        Replay(SPEC, capacity=2, lanes=4)
    replay = Replay(SPEC, capacity=10, lanes=1)
    bad = chunk(0, 3)
    bad["vector"] = bad["vector"][:, :1]
    with pytest.raises(ValueError, match=r"steps\['vector'\] of episode x is \(3, 1\), expected \(3, 2\)"):
        replay.add("x", bad, done=False)


def test_save_and_load_restore_everything(tmp_path):
    replay = Replay(SPEC, capacity=300, lanes=3, seed=4)
    for k in range(5):
        replay.add(f"e{k % 2}", chunk(100 * k, 30, first=k < 2), done=k == 4)
    replay.save(tmp_path / "replay.npz")
    again = Replay(SPEC, capacity=300, lanes=3, seed=99)
    again.load(tmp_path / "replay.npz")
    for key in SPEC:
        np.testing.assert_array_equal(again.data[key], replay.data[key])
    assert again.owner == replay.owner and again.steps_added == replay.steps_added
    a, b = replay.sample(8, 5), again.sample(8, 5)  # the random stream continues identically
    for key in SPEC:
        np.testing.assert_array_equal(a[key], b[key])
    other = Replay(SPEC, capacity=400, lanes=2)
    with pytest.raises(ValueError, match="another layout"):
        other.load(tmp_path / "replay.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable replay file"):
        other.load(tmp_path / "bad.npz")


def sparse_chunk(start: int, n: int, rewarded: set[int]):
    """``chunk`` with a reward of 1 only at the steps numbered in ``rewarded``."""
    steps = chunk(start, n, first=start == 0)
    steps["reward"] = np.isin(np.arange(start, start + n), list(rewarded)).astype(np.float32)
    return steps


def test_reward_fraction_draws_windows_that_hold_a_rewarded_step():
    rewarded = {137, 905}
    replay = Replay(SPEC, capacity=600, lanes=2, seed=0, reward_fraction=1.0)
    replay.add("a", sparse_chunk(0, 1000, rewarded), done=False)  # wraps around its lane of 300 steps
    replay.add("b", sparse_chunk(0, 300, set()), done=False)
    lane, position = replay.rewarded()  # only 905 is still stored: lane a keeps steps 700 to 999
    assert lane.tolist() == [0] and position.tolist() == [905 - 700]
    batch = replay.sample(256, 16)
    assert (batch["reward"].sum(axis=1) == 1).all()  # every window holds the reward, at all places in it
    assert set(np.argmax(batch["reward"], axis=1).tolist()) == set(range(16))
    assert (np.diff(batch["vector"][..., 0], axis=1) == 1).all()  # still whole windows of one stream

    half = Replay(SPEC, capacity=600, lanes=2, seed=0, reward_fraction=0.5)
    half.add("a", sparse_chunk(0, 300, {150}), done=False)
    half.add("b", sparse_chunk(0, 300, set()), done=False)
    share = (half.sample(2000, 16)["reward"].sum(axis=1) > 0).mean()
    uniform = 16 / (2 * 285)  # windows holding step 150 among all windows
    assert abs(share - (0.5 + 0.5 * uniform)) < 0.04

    # without rewarded steps, or at 0, sampling is the uniform one: the same windows from the same seed
    plain, none = Replay(SPEC, capacity=600, lanes=2, seed=3), Replay(SPEC, capacity=600, lanes=2, seed=3,
                                                                       reward_fraction=0.0)
    for replay in (plain, none):
        replay.add("a", sparse_chunk(0, 300, {150}), done=False)
    assert (plain.sample(32, 16)["vector"] == none.sample(32, 16)["vector"]).all()
    with pytest.raises(ValueError, match="reward_fraction must be in"):
        Replay(SPEC, capacity=600, lanes=2, reward_fraction=1.5)


def test_reward_starts_false_marks_the_windows_drawn_around_rewards():
    def filled(**kwargs: object) -> Replay:
        replay = Replay(SPEC, capacity=600, lanes=2, seed=4, reward_fraction=0.5, **kwargs)
        replay.add("a", sparse_chunk(0, 300, {150}), done=False)
        replay.add("b", sparse_chunk(0, 300, set()), done=False)
        return replay

    marked, plain = filled(reward_starts=False), filled()
    batch, same = marked.sample(400, 16), plain.sample(400, 16)
    assert "no_start" not in same and (batch["vector"] == same["vector"]).all()  # the same draws either way
    no_start = batch["no_start"]
    assert no_start.shape == (400, 16) and (no_start == no_start[:, :1]).all()  # whole windows
    holds = batch["reward"].sum(axis=1) > 0
    assert holds[no_start[:, 0]].all()  # every marked window was drawn around the reward
    assert 0.4 < no_start[:, 0].mean() < 0.6
    assert (~no_start[:, 0] & ~holds).any()  # the uniform ones stay as starts


def test_terminal_fraction_draws_windows_that_hold_an_episode_end_after_the_reward_draw():
    def filled(**kwargs: object) -> Replay:
        replay = Replay(SPEC, capacity=600, lanes=2, seed=5, **kwargs)
        replay.add("c", sparse_chunk(0, 300, set()), done=False)
        replay.add("a", sparse_chunk(0, 100, set()) | {"is_terminal": np.eye(100, dtype=bool)[-1]}, done=True)
        replay.add("b", sparse_chunk(100, 200, {150}), done=False)  # after "a" in its lane, rewarded at step 150
        return replay

    ended = filled(terminal_fraction=0.5).sample(2000, 16)
    holds_end = ended["is_terminal"].any(axis=1)
    uniform = 16 / (2 * 285)  # windows holding step 99 among all windows
    assert abs(holds_end.mean() - (0.5 + 0.5 * uniform)) < 0.04
    assert (np.diff(ended["vector"][..., 0], axis=1) == 1).all()  # whole windows of one stream

    # with both, the terminal draw takes only windows the reward draw left: the reward windows are kept as they were
    both, rewards = filled(reward_fraction=0.5, terminal_fraction=1.0), filled(reward_fraction=0.5)
    batch, alone = both.sample(2000, 16), rewards.sample(2000, 16)
    drawn = alone["reward"].sum(axis=1) > 0
    assert batch["is_terminal"][~drawn].any(axis=1).all()
    assert 0.4 < (batch["reward"].sum(axis=1) > 0).mean() < 0.6
    with pytest.raises(ValueError, match="terminal_fraction must be in"):
        Replay(SPEC, capacity=600, lanes=2, terminal_fraction=-0.1)
