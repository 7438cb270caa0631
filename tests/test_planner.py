"""The sub-goal planner: its search, its temporal distance, goal scores, options held for K steps, landmarks."""

import math

import pytest
import torch

from agents import build_agent
from agents.actions import ActionSpec
from agents.actor_critic import ActorCriticConfig
from agents.dreamer import LATENT_KEYS
from agents.planner import PlannerAgent, PlannerConfig
from agents.planning import (
    Landmarks,
    TemporalDistance,
    ValueFunction,
    best_returns,
    cem_search,
    discounted_reach,
    reach_scores,
    replay_pairs,
)
from tests.test_dreamer import SPACE, make_batch, obs
from world_models.config import sized

SPEC = ActionSpec.discrete(3)


def planner(**changes) -> PlannerAgent:
    torch.manual_seed(0)
    ac = ActorCriticConfig(units=16, layers=1, bins=31)
    config = PlannerConfig(sized("debug"), worker=ac, value=ac, **{
        "every": 4, "horizon": 8, "landmarks": 32, "samples": 16, "elites": 4, "distance_units": 32, **changes})
    return build_agent(SPACE, SPEC, config)


def test_the_search_beats_its_proposal_distribution_on_a_synthetic_score():
    """Sequences of 2 of 50 candidates (2,500 sequences); the score peaks at (37, 11). With the same 128 scored
    sequences: the best of 128 draws from the uniform proposal, against 4 rounds of 32 of the cross-entropy
    method (the same proposal first, then refits to the best). Over 512 problems: about -2.7 against -1.9."""
    torch.manual_seed(0)
    target = torch.tensor([37, 11])

    def score(seqs):
        return -(seqs - target).abs().sum(-1).float()

    _, proposal = cem_search(score, batch=512, candidates=50, length=2, samples=128, iterations=1, elites=8)
    best_seq, searched = cem_search(score, batch=512, candidates=50, length=2, samples=32, iterations=4, elites=8)
    assert float(searched.mean()) > float(proposal.mean()) + 0.4, (searched.mean(), proposal.mean())
    assert torch.equal(score(best_seq[:, None])[:, 0], searched)  # the returned sequences score what is reported
    assert float((searched == 0).float().mean()) > 1.5 * float((proposal == 0).float().mean())  # the optimum
    prior = torch.full((64, 2, 50), -10.0)
    prior[:, :, 0] = 0.0  # a prior that points at candidate 0: the first round draws from it
    seqs, _ = cem_search(score, batch=64, candidates=50, length=2, samples=16, iterations=1, elites=4, prior=prior)
    assert float((seqs == 0).float().mean()) > 0.9


def _chain_sequences(batch: int, steps: int, cells: int) -> torch.Tensor:
    """One-hot states of walks along a chain of ``cells`` cells, one cell forward per step from a random start."""
    start = torch.randint(0, cells - steps + 1, (batch, 1))
    return torch.eye(cells)[start + torch.arange(steps)]


def test_the_temporal_distance_learns_a_chains_step_counts():
    torch.manual_seed(0)
    distance = TemporalDistance(dim=60, most=6, units=64, layers=2, lr=3e-3)
    first = torch.zeros(32, 12, dtype=torch.bool)
    for _ in range(600):  # 60 cells: another sequence's state is rarely the same cell ("farther" would be wrong)
        states = _chain_sequences(32, 12, 60)
        distance.update(*replay_pairs(states, first, most=6, negatives=0.25))
    cells = torch.eye(60)
    state, goal = cells[[3, 3, 3, 10, 5]], cells[[3, 5, 8, 12, 18]]
    with torch.no_grad():
        steps = distance.expected(state, goal)
    # 0, 2, 5 and 2 steps ahead; 13 steps ahead is beyond most (6): "farther", 7
    torch.testing.assert_close(steps, torch.tensor([0.0, 2.0, 5.0, 2.0, 7.0]), atol=0.6, rtol=0.0)


def test_the_temporal_distance_scores_all_pairs_of_states_and_goals_as_its_network_does():
    torch.manual_seed(0)
    distance = TemporalDistance(dim=8, most=4, units=16, layers=2, lr=1e-3)
    state, goal = torch.randn(5, 1, 8), torch.randn(5, 7, 8)
    pairs = torch.cat([state.expand_as(goal), goal, goal - state], -1)  # what the first layer reads
    torch.testing.assert_close(distance.logits(state, goal), distance.net(pairs), atol=1e-5, rtol=0.0)
    from_state, from_goal = distance.first_layer(state[:, 0], goal[0])  # 5 states and 7 goals: 35 pairs
    torch.testing.assert_close(distance.head(from_state[:, None] + from_goal[None]),
                               distance.net(torch.cat([state.expand(5, 7, 8), goal[:1].expand(5, 7, 8),
                                                       goal[:1] - state], -1)), atol=1e-5, rtol=0.0)


def test_replay_pairs_stay_within_episodes_and_label_other_sequences_farther():
    torch.manual_seed(0)
    index = torch.arange(10.0)[None, :, None].expand(4, 10, 1).clone()  # a state is its own time step
    index[1] += 100  # sequence 1's states differ from sequence 0's
    first = torch.zeros(4, 10, dtype=torch.bool)
    first[:, 6] = True  # a new episode from step 6
    state, goal, steps = replay_pairs(index, first, most=3, negatives=0.0)
    assert torch.equal(goal - state, steps.float()[:, None])  # the label is the real offset
    assert (steps >= 0).all() and (steps <= 6).all()
    before = state[:, 0] % 100 < 6
    assert (goal[before, 0] % 100 < 6).all()  # pairs never cross into the next episode
    _, _, steps = replay_pairs(index, first, most=3, negatives=1.0)
    assert (steps == 4).all()  # other sequences: "farther" (most + 1)


def test_reachable_goals_are_preferred():
    logits = torch.full((4, 18), -30.0)  # a temporal distance's outputs over 0..16 steps and "farther"
    logits[0, 1] = logits[1, 6] = logits[2, 17] = logits[3, 0] = 0.0  # 1 step, 6, "farther", the state itself
    reach = discounted_reach(logits, discount=0.9)
    torch.testing.assert_close(reach, torch.tensor([0.9, 0.9**6, 0.0, 1.0]), atol=1e-6, rtol=0.0)
    within = discounted_reach(logits, discount=0.9, within=4)  # a goal held for 4 steps: 6 steps away is too far
    torch.testing.assert_close(within, torch.tensor([0.9, 0.0, 0.0, 1.0]), atol=1e-6, rtol=0.0)
    scores = reach_scores(reach, torch.tensor([1.0, 1.0, 5.0, 0.0]))
    # the near goal beats the far one of equal value, and a goal out of reach counts for nothing however valuable
    assert scores.argmax().item() == 0 and scores[0] > scores[1] > 1e-6 > scores[2]
    assert scores[3] == 0  # the lowest value scores nothing, however near


def test_options_change_every_k_steps_and_on_episode_starts():
    agent = planner(every=3, horizon=6)
    agent.update(make_batch(SPEC, 2, 6))
    first = torch.ones(2, dtype=torch.bool)
    state, goals, left = agent.initial_state(2), [], []
    for t in range(7):
        _, state = agent.act(obs(batch=2, seed=t), state, explore=True, is_first=first if t in (0, 5) else ~first)
        goals.append(state["goal"].clone())
        left.append(state["steps_left"][0].item())
    assert left == [2, 1, 0, 2, 1, 2, 1]  # a new option at 0, 3 and at the episode start at 5
    assert torch.equal(goals[0], goals[2]) and torch.equal(goals[3], goals[4]) and torch.equal(goals[5], goals[6])
    landmarks = agent.landmark_goal(torch.arange(int(agent.landmarks.count)))
    for goal in (goals[0], goals[3], goals[5]):  # every goal is a landmark: a replayed state
        assert all(((landmarks - g).abs().sum(-1) < 1e-5).any() for g in goal)


def test_update_trains_every_part_and_reports_planning_time():
    agent = planner(timing_every=1)
    parts = {"wm": agent.world_model, "distance": agent.distance, "value": agent.task_value.critic,
             "worker": agent.worker}
    before = {name: {k: v.clone() for k, v in part.state_dict().items()} for name, part in parts.items()}
    metrics = agent.update(make_batch(SPEC, 2, 6))
    for name, part in parts.items():
        assert any(not torch.equal(before[name][k], v) for k, v in part.state_dict().items()), name
    assert metrics["planner/plan_ms"] > 0 and metrics["planner/landmarks"] == 12  # 2 x 6 replayed steps
    assert {"distance/loss", "task_value/loss", "worker/goal_reward", "worker/hindsight_reward"} <= set(metrics)
    assert set(agent.optimizers()) == {"world_model", "worker_actor", "worker_critic", "distance", "task_value"}
    agent.strip_for_acting()  # acting keeps the heads, the distance and the value the search needs
    agent.act(obs(), agent.initial_state(3), explore=False, is_first=torch.ones(3, dtype=torch.bool))


def test_the_workers_reward_adds_the_weighted_task_reward_to_the_goal_reward():
    agent = planner()
    dim = agent.goal_dim
    trajectory = {"feat": torch.randn(3, 9, agent.world_model.rssm.feat_dim), "goal": torch.randn(3, 9, dim),
                  "goal_state": torch.randn(3, 9, dim), "action": torch.randn(3, 9, SPEC.dim),
                  "reward": torch.rand(3, 9), "cont": torch.ones(3, 9)}
    alone = agent.worker_segments(trajectory)["reward"]
    weighted = planner(worker_task_weight=2.0)
    weighted.load_state_dict(agent.state_dict())
    task = torch.cat([trajectory["reward"][:, 0:5], trajectory["reward"][:, 4:9]], 0)  # two segments of K = 4 steps
    torch.testing.assert_close(weighted.worker_segments(trajectory)["reward"], alone + 2.0 * task)
    assert (alone <= 1.0).all() and (alone >= 0.0).all()  # the goal reward alone: 1 at the goal, 0 "farther"
    metrics = weighted.update(make_batch(SPEC, 2, 6))
    assert 0.0 <= metrics["worker/goal_reward"] <= 1.0  # reported without the task part
    with pytest.raises(ValueError, match="worker_task_weight"):
        PlannerConfig(worker_task_weight=-1.0)
    with pytest.raises(ValueError, match="planner replay_value must be at least 0"):
        PlannerConfig(replay_value=-0.5)


def test_episode_goals_are_the_own_episodes_states_ahead_in_training_and_its_walks_states_acting():
    """goals 'episode': layouts that change each episode make other episodes' landmarks unreachable."""
    agent = planner(goals="episode", candidates=5)
    batch = make_batch(SPEC, 3, 10)
    batch["is_first"][1, 6] = True  # sequence 1 holds the end of one episode (steps 0-5) and the start of the next
    _, post = agent.world_model.update_and_states(batch)
    ahead = agent.start_context(post, batch)["ahead"].reshape(3, 10, 5)
    seq, step = ahead // 10, ahead % 10
    assert (seq == torch.arange(3)[:, None, None]).all()  # the own sequence
    now = torch.arange(10)[None, :, None]
    last = torch.tensor([9] * 6 + [9] * 4)[None, :, None].expand(3, 10, 1).clone()
    last[1, :6] = 5  # the first episode of sequence 1 ends at step 5
    assert ((step > now) | (now == last)).all() and (step <= torch.minimum(now + agent.config.horizon, last)).all()

    metrics = agent.update(batch)  # training picks among the replayed states ahead
    assert torch.isfinite(torch.stack(list(map(torch.as_tensor, metrics.values())))).all()
    start = {k: post[k][:1, 3].detach() for k in LATENT_KEYS}
    torch.manual_seed(7)
    pool, index = agent.walk_pool(start)
    assert pool.shape == (5 * agent.config.options * agent.every, agent.world_model.rssm.feat_dim)
    assert index.shape == (1, len(pool))
    torch.manual_seed(7)  # the same walks: acting's goal is one of their states, not a landmark
    goal = agent.choose(start, explore=True)
    walked = agent.landmark_goal(index[0], pool)
    assert ((walked - goal).abs().sum(-1) < 1e-5).any()
    assert sorted(index[0].tolist()) == list(range(len(pool)))  # each start's own walks, in a random order
    walking = planner(goals="walks", walks=2)  # training picks among random walks' states too
    metrics = walking.update(batch)
    assert 0.0 <= metrics["worker/goal_reward"] <= 1.0 and metrics["planner/plan_ms"] > 0
    with pytest.raises(ValueError, match="planner goals must be 'landmarks', 'episode' or 'walks', got 'replay'"):
        PlannerConfig(goals="replay")


def test_the_task_value_learns_real_returns_from_replayed_sequences_that_cross_episode_boundaries():
    torch.manual_seed(0)  # a 5-state chain paying 1 on arriving at its last, terminal state
    config = ActorCriticConfig(units=32, layers=1, bins=31, discount=0.5, lam=1.0, critic_lr=3e-3, slow_reg=0.0)
    value = ValueFunction(5, config)
    # replayed sequences of 6 steps: a whole episode and the next one's start, one crossing the terminal state into
    # the next episode, one crossing a time limit that cut an episode at state 3 (which must bootstrap, not count 0)
    states, reward, first, terminal = torch.tensor([[0, 1, 2, 3, 4, 0], [3, 4, 0, 1, 2, 3], [1, 2, 3, 0, 1, 2]]), \
        torch.zeros(3, 6), torch.zeros(3, 6, dtype=torch.bool), torch.zeros(3, 6, dtype=torch.bool)
    reward[0, 4] = reward[1, 1] = 1.0
    first[0, 0] = first[0, 5] = first[1, 2] = first[2, 3] = True
    terminal[0, 4] = terminal[1, 1] = True
    chain = torch.eye(5)[states].repeat(3, 1, 1)
    replay = {"reward": reward.repeat(3, 1), "is_first": first.repeat(3, 1), "is_terminal": terminal.repeat(3, 1)}
    imagined = (torch.zeros(9, 3, 5), torch.zeros(9, 3), torch.ones(9, 3))  # imagination that never sees a reward
    before = {k: v.clone() for k, v in value.state_dict().items()}
    alone = ValueFunction(5, config)
    alone.load_state_dict(before)
    alone.update(*imagined)
    sequences = (chain, replay["reward"], replay["is_terminal"], replay["is_first"])
    value.update(*imagined, replayed=sequences, replay_weight=0.0)
    assert all(torch.equal(v, alone.state_dict()[k]) for k, v in value.state_dict().items())  # weight 0: as before
    for _ in range(300):
        metrics = value.update(*imagined, replayed=sequences, replay_weight=1.0)
    assert "replay_loss" in metrics
    assert "task_value/replay_loss" in planner(replay_value=1.0).update(make_batch(SPEC, 2, 6))
    torch.testing.assert_close(value.value(torch.eye(5)[:4]), torch.tensor([0.125, 0.25, 0.5, 1.0]), atol=0.08,
                               rtol=0.0)


def test_the_best_of_k_step_returns_value_the_best_state_reached_not_the_behaviours_return():
    # the behaviour passes a state worth 4 (by the values bootstrapped from) and walks on to states worth 0
    value, reward, cont = torch.tensor([[0.0, 0, 4, 0, 0]]), torch.zeros(1, 5), torch.ones(1, 5)
    assert best_returns(reward, value, cont, 0.5, 4).tolist() == [[1.0, 2.0, 0.0, 0.0]]
    assert best_returns(reward, value, cont, 0.5, 1).tolist() == [[0.0, 2.0, 0.0, 0.0]]  # one step: TD(0)
    terminal = torch.tensor([[1.0, 1, 0, 1, 1]])  # the episode ends on arriving at the state worth 4: no bootstrap
    assert best_returns(reward, value, terminal, 0.5, 4).tolist() == [[0.0, 0.0, 0.0, 0.0]]
    paid = torch.tensor([[0.0, 0, 1, -1, 3]])  # rewards on arrival: the best horizon from state 0 takes all three
    assert best_returns(paid, torch.zeros(1, 5), cont, 0.5, 4).tolist() == [[0.625, 1.25, 0.5, 3.0]]
    # another episode starts at the state worth 4 (a replayed sequence crossing a time limit): no return reaches
    # into it, and the state just before the cut, which no step of its own episode follows, keeps its own value
    cut = torch.tensor([[0.0, 0, 1, 0, 0]])
    assert best_returns(reward, value, cont, 0.5, 4, cut=cut).tolist() == [[0.0, 0.0, 0.0, 0.0]]
    worth = torch.tensor([[0.0, 5, 0, 0, 0]])
    assert best_returns(paid, worth, cont, 0.5, 4, cut=cut).tolist() == [[2.5, 5.0, 0.5, 3.0]]
    agent = planner(replay_value=1.0, replay_best=4)
    assert math.isfinite(agent.update(make_batch(SPEC, 2, 6))["task_value/replay_return"])
    with pytest.raises(ValueError, match="planner replay_best must be at least 0"):
        PlannerConfig(replay_best=-1)


def test_landmarks_fill_then_refresh_a_few_at_a_time():
    torch.manual_seed(0)
    landmarks = Landmarks(size=8, feat_dim=1)
    landmarks.refresh(torch.arange(5.0)[:, None], replace=2)
    assert int(landmarks.count) == 5 and sorted(landmarks.filled()[:, 0].tolist()) == [0, 1, 2, 3, 4]
    landmarks.refresh(torch.full((6, 1), 9.0), replace=2)  # 3 empty slots filled, then 2 replaced
    assert int(landmarks.count) == 8 and (landmarks.filled() == 9).sum() == 5


def test_bad_planner_settings_are_named():
    with pytest.raises(ValueError, match=r"horizon \(10\) must be a positive multiple of every \(4\)"):
        PlannerConfig(every=4, horizon=10)
    with pytest.raises(ValueError, match=r"elites \(9\) cannot exceed samples \(8\)"):
        PlannerConfig(samples=8, elites=9)
    with pytest.raises(ValueError, match="explore_goals must be a share from 0 to 1"):
        PlannerConfig(explore_goals=1.5)
