"""The hierarchical agent: options held for K steps, the manager's and worker's views of imagination, updates."""

import copy

import pytest
import torch

from agents import build_agent
from agents.actions import ActionSpec
from agents.actor_critic import ActorCriticConfig
from agents.director import DirectorAgent, DirectorConfig
from agents.goals import GoalConfig, max_cosine
from agents.returns import lambda_returns
from tests.test_dreamer import SPACE, make_batch, obs
from world_models.config import sized

SPEC = ActionSpec.discrete(3)


def director(every=4, horizon=8, **changes) -> DirectorAgent:
    torch.manual_seed(0)
    ac = ActorCriticConfig(units=16, layers=1, bins=31)
    config = DirectorConfig(sized("debug"), manager=ac, worker=ac, goal=GoalConfig(units=16, layers=1),
                            every=every, horizon=horizon, **changes)
    return build_agent(SPACE, SPEC, config)


def test_horizon_must_be_a_multiple_of_every():
    with pytest.raises(ValueError, match=r"horizon \(10\) must be a positive multiple of every \(4\)"):
        DirectorConfig(every=4, horizon=10)


def test_a_new_option_every_k_steps_and_on_episode_starts():
    agent = director(every=3, horizon=6)
    state = agent.initial_state(2)
    assert state["steps_left"].tolist() == [0, 0] and state["goal"].shape == (2, agent.config.world_model.deter)
    goals, lefts = [], []
    for t in range(7):
        first = torch.tensor([t == 0, t == 0 or t == 4])  # the second episode restarts at step 4
        _, state = agent.act(obs(2, seed=t), state, explore=True, is_first=first)
        goals.append(state["goal"].clone())
        lefts.append(state["steps_left"].tolist())
    assert [left[0] for left in lefts] == [2, 1, 0, 2, 1, 0, 2]
    assert [left[1] for left in lefts] == [2, 1, 0, 2, 2, 1, 0]  # restarted: a fresh option of 3 steps
    changed = [[not torch.equal(goals[t][i], goals[t - 1][i]) for i in range(2)] for t in range(1, 7)]
    assert [c[0] for c in changed] == [False, False, True, False, False, True]  # new goals at steps 3, 6
    assert [c[1] for c in changed] == [False, False, True, True, False, False]  # at 3 and at the restart 4


def test_greedy_acting_is_deterministic_and_the_goal_is_the_decoded_code():
    agent = director()
    first = torch.ones(2, dtype=torch.bool)
    torch.manual_seed(1)  # the world model's latent is sampled, as in DreamerV3
    a1, s1 = agent.act(obs(2), agent.initial_state(2), explore=False, is_first=first)
    torch.manual_seed(1)
    a2, s2 = agent.act(obs(2), agent.initial_state(2), explore=False, is_first=first)
    assert torch.equal(a1, a2) and torch.equal(s1["goal"], s2["goal"])
    assert torch.allclose(s1["goal"], agent.decode_goal(s1["code"]))
    assert s1["code"].sum(-1).tolist() == [8.0, 8.0]  # one class in each of the 8 groups


def test_imagination_holds_each_goal_for_k_steps():
    agent = director(every=4, horizon=8)
    start = {k: v.flatten(0, 1) for k, v in agent.world_model.observe(make_batch(SPEC, 2, 3))[0].items()}
    traj = agent.imagine(start)
    assert traj["feat"].shape[:2] == (6, 9)
    for t in range(9):
        chosen = t // 4 * 4
        assert torch.equal(traj["goal"][:, t], traj["goal"][:, chosen])
    assert not torch.equal(traj["code"][:, 0], traj["code"][:, 4])  # 6 codes of 8x8: all equal is ~impossible


def test_manager_trajectory_sums_rewards_per_chunk_and_multiplies_continuation():
    agent = director(every=2, horizon=4, task_weight=1.0, explore_weight=0.5)
    n, steps = 1, 5
    traj = {"feat": torch.arange(steps, dtype=torch.float).view(1, steps, 1).expand(n, steps, 3),
            "code": torch.arange(steps, dtype=torch.float).view(1, steps, 1),
            "reward": torch.tensor([[9.0, 1.0, 2.0, 3.0, 4.0]]), "explore": torch.tensor([[9.0, 2.0, 2.0, 0.0, 4.0]]),
            "cont": torch.tensor([[1.0, 0.9, 0.5, 1.0, 0.8]])}
    view = agent.manager_trajectory(traj)
    assert view["feat"][0, :, 0].tolist() == [0.0, 2.0, 4.0]  # states where the manager acts
    assert view["action"][0, :, 0].tolist() == [0.0, 2.0, 4.0]
    # chunk rewards: (1 + 1) + (2 + 1) = 5 ; (3 + 0) + (4 + 2) = 9; nothing on arrival at the start
    assert view["reward"].tolist() == [[0.0, 5.0, 9.0]]
    assert torch.allclose(view["cont"], torch.tensor([[1.0, 0.45, 0.8]]))
    # the manager's lambda-returns over chunks (its discount per chunk)
    value = torch.zeros(1, 3)
    returns = lambda_returns(view["reward"], value, view["cont"], 0.5, 1.0)
    assert torch.allclose(returns, torch.tensor([[5 + 0.5 * 0.45 * 9, 9.0]]))  # R_t = r_t+1 + d c_t+1 R_t+1


def test_manager_chunk_means_weight_each_reward_by_the_chance_of_reaching_it_within_its_chunk():
    traj = {"feat": torch.zeros(1, 5, 3), "code": torch.zeros(1, 5, 1),
            "reward": torch.tensor([[9.0, 1.0, 2.0, 3.0, 4.0]]), "explore": torch.tensor([[9.0, 2.0, 2.0, 0.0, 4.0]]),
            "cont": torch.tensor([[1.0, 0.9, 0.5, 1.0, 0.8]])}
    view = director(every=2, horizon=4, explore_weight=0.5, chunk_reward="mean").manager_trajectory(traj)
    # step rewards 2, 3 | 3, 6; weights within each chunk: 1, 0.9 | 0.5, 0.5 (state 2 continues with 0.5)
    assert torch.allclose(view["reward"], torch.tensor([[0.0, (2 + 3 * 0.9) / 2, (3 * 0.5 + 6 * 0.5) / 2]]))
    assert torch.allclose(view["cont"], torch.tensor([[1.0, 0.45, 0.8]]))  # as with sums
    with pytest.raises(ValueError, match="chunk_reward must be 'sum' or 'mean'"):
        DirectorConfig(chunk_reward="max")


def test_reach_weight_pays_the_manager_for_the_similarity_to_its_own_chunk_goal():
    deter = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [2.0, 0.0], [0.0, 2.0]]])
    goal = torch.tensor([[[0.0, 1.0]] * 2 + [[2.0, 0.0]] * 3])  # chosen at steps 0 and 2
    traj = {"feat": deter, "goal_state": deter, "goal": goal, "code": torch.zeros(1, 5, 3),
            "reward": torch.zeros(1, 5), "explore": torch.zeros(1, 5), "cont": torch.ones(1, 5)}
    assert director(every=2, horizon=4).manager_trajectory(traj)["reward"].tolist() == [[0.0, 0.0, 0.0]]
    view = director(every=2, horizon=4, reach_weight=2.0).manager_trajectory(traj)
    # chunk 0 (steps 1, 2) against goal (0, 1): 1 + 0; chunk 1 (steps 3, 4) against goal (2, 0): 1 + 0
    assert view["reward"].tolist() == [[0.0, 2.0, 2.0]]


def test_worker_trajectory_rewards_closeness_to_the_segment_goal():
    agent = director(every=2, horizon=4)
    deter = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [2.0, 0.0], [0.0, 2.0]]])
    goal = torch.tensor([[[0.0, 1.0]] * 2 + [[2.0, 0.0]] * 3])  # chosen at steps 0 and 2
    traj = {"feat": deter, "goal_state": deter, "goal": goal, "action": torch.zeros(1, 5, 3),
            "reward": torch.ones(1, 5), "cont": torch.tensor([[1.0, 1.0, 0.5, 1.0, 1.0]])}
    view = agent.worker_trajectory(traj)
    assert view["feat"].shape == (2, 3, 4)  # two segments of K + 1 states, features then goal
    assert torch.equal(view["feat"][0, :, 2:], torch.tensor([[0.0, 1.0]] * 3))
    # the state closing segment 0 (step 2) is scored against segment 0's goal, not the next one's
    assert torch.allclose(view["reward"], torch.stack([max_cosine(torch.tensor([0.0, 1.0]), deter[0, 0:3]),
                                                       max_cosine(torch.tensor([2.0, 0.0]), deter[0, 2:5])]))
    assert view["reward"][0].tolist() == [0.0, 1.0, 0.0] and view["reward"][1].tolist() == [0.5, 1.0, 0.0]
    assert view["cont"][:, 0].tolist() == [1.0, 0.5]  # segment 1 weighs by the chance of reaching it
    with_task = director(every=2, horizon=4, worker_task_weight=0.25).worker_trajectory(traj)
    assert torch.allclose(with_task["reward"], view["reward"] + 0.25)


def test_update_trains_every_part_and_reports_grouped_metrics():
    agent = director()
    before = {name: copy.deepcopy(part.state_dict()) for name, part in
              [("wm", agent.world_model), ("goal", agent.goal_autoencoder), ("manager", agent.manager),
               ("worker", agent.worker)]}
    metrics = agent.update(make_batch(SPEC, 2, 6))
    assert {"world_model/loss", "goal_autoencoder/recon", "goal_autoencoder/kl", "manager/actor_loss",
            "manager/explore_reward", "worker/critic_loss", "worker/goal_reward"} <= set(metrics)
    assert all(isinstance(v, float) and v == v for v in metrics.values())
    for name, part in [("wm", agent.world_model), ("goal", agent.goal_autoencoder), ("manager", agent.manager),
                       ("worker", agent.worker)]:
        after = part.state_dict()
        assert any(not torch.equal(before[name][k], after[k]) for k in after), f"{name} did not change"
    assert set(agent.optimizers()) == {"world_model", "manager_actor", "manager_critic", "worker_actor",
                                       "worker_critic", "goal_autoencoder"}


def test_optimizer_state_round_trips():
    a, b = director(), director()
    a.update(make_batch(SPEC, 2, 6))
    b.load_optimizer_state_dict(copy.deepcopy(a.optimizer_state_dict()))
    assert b.goal_autoencoder.optimizer.state_dict()["state"].keys() == \
        a.goal_autoencoder.optimizer.state_dict()["state"].keys()


def test_report_decodes_goals_into_observations():
    agent = director(every=2)
    batch = make_batch(SPEC, 2, 6)
    report = agent.report(batch)
    assert report["goals/image"].shape == (2, 6, 16, 16, 3) and report["goals/image"].dtype == torch.uint8
    assert report["goals/vector"].shape == (2, 6, 4)
    assert report["goals/similarity"].shape == (2, 6)
    assert torch.equal(report["goals/image"][:, 0], report["goals/image"][:, 1])  # one goal per K = 2 steps
    assert "openloop/image_pred" in report
    # goals are centred states: the report adds the running mean back before decoding them
    agent.state_mean.fill_(0.5)
    report = agent.report(batch)
    post, _ = agent.world_model.observe(batch, sample=False)
    goal = agent.decode_goal(agent.manager.policy(agent.world_model.rssm.feat(post)[:, :1]).mode())
    vector = agent.world_model.decode(agent.world_model.rssm.prior_feat(goal + 0.5))["vector"]
    assert torch.allclose(report["goals/vector"][:, :1], vector)


def test_write_report_tiles_true_predicted_error_and_goal_frames(tmp_path):
    import numpy as np

    from forethought.report import report_frames, write_report

    agent = director(every=2)
    batch = {k: v.numpy() for k, v in make_batch(SPEC, 2, 6).items()}
    paths = write_report(agent, batch, tmp_path, video_format="gif")
    assert [p.name for p in paths] == ["report.npz", "report_image.gif"] and all(p.stat().st_size for p in paths)
    saved = np.load(paths[0])
    assert saved["goals/vector"].shape == (2, 6, 4) and saved["openloop/image_pred"].shape == (2, 6, 16, 16, 3)
    frames = report_frames(dict(saved), "image")
    assert len(frames) == 6 and frames[0].shape == (4 * 16, 2 * 16, 3)  # rows: true, predicted, error, goal
    assert np.array_equal(frames[3][32:48, 16:], saved["openloop/image_error"][1, 3])
    assert np.array_equal(frames[2][48:, :16], saved["goals/image"][0, 2])


def test_goal_space_is_deter_centred_by_its_running_mean():
    agent = director(stat_rate=0.5)
    replayed = torch.randn(2, 6, agent.config.world_model.deter)
    agent.update_stats(deter=replayed)
    first = agent.state_mean.clone()
    assert torch.allclose(first, replayed.mean((0, 1)))  # the first batch sets the mean
    deter = torch.randn(5, first.shape[0])
    assert torch.allclose(agent.goal_state(deter), deter - first)
    # a goal and a state that share only the common part score high raw and near zero centred
    near = first + 0.02 * torch.randn(2, first.shape[0], generator=torch.Generator().manual_seed(0))
    assert max_cosine(near[0], near[1]) > 0.9 and abs(max_cosine(*agent.goal_state(near))) < 0.5
    agent.update_stats(deter=first + 2.0)
    assert torch.allclose(agent.state_mean, first + 1.0)  # halfway to the new batch's mean
    assert "state_mean" in agent.state_dict()  # checkpointed with the weights
    raw = director(centre_states=False)
    assert torch.equal(raw.goal_state(deter), deter)


def test_exploration_bonus_is_the_reconstruction_error_over_its_running_mean():
    agent = director(stat_rate=0.5)
    assert float(agent.explore_scale) == 0.0
    agent.update(make_batch(SPEC, 2, 6))
    first = float(agent.explore_scale)
    assert first > 0  # the first update sets the scale to its batch's mean error
    error = torch.tensor([2.0 * first, 4.0 * first])
    agent.update_stats(error=error)
    assert float(agent.explore_scale) == pytest.approx(0.5 * first + 0.5 * 3.0 * first)
    assert "explore_scale" in agent.state_dict()  # checkpointed with the weights


def test_hindsight_goals_are_states_reached_1_to_k_steps_later_in_the_same_episode():
    agent = director(every=3, horizon=6, replay_goals=0.5)
    steps = 10
    deter = torch.arange(steps, dtype=torch.float).view(1, steps, 1).expand(64, steps, 2)  # deter = step index
    first = torch.zeros(64, steps, dtype=torch.bool)
    first[:, 6] = True  # a new episode starts at step 6
    future = agent.start_context({"deter": deter}, {"is_first": first})["future_deter"][:, 0].view(64, steps)
    t = torch.arange(steps, dtype=torch.float)
    ahead = future - t
    before = t < 5  # steps before their episode's last: t < 3 reach 3 steps ahead, t = 3, 4 fewer
    assert ahead[:, before].min() == 1 and ahead[:, before].max() == 3  # every offset from 1 to K is drawn
    assert (future[:, :6] <= 5).all() and (future[:, 5] == 5).all()  # never past the episode's last step
    assert (future[:, 6:] >= 6).all() and (future[:, 9] == 9).all()  # nor past the sequence's end


def test_replay_goals_add_worker_segments_towards_hindsight_goals():
    with pytest.raises(ValueError, match="replay_goals must be a share from 0 to 1"):
        DirectorConfig(replay_goals=1.5)
    agent = director(every=4, horizon=8, replay_goals=0.5)
    seen = {}
    context, update = agent.start_context, agent.worker.update

    def keep_context(post, batch):
        seen.update(context(post, batch))
        return seen

    def keep_segments(**segments):
        seen["segments"] = segments
        return update(**segments)

    agent.start_context, agent.worker.update = keep_context, keep_segments
    metrics = agent.update(make_batch(SPEC, 2, 6))
    segments = seen["segments"]
    # 12 starts x 2 segments towards the manager's goals, then round(0.5 x 12) = 6 towards hindsight goals
    assert segments["feat"].shape[:2] == (24 + 6, 5)
    goals = segments["feat"][24:, 0, -agent.config.world_model.deter:]
    targets = agent.goal_state(seen["future_deter"])  # each hindsight goal is one start's future state
    assert all(torch.isclose(targets, g).all(-1).any() for g in goals)
    assert metrics["worker/replay_goal_reward"] == pytest.approx(float(segments["reward"][24:, 1:].mean()))
    plain = director()
    assert "future_deter" not in plain.start_context({"deter": torch.zeros(1, 3, 2)}, {})  # no work when off
    assert "worker/replay_goal_reward" not in plain.update(make_batch(SPEC, 2, 6))


def test_imagining_towards_given_goals_holds_them_for_one_segment():
    agent = director(every=4, horizon=8)
    start = {k: v.flatten(0, 1) for k, v in agent.world_model.observe(make_batch(SPEC, 2, 3))[0].items()}
    goal = torch.randn(6, agent.config.world_model.deter)
    traj = agent.imagine(start, goal)
    assert traj["feat"].shape[:2] == (6, 5) and (traj["code"] == 0).all()
    assert torch.equal(traj["goal"], goal.unsqueeze(1).expand(6, 5, -1))
    assert agent.worker_trajectory(traj)["feat"].shape[:2] == (6, 5)  # one segment per start


def test_checkpoints_without_the_goal_space_mean_are_refused():
    agent = director()
    old = {k: v for k, v in agent.state_dict().items() if k != "state_mean"}
    with pytest.raises(ValueError, match="written before goals were centred states"):
        director().load_state_dict(old, strict=False)
    director(centre_states=False).load_state_dict(old, strict=False)  # raw goals need no mean


def test_manager_prior_pulls_the_manager_towards_the_codes_of_hindsight_goals():
    with pytest.raises(ValueError, match="manager_prior must be a weight of 0 or more"):
        DirectorConfig(manager_prior=-1.0)
    agent = director(every=4, horizon=8, manager_prior=0.5)  # no replay_goals: the prior alone needs them
    seen = {}
    context, update = agent.start_context, agent.manager.update

    def keep_context(post, batch):
        seen.update(context(post, batch))
        return seen

    def keep_extra(actor_extra=None, **trajectory):
        seen["extra"] = actor_extra.detach()
        with torch.no_grad():  # the manager's policy at the starts before its step
            seen["probs"] = torch.stack(agent.manager.policy(trajectory["feat"][:, 0]).probs, -2)
        return update(actor_extra=actor_extra, **trajectory)

    agent.start_context, agent.manager.update = keep_context, keep_extra
    metrics = agent.update(make_batch(SPEC, 2, 6))
    assert "future_deter" in seen and "worker/replay_goal_reward" not in metrics
    with torch.no_grad():  # the autoencoder (already stepped in this update) encodes each start's hindsight goal
        target = agent.goal_autoencoder.encode(agent.goal_state(seen["future_deter"])).probs
    assert target.shape == (12, 8, 8)
    cross_entropy = -(target * seen["probs"].log()).sum((-2, -1)).mean()
    assert metrics["manager/prior_loss"] == pytest.approx(float(cross_entropy), rel=1e-4)
    assert float(seen["extra"]) == pytest.approx(0.5 * metrics["manager/prior_loss"], rel=1e-4)
    assert "manager/prior_loss" not in director().update(make_batch(SPEC, 2, 6))


def test_critic_streams_give_the_manager_a_critic_per_reward_stream():
    traj = {"feat": torch.zeros(1, 5, 3), "code": torch.zeros(1, 5, 1),
            "reward": torch.tensor([[9.0, 1.0, 2.0, 3.0, 4.0]]), "explore": torch.tensor([[9.0, 2.0, 2.0, 0.0, 4.0]]),
            "cont": torch.ones(1, 5)}
    agent = director(every=2, horizon=4, explore_weight=0.5, critic_streams=True)
    view = agent.manager_trajectory(traj)
    # unweighted chunk sums by stream; the weights apply to each stream's normalised advantage
    assert {k: v.tolist() for k, v in view["reward"].items()} == {"task": [[0.0, 3.0, 7.0]],
                                                                  "explore": [[0.0, 4.0, 4.0]]}
    assert agent.manager.stream_weights == {"task": 1.0, "explore": 0.5}
    assert set(director(reach_weight=0.3, critic_streams=True).manager.stream_weights) == {"task", "explore", "reach"}
    metrics = agent.update(make_batch(SPEC, 2, 6))
    assert {"manager/return", "manager/explore_return", "manager/explore_return_scale"} <= set(metrics)
    _, params = agent.optimizers()["manager_critic"]
    assert len(params) == 2 * len(list(agent.manager.critic.parameters()))
    agent.strip_for_acting()  # the stream critics are training-only
    assert not hasattr(agent.manager, "streams")
    agent.act(obs(), agent.initial_state(3), explore=True, is_first=torch.ones(3, dtype=torch.bool))
