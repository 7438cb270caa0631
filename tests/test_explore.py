"""Directed exploration for the flat agent: the disagreement bonus rewards what replay has not shown."""

import copy

import pytest
import torch

from agents.actions import ActionSpec
from agents.actor_critic import ActorCriticConfig
from agents.dreamer import DreamerAgent, DreamerConfig
from agents.explore import Disagreement, ExploreConfig
from forethought.config import ConfigError, load_config
from forethought.loading import agent_config
from tests.test_dreamer import SPACE, make_batch, obs
from world_models.config import sized

SPEC = ActionSpec.discrete(3)


def explorer(spec: ActionSpec = SPEC, weight: float = 0.1) -> DreamerAgent:
    torch.manual_seed(0)
    config = DreamerConfig(sized("debug"), ActorCriticConfig(units=16, layers=1, bins=31), horizon=5,
                           explore=ExploreConfig(weight=weight, units=32))
    return DreamerAgent(SPACE, spec, config)


def test_the_members_agree_where_replay_has_been_and_disagree_elsewhere():
    torch.manual_seed(0)
    ensemble = Disagreement(6, 2, 4, ExploreConfig(weight=0.1, units=32, lr=3e-3))
    seen = torch.randn(8, 9, 6) * 0.3  # replayed sequences near the origin; the next latent is a function of them
    action = torch.nn.functional.one_hot(torch.randint(0, 2, (8, 9)), 2).float()
    following = torch.tanh(seen @ torch.randn(6, 4))  # the latent after state t, held at t + 1 as replay holds it
    target = torch.cat([torch.zeros(8, 1, 4), following[:, :-1]], 1).unsqueeze(-1)
    first = torch.zeros(8, 9, dtype=torch.bool)
    for _ in range(300):
        metrics = ensemble.update(seen, action, target, first)
    assert metrics["loss"] < 0.01
    novel = seen + 3.0  # states replay never held
    familiar = ensemble.reward(seen, action)
    assert familiar[:, 0].eq(0).all()  # no step leads to an imagined trajectory's start
    spread_seen = ensemble(seen, action).std(0).mean()
    spread_novel = ensemble(novel, action).std(0).mean()
    assert spread_novel > 5 * spread_seen
    # divided by its running mean: about 1 per step on what set the mean
    assert familiar[:, 1:].mean() == pytest.approx(1.0, rel=1e-4)


def test_a_transition_into_another_episode_teaches_the_ensemble_nothing():
    torch.manual_seed(0)
    ensemble = Disagreement(6, 2, 4, ExploreConfig(weight=0.1))
    feat, action, target = torch.randn(2, 3, 6), torch.zeros(2, 3, 2), torch.randn(2, 3, 4, 1)
    every_step_starts = torch.ones(2, 3, dtype=torch.bool)
    before = copy.deepcopy(ensemble.state_dict())
    ensemble.update(feat, action, target, every_step_starts)
    assert all(torch.equal(v, before[k]) for k, v in ensemble.state_dict().items())


def test_the_flat_agent_learns_a_second_reward_stream_and_acts_without_the_ensemble():
    a = explorer()
    assert set(a.actor_critic.stream_weights) == {"task", "explore"}
    critic = copy.deepcopy(a.actor_critic.streams["explore"].critic.state_dict())
    metrics = a.update(make_batch(SPEC))
    assert metrics["explore/loss"] > 0 and metrics["explore/reward"] > 0 and metrics["explore/scale"] > 0
    assert any(not torch.equal(v, critic[k]) for k, v in a.actor_critic.streams["explore"].critic.state_dict().items())
    assert "explore" in a.optimizers() and "explore" in a.training_only_modules()
    weights = copy.deepcopy(a.state_dict())
    b = explorer()
    b.load_state_dict(weights)
    b.load_optimizer_state_dict(copy.deepcopy(a.optimizer_state_dict()))
    torch.manual_seed(3)
    ma = a.update(make_batch(SPEC))
    torch.manual_seed(3)
    assert b.update(make_batch(SPEC)) == pytest.approx(ma)  # weights and optimiser state round trip
    b.strip_for_acting()
    assert not hasattr(b, "explore")
    action, _ = b.act(obs(), b.initial_state(3), explore=True, is_first=torch.ones(3, dtype=torch.bool))
    assert action.shape == (3,)
    plain = explorer(weight=0.0)  # off: the agent and its weights are the flat agent's
    assert not hasattr(plain, "explore") and "actor_critic.streams.explore.critic.1.weight" not in plain.state_dict()


def test_the_config_turns_exploration_on_and_refuses_what_does_not_fit():
    assert agent_config(load_config(["cartpole"], ["agent.explore.weight=0.1"])).explore.weight == 0.1
    assert agent_config(load_config(["cartpole"], [])).explore.weight == 0.0
    with pytest.raises(ConfigError, match=r"agent.explore applies to agent.name=dreamer only"):
        agent_config(load_config(["director"], ["agent.explore.weight=0.1"]))
    with pytest.raises(ConfigError, match=r"explore needs weight >= 0, models >= 2"):
        agent_config(load_config(["cartpole"], ["agent.explore.models=1"]))
    with pytest.raises(ConfigError, match=r"unknown config key 'agent.explore.bonus'"):
        agent_config(load_config(["cartpole"], ["agent.explore.bonus=1"]))
    with pytest.raises(ValueError, match=r"exploration \(agent.explore.weight > 0\) needs a REINFORCE actor"):
        explorer(ActionSpec.continuous(2))
