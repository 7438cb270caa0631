"""The shared actor-critic: lambda-returns (golden values), policy distributions, learning on a bandit."""

import math

import pytest
import torch

from agents.actions import ActionSpec, PolicyDist
from agents.actor_critic import ActorCritic, ActorCriticConfig
from agents.returns import lambda_returns, replay_returns
from world_models.distributions import TwoHot

REWARD = torch.tensor([[0.0, 1.0, 2.0]])
VALUE = torch.tensor([[0.0, 3.0, 4.0]])
CONT = torch.tensor([[1.0, 1.0, 0.5]])


@pytest.mark.parametrize(
    ("lam", "expected"),
    [
        # R_1 = 2 + 0.9 * 0.5 * (0.5 * 4 + 0.5 * 4) = 3.8 ; R_0 = 1 + 0.9 * (0.5 * 3 + 0.5 * 3.8) = 4.06
        (0.5, [4.06, 3.8]),
        # Monte Carlo: R_0 = 1 + 0.9 * 3.8 = 4.42
        (1.0, [4.42, 3.8]),
        # one-step TD: R_0 = 1 + 0.9 * 3 = 3.7
        (0.0, [3.7, 3.8]),
    ],
)
def test_lambda_returns_golden_values(lam, expected):
    returns = lambda_returns(REWARD, VALUE, CONT, discount=0.9, lam=lam)
    torch.testing.assert_close(returns, torch.tensor([expected]))


def test_lambda_returns_stop_at_a_terminal_state():
    cont = torch.tensor([[1.0, 0.0, 1.0]])
    returns = lambda_returns(REWARD, VALUE, cont, discount=0.9, lam=0.95)
    assert returns[0, 0] == pytest.approx(1.0)  # nothing after the terminal state counts


def test_replay_returns_stop_at_episode_ends_and_bootstrap_where_an_episode_is_cut():
    # one replayed sequence of 6 steps: an episode ends in a terminal state at step 2, the next starts at step 3 and
    # is cut by its time limit at step 4 (step 5 starts a third episode)
    reward = torch.tensor([[9.0, 1.0, 2.0, 7.0, 3.0, 8.0]])
    value = torch.tensor([[5.0, 6.0, 4.0, 1.0, 10.0, 2.0]])
    terminal = torch.tensor([[False, False, True, False, False, False]])
    is_first = torch.tensor([[True, False, False, True, False, True]])
    returns, weight = replay_returns(reward, value, terminal, is_first, discount=0.9, lam=0.5)
    # R_4 = v_4 (cut, weight 0); R_3 = 3 + 0.9 * (0.5 * 10 + 0.5 * 10) = 12; R_2 = v_2 (its episode ended, weight 0);
    # R_1 = 2 (the terminal state has no future); R_0 = 1 + 0.9 * (0.5 * 6 + 0.5 * 2) = 4.6
    torch.testing.assert_close(returns, torch.tensor([[4.6, 2.0, 4.0, 12.0, 10.0]]))
    torch.testing.assert_close(weight, torch.tensor([[1.0, 1.0, 0.0, 1.0, 0.0]]))


def test_the_replay_value_loss_pulls_the_critic_towards_real_returns():
    torch.manual_seed(0)
    config = ActorCriticConfig(units=32, layers=1, critic_lr=3e-3, slow_rate=1.0, discount=0.5, replay_value=1.0)
    ac = ActorCritic(4, ActionSpec.discrete(2), config)
    # imagination pays nothing; the replayed episodes pay 2 on arriving at their second state, then end
    feat = torch.randn(32, 1, 4).expand(32, 3, 4).contiguous()
    action = torch.eye(2)[torch.zeros(32, 3, dtype=torch.long)]
    zeros, ones = torch.zeros(32, 3), torch.ones(32, 3)
    reward = torch.tensor([0.0, 2.0, 0.0]).expand(32, 3)
    terminal = torch.tensor([False, True, False]).expand(32, 3)
    is_first = torch.tensor([True, False, True]).expand(32, 3)
    for _ in range(200):
        loss, metrics = ac.replay_loss(feat, reward, terminal, is_first)
        ac.update(feat, action, zeros, ones, critic_extra=config.replay_value * loss)
    with torch.no_grad():
        value = float(ac.value(feat[:, 0]).mean())
    # the replay target of the first state is 2, imagination's about half the value: the critic settles between
    # them (about 1.1 for these weights); without the replay loss it stays at 0
    assert 0.5 < value < 1.5
    assert float(metrics["replay_return"]) == pytest.approx(2.0)


@pytest.mark.parametrize(
    "spec",
    [ActionSpec.discrete(4), ActionSpec.multi_discrete((3, 2)), ActionSpec.continuous(2)],
)
def test_policy_distributions(spec):
    torch.manual_seed(0)
    out = torch.randn(5, 7, spec.logits_dim, requires_grad=True)
    dist = PolicyDist(spec, out)
    action = dist.sample()
    assert action.shape == (5, 7, spec.dim) and not action.requires_grad
    logp = dist.log_prob(action)
    assert logp.shape == (5, 7) and torch.isfinite(logp).all()
    (logp.sum() + dist.entropy().sum()).backward()
    assert out.grad is not None and out.grad.abs().sum() > 0
    env_action = spec.to_env(action)
    torch.testing.assert_close(spec.from_env(env_action), action)
    if spec.kind == "continuous":
        assert action.abs().max() <= 1
    else:
        assert torch.all(action.split(spec.sizes, -1)[0].sum(-1) == 1)


def test_categorical_policy_mixes_in_one_percent_uniform():
    spec = ActionSpec.discrete(4)
    dist = PolicyDist(spec, torch.tensor([[100.0, 0.0, 0.0, 0.0]]))
    torch.testing.assert_close(dist.probs[0], torch.tensor([[0.9925, 0.0025, 0.0025, 0.0025]]))
    assert dist.mode().tolist() == [[1.0, 0.0, 0.0, 0.0]]


def test_bad_specs_are_named():
    with pytest.raises(ValueError, match="discrete, multi_discrete or continuous"):
        ActionSpec("box", (2,))
    with pytest.raises(ValueError, match="bad action sizes"):
        ActionSpec("discrete", (2, 3))


def train_bandit(updates: int, offset: float = 0.0, **changes) -> tuple[ActorCritic, torch.Tensor, dict]:
    """A one-step bandit in imagination: action 1 of 2 pays ``offset`` + 1 on arrival at the next state, action 0
    pays ``offset``. Returns the actor-critic, its states and the last update's metrics."""
    torch.manual_seed(0)
    config = ActorCriticConfig(**{"units": 32, "layers": 1, "actor_lr": 3e-3, "critic_lr": 3e-3, "entropy": 1e-4,
                                  "discount": 1.0, **changes})
    ac = ActorCritic(4, ActionSpec.discrete(2), config)
    feat = torch.randn(64, 1, 4).expand(64, 2, 4).contiguous()
    cont = torch.tensor([1.0, 0.0]).expand(64, 2)  # the episode ends after one step
    for _ in range(updates):
        action = ac.policy(feat).sample()
        reward = torch.zeros(64, 2)
        reward[:, 1] = offset + action[:, 0, 1]
        metrics = ac.update(feat, action, reward, cont)
    return ac, feat, metrics


def test_actor_learns_the_rewarding_action_and_critic_its_value():
    """A one-step bandit in imagination: action 1 pays 1 on arrival at the next state, action 0 pays 0."""
    ac, feat, metrics = train_bandit(150)
    with torch.no_grad():
        probs = ac.policy(feat[:, 0]).probs[0][:, 1]
        value = ac.value(feat[:, 0]).mean()
        slow = ac.value(feat[:, 0], slow=True).mean()
    assert probs.mean() > 0.9, probs.mean()
    assert 0.2 < float(value) <= 1.05  # on its way to the return of about 1
    assert set(metrics) >= {"actor_loss", "critic_loss", "entropy", "return", "return_scale"}
    assert 0 < slow < value + 0.05  # the slow critic trails the critic


def test_loss_is_pure_and_checks_shapes():
    ac = ActorCritic(4, ActionSpec.discrete(3), ActorCriticConfig(units=16, layers=1))
    feat, action = torch.randn(2, 5, 4), torch.eye(3)[torch.randint(0, 3, (2, 5))]
    before = {k: v.clone() for k, v in ac.state_dict().items()}
    ac.loss(feat, action, torch.zeros(2, 5), torch.ones(2, 5))
    assert all(torch.equal(before[k], v) for k, v in ac.state_dict().items())
    with pytest.raises(AssertionError, match=r"must share \[N, H \+ 1\]"):
        ac.loss(feat, action, torch.zeros(2, 4), torch.ones(2, 5))


def test_critic_converges_to_the_lambda_return():
    torch.manual_seed(0)
    config = ActorCriticConfig(units=32, layers=1, critic_lr=3e-3, slow_rate=1.0, discount=0.5)
    ac = ActorCritic(4, ActionSpec.discrete(2), config)
    feat = torch.randn(32, 1, 4).expand(32, 3, 4).contiguous()
    action = torch.eye(2)[torch.zeros(32, 3, dtype=torch.long)]
    reward = torch.tensor([0.0, 2.0, 4.0]).expand(32, 3)
    cont = torch.tensor([1.0, 1.0, 0.0]).expand(32, 3)
    for _ in range(300):
        ac.update(feat, action, reward, cont)
    with torch.no_grad():
        value = ac.value(feat[:, 0]).mean()
    # from the first state: 2 + 0.5 * 4 = 4, whatever lambda (the last state ends the episode)
    assert float(value) == pytest.approx(4.0, rel=0.1)


def _bandit_with_a_frozen_critic(center: bool) -> tuple[float, float]:
    """Both actions pay a lot (10 or 11) and the critic never learns (lr 0), as a critic that lags dense
    rewards: every advantage is about +10. Returns (probability of the better action, mean advantage)."""
    ac, feat, metrics = train_bandit(150, offset=10.0, critic_lr=0.0, center_advantages=center)
    with torch.no_grad():
        return float(ac.policy(feat[:, 0]).probs[0][:, 1].mean()), float(metrics["advantage"])


def test_centred_advantages_pick_the_better_action_under_a_lagging_critic():
    centred, centred_advantage = _bandit_with_a_frozen_critic(center=True)
    plain, plain_advantage = _bandit_with_a_frozen_critic(center=False)
    assert centred_advantage == pytest.approx(0.0, abs=1e-5) and plain_advantage > 5
    # uncentred, the +10 offset adds noise that drowns much of the 1 of difference: the worse action keeps
    # well over 4 times the probability (about 15% against under 1% over seeds 0-3)
    assert 1 - centred < (1 - plain) / 4, (centred, plain)


def test_an_extra_actor_loss_trains_the_actor_alongside_its_own():
    torch.manual_seed(0)
    config = ActorCriticConfig(units=16, layers=1, actor_lr=3e-3, critic_lr=0.0)
    ac = ActorCritic(4, ActionSpec.multi_discrete((3, 3)), config)
    feat = torch.randn(16, 3, 4)
    action = torch.cat([torch.eye(3)[torch.randint(0, 3, (16, 3))] for _ in range(2)], -1)
    target = torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0, 0.0])  # a soft or one-hot code per group
    for _ in range(200):  # no reward: only the extra loss (a cross-entropy to the target) steers the actor
        extra = -ac.policy(feat[:, 0]).log_prob(target).mean()
        ac.update(feat, action, torch.zeros(16, 3), torch.ones(16, 3), actor_extra=extra)
    with torch.no_grad():
        probs = ac.policy(feat[:, 0]).probs
    assert probs[0][:, 2].min() > 0.9 and probs[1][:, 0].min() > 0.9


def test_actor_outputs_from_imagination_give_the_losses_of_a_second_pass():
    torch.manual_seed(0)
    ac = ActorCritic(6, ActionSpec.discrete(3), ActorCriticConfig(units=16, layers=1, bins=31))
    feat = torch.randn(5, 4, 6)
    action = torch.nn.functional.one_hot(torch.randint(0, 3, (5, 4)), 3).float()
    reward, cont = torch.rand(5, 4), torch.ones(5, 4)
    again = ac.loss(feat, action, reward, cont)
    reused = ac.loss(feat, action, reward, cont, actor_out=ac.actor(feat))
    for a, b in zip(again[:2], reused[:2], strict=True):
        torch.testing.assert_close(a, b)
    grads = [torch.autograd.grad(loss[0], list(ac.actor.parameters())) for loss in (again, reused)]
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


def test_dynamics_gradients_steer_a_continuous_actor_to_the_best_action():
    """A one-step task whose reward is a differentiable function of the action (as an imagined reward is of the
    imagined action): -(a - 0.6)^2, the best action 0.6. Backpropagating the return moves the actor there."""
    torch.manual_seed(0)
    spec = ActionSpec.continuous(1)
    config = ActorCriticConfig(units=32, layers=1, actor_lr=3e-3, critic_lr=3e-3, entropy=1e-4, discount=1.0)
    ac = ActorCritic(4, spec, config, dynamics=True)
    feat = torch.randn(64, 1, 4).expand(64, 2, 4).contiguous()
    cont = torch.tensor([1.0, 0.0]).expand(64, 2)
    for _ in range(200):
        out = ac.actor(feat)
        action = PolicyDist(spec, out).rsample()
        reward = torch.cat([torch.zeros(64, 1), -(action[:, :1, 0] - 0.6) ** 2], 1)
        ac.update(feat, action, reward, cont, actor_out=out)
    with torch.no_grad():
        mean = ac.policy(feat[:, 0]).mean
    assert mean.mean().item() == pytest.approx(0.6, abs=0.05), mean.mean()


def test_rsample_draws_the_numbers_sample_draws_and_passes_gradients():
    out = torch.tensor([[0.3, -1.0, 2.0, 0.5]], requires_grad=True)
    for spec in (ActionSpec.continuous(2), ActionSpec.discrete(4)):
        torch.manual_seed(1)
        drawn = PolicyDist(spec, out).sample()
        torch.manual_seed(1)
        reparam = PolicyDist(spec, out).rsample()
        torch.testing.assert_close(reparam.detach(), drawn)
        (grad,) = torch.autograd.grad(reparam.sum() + (reparam * torch.arange(reparam.shape[-1])).sum(), out)
        assert grad.abs().sum() > 0
    with pytest.raises(ValueError, match="actor_grad must be"):
        ActorCriticConfig(actor_grad="pathwise")


def _bandit_entropy_share(**changes) -> tuple[float, float]:
    """Action 1 of 2 pays 1: (the policy's entropy over its maximum after 300 updates, the last entropy weight)."""
    ac, feat, metrics = train_bandit(300, **changes)
    with torch.no_grad():
        share = float(ac.policy(feat[:, 0]).entropy().mean()) / math.log(2)
    return share, float(metrics.get("entropy_weight", ac.config.entropy))


def test_an_entropy_target_holds_the_policy_near_it_where_a_fixed_weight_lets_it_collapse():
    fixed, _ = _bandit_entropy_share()
    adaptive, weight = _bandit_entropy_share(entropy_target=0.5)
    assert fixed < 0.3, fixed
    assert 0.4 < adaptive < 0.65 and weight > 1e-3, (adaptive, weight)


def test_the_adaptive_entropy_weight_moves_by_its_rate_outside_the_band_and_stays_inside_it():
    ac = ActorCritic(4, ActionSpec.multi_discrete((4, 4)), ActorCriticConfig(entropy=0.01, entropy_target=0.5))
    top = 2 * math.log(4)
    for share, expected in ((0.2, 0.011), (0.5, 0.011), (0.9, 0.0099)):
        assert float(ac.adapt_entropy(torch.tensor(share * top))) == pytest.approx(expected)
    for _ in range(200):
        ac.adapt_entropy(torch.tensor(0.0))
    assert float(ac.entropy_weight) == pytest.approx(1.0)  # entropy_max
    with pytest.raises(ValueError, match="entropy_target applies to discrete kinds"):
        ActorCritic(4, ActionSpec.continuous(1), ActorCriticConfig(entropy_target=0.5))
    with pytest.raises(ValueError, match="entropy_target must be a fraction"):
        ActorCriticConfig(entropy_target=1.5)


def _two_stream_bandit(streams: dict[str, float] | None, updates: int = 150) -> tuple[ActorCritic, torch.Tensor]:
    """A one-step bandit with two reward streams: 'a' pays 1 for action 1, 'b' pays 100 for action 0. With
    ``streams`` each has its critic; without, one critic learns a + 0.02 b (action 0 pays 2, action 1 pays 1)."""
    torch.manual_seed(0)
    config = ActorCriticConfig(units=32, layers=1, actor_lr=3e-3, critic_lr=3e-3, entropy=1e-4, discount=1.0)
    ac = ActorCritic(4, ActionSpec.discrete(2), config, streams=streams)
    feat = torch.randn(64, 1, 4).expand(64, 2, 4).contiguous()
    cont = torch.tensor([1.0, 0.0]).expand(64, 2)
    for _ in range(updates):
        action = ac.policy(feat).sample()
        a, b = torch.zeros(64, 2), torch.zeros(64, 2)
        a[:, 1], b[:, 1] = action[:, 0, 1], 100.0 * action[:, 0, 0]
        ac.update(feat, action, {"a": a, "b": b} if streams else a + 0.02 * b, cont)
    return ac, feat


def test_reward_streams_weigh_advantages_each_divided_by_its_own_scale():
    ac, feat = _two_stream_bandit({"a": 1.0, "b": 0.02})
    with torch.no_grad():
        better = float(ac.policy(feat[:, 0]).probs[0][:, 1].mean())
        value_a, value_b = float(ac.value(feat[:, 0]).mean()), float(TwoHot(ac.streams["b"].critic(feat[:, 0]),
                                                                           ac.bins).mean().mean())
    # b's advantages of about 100 are divided by b's return scale (tens), then weighted 0.02: a's 1 decides
    assert better > 0.9, better
    assert 0.2 < value_a <= 1.05 and value_b < 10  # each critic learns its own stream's value
    assert float(ac.streams["b"].retnorm.scale()) > 10 and float(ac.retnorm.scale()) == 1.0
    summed, feat = _two_stream_bandit(None)
    with torch.no_grad():  # one critic on a + 0.02 b prefers action 0, which pays 2 of the sum
        assert float(summed.policy(feat[:, 0]).probs[0][:, 1].mean()) < 0.1


def test_reward_streams_are_checked_by_name():
    ac = ActorCritic(4, ActionSpec.discrete(2), ActorCriticConfig(units=8, layers=1), streams={"a": 1.0, "b": 0.5})
    feat, action = torch.randn(2, 3, 4), torch.eye(2)[torch.zeros(2, 3, dtype=torch.long)]
    with pytest.raises(ValueError, match=r"rewards by stream must have the streams \['a', 'b'\], got \['a'\]"):
        ac.update(feat, action, {"a": torch.zeros(2, 3)}, torch.ones(2, 3))
    with pytest.raises(ValueError, match="pass the rewards as a mapping"):
        ac.update(feat, action, torch.zeros(2, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match="reward streams need at least one stream and REINFORCE"):
        ActorCritic(4, ActionSpec.continuous(1), ActorCriticConfig(units=8, layers=1), dynamics=True, streams={"a": 1})
    assert len(ac.critic_parameters()) == 2 * len(list(ac.critic.parameters()))
    assert sum(len(g["params"]) for g in ac.critic_opt.param_groups) == len(ac.critic_parameters())


@pytest.mark.parametrize("readout, low, high", [("raw", 0.35, 0.65), ("symlog", 0.0, 0.25)])
def test_the_critic_of_a_rarely_paid_return_reads_its_expectation_with_raw_bins(readout, low, high):
    """A return of 10 on one imagined trajectory in 20, whatever the action: the 'raw' critic values the start at the
    expected 0.5, the 'symlog' one at a fraction of it; an unknown readout is named."""
    torch.manual_seed(0)
    config = ActorCriticConfig(units=32, layers=1, critic_lr=3e-3, slow_rate=1.0, value_readout=readout)
    ac = ActorCritic(4, ActionSpec.discrete(2), config)
    feat = torch.randn(1, 1, 4).expand(64, 2, 4).contiguous()
    cont = torch.tensor([1.0, 0.0]).expand(64, 2)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        reward = torch.zeros(64, 2)
        reward[:, 1] = 10.0 * (torch.rand(64, generator=g) < 0.05).float()
        ac.update(feat, ac.policy(feat).sample(), reward, cont)
    with torch.no_grad():
        value = float(ac.value(feat[:, 0]).mean())
    assert low < value < high, value
    with pytest.raises(ValueError, match="value_readout must be 'symlog' or 'raw'"):
        ActorCriticConfig(value_readout="mean")
