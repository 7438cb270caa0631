"""Returns and critic targets: lambda-returns of imagined trajectories and of replayed sequences that cross episode
boundaries, and a two-hot critic's loss on them (the actor-critic's, the planner's task value's)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from world_models.distributions import TwoHot

Targets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""(value [N, H + 1], lambda-returns [N, H], state weights [N, H]) of a trajectory."""


def lambda_returns(reward: torch.Tensor, value: torch.Tensor, cont: torch.Tensor,
                   discount: float, lam: float, cut: torch.Tensor | None = None) -> torch.Tensor:
    """Lambda-returns [N, H] of a trajectory of H + 1 states.

    ``reward[:, t]`` is received on arriving at state t, ``cont[:, t]`` is the probability that
    the episode goes on from state t, ``value[:, t]`` estimates the return from state t. With
    R_H = v_H: R_t = r_{t+1} + discount * c_{t+1} * ((1 - lam) * v_{t+1} + lam * R_{t+1}), or R_t = v_t where
    ``cut[:, t + 1]`` (another episode starts there: a replayed sequence's return never reaches into it).
    """
    assert reward.shape == value.shape == cont.shape, (
        f"reward {tuple(reward.shape)}, value {tuple(value.shape)} and cont {tuple(cont.shape)} must match")
    horizon = reward.shape[1] - 1
    returns = [value[:, -1]]
    for t in reversed(range(horizon)):
        bootstrap = (1 - lam) * value[:, t + 1] + lam * returns[-1]
        ahead = reward[:, t + 1] + discount * cont[:, t + 1] * bootstrap
        returns.append(ahead if cut is None else torch.lerp(ahead, value[:, t], cut[:, t + 1]))
    return torch.stack(returns[::-1][:-1], 1)


def replay_returns(reward: torch.Tensor, value: torch.Tensor, terminal: torch.Tensor, is_first: torch.Tensor,
                   discount: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Lambda-returns [B, T - 1] along replayed sequences [B, T] that may cross episode boundaries, and each state's
    weight (0 where the next step starts another episode). ``reward[:, t]`` is received on arriving at state t,
    ``terminal`` marks states with no future, ``is_first`` episode starts; a state cut off by a time limit or the
    sequence's end bootstraps from its value."""
    assert terminal.shape == is_first.shape == value.shape, (
        f"value {tuple(value.shape)}, terminal {tuple(terminal.shape)} and is_first {tuple(is_first.shape)} must match")
    boundary = is_first.float()
    returns = lambda_returns(reward, value, 1.0 - terminal.float(), discount, lam, cut=boundary)
    return returns, 1.0 - boundary[:, 1:]


@torch.no_grad()
def critic_targets(critic_logits: torch.Tensor, bins: torch.Tensor, reward: torch.Tensor, cont: torch.Tensor,
                   discount: float, lam: float, raw: bool = False) -> Targets:
    """(value [N, H + 1], lambda-returns [N, H], state weights [N, H]) of a trajectory from a two-hot critic's
    outputs on it; a state's weight is the discounted chance that the episode is still running there. ``raw``: the
    critic's bins are raw values (``TwoHot``), here and in the functions below."""
    value = TwoHot(critic_logits.detach(), bins, raw).mean()
    returns = lambda_returns(reward, value, cont, discount, lam)
    weight = torch.cumprod(torch.cat([cont[:, :1], discount * cont[:, 1:]], 1), 1)[:, :-1]
    return value, returns, weight


def critic_nll(critic_logits: torch.Tensor, bins: torch.Tensor, returns: torch.Tensor, weight: torch.Tensor,
               slow: torch.Tensor, slow_reg: float, raw: bool = False) -> torch.Tensor:
    """A two-hot critic's loss on a trajectory [N, H + 1]: the weighted negative log-likelihood of the
    lambda-returns [N, H] plus ``slow_reg`` times that of the slow critic's values [N, H]."""
    critic = TwoHot(critic_logits[:, :-1], bins, raw)
    return (weight * -(critic.log_prob(returns) + slow_reg * critic.log_prob(slow))).mean()


def replay_critic_loss(critic: nn.Module, slow_critic: nn.Module, bins: torch.Tensor, discount: float, lam: float,
                       slow_reg: float, feat: torch.Tensor, reward: torch.Tensor, terminal: torch.Tensor,
                       is_first: torch.Tensor, returns: Callable[..., torch.Tensor] | None = None, raw: bool = False
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A two-hot critic's loss on replayed sequences [B, T]: its negative log-likelihood of their ``replay_returns``
    plus the slow regulariser, on detached posterior features [B, T, F]; pure. ``returns(reward, slow values, cont,
    cut=is_first)`` replaces the lambda-returns (the planner's best k-step returns), bootstrapping from the slow
    copy; either way no return reaches into another episode, and a state cut off by a time limit bootstraps."""
    feat = feat.detach()
    logits = critic(feat)
    with torch.no_grad():
        value = TwoHot(logits, bins, raw).mean()
        if returns is None:
            targets, weight = replay_returns(reward.float(), value, terminal, is_first, discount, lam)
            slow = TwoHot(slow_critic(feat[:, :-1]), bins, raw).mean()
        else:
            slow = TwoHot(slow_critic(feat), bins, raw).mean()
            targets = returns(reward.float(), slow, 1.0 - terminal.float(), cut=is_first.float())
            slow, weight = slow[:, :-1], 1.0 - is_first.float()[:, 1:]
    loss = critic_nll(logits, bins, targets, weight, slow, slow_reg, raw)
    return loss, {"replay_loss": loss.detach(), "replay_value": value.mean(),
                  "replay_return": (weight * targets).sum() / weight.sum().clamp(min=1.0)}
