"""Directed exploration for the flat agent: Plan2Explore's ensemble disagreement as a second reward stream.

An ensemble of small networks learns to predict the next posterior latent (the one-hot ``stoch`` of the next
observation) from a replayed state and action. Where the agent has been often, the members agree; where it has
not, they disagree, and the spread of their predictions over an imagined step is an intrinsic reward that the
actor-critic learns beside the task reward, with its own critic and return scale (``ActorCritic`` streams). The
reward is divided by its running mean, so that it counts about 1 per step whatever the latent's size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ExploreConfig:
    """The disagreement bonus; off (weight 0) by default."""

    weight: float = 0.0
    """Weight of the exploration stream's advantage beside the task's (each divided by its own return scale); 0 turns
    exploration off. Plan2Explore in DreamerV3 weighs it 0.1."""
    models: int = 5
    """Members of the ensemble."""
    units: int = 64
    """Hidden units of each member (one hidden layer). The ensemble's cost, its pass over every imagined step and its
    own update, was about 35 ms an update at the key-door preset's 4,096 imagined steps on one CPU core (an
    ad-hoc timing; README, Training)."""
    lr: float = 3e-4
    """Adam learning rate of the ensemble."""
    stat_rate: float = 0.01
    """EMA rate of the running mean that the reward is divided by."""

    def __post_init__(self) -> None:
        if self.weight < 0 or self.models < 2 or self.units < 1 or self.lr <= 0 or not 0 < self.stat_rate <= 1:
            raise ValueError(f"explore needs weight >= 0, models >= 2, units >= 1, lr > 0 and stat_rate in (0, 1], "
                             f"got weight={self.weight}, models={self.models}, units={self.units}, lr={self.lr}, "
                             f"stat_rate={self.stat_rate}")


class Disagreement(nn.Module):
    """An ensemble of one-hidden-layer networks (linear -> LayerNorm -> SiLU -> linear) from [state, action] to the
    next latent, its members' weights stacked so that one batched product serves them all."""

    def __init__(self, feat_dim: int, action_dim: int, target_dim: int, config: ExploreConfig):
        super().__init__()
        self.config = c = config
        k, inputs = c.models, feat_dim + action_dim
        self.w1 = nn.Parameter(torch.randn(k, inputs, c.units) / inputs**0.5)
        self.b1 = nn.Parameter(torch.zeros(k, 1, c.units))
        self.w2 = nn.Parameter(torch.randn(k, c.units, target_dim) / c.units**0.5)
        self.b2 = nn.Parameter(torch.zeros(k, 1, target_dim))
        self.register_buffer("scale", torch.zeros(()))
        self.optimizer = torch.optim.Adam([self.w1, self.b1, self.w2, self.b2], lr=c.lr, eps=1e-5)
        #: data-parallel hooks: gradient averaging after backward, averaging of the running mean after it moves
        self.grad_sync: Callable[[list[nn.Parameter]], None] | None = None
        self.stat_sync: Callable[[list[torch.Tensor]], None] | None = None

    scale: torch.Tensor

    def forward(self, feat: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Each member's prediction [K, ..., target] of the next latent from states and actions [..., F], [..., A]."""
        x = torch.cat([feat, action], -1)
        lead = x.shape[:-1]
        hidden = F.silu(F.layer_norm(torch.baddbmm(self.b1, x.reshape(1, -1, x.shape[-1]).expand(len(self.w1), -1, -1),
                                                   self.w1), (self.config.units,)))
        return torch.baddbmm(self.b2, hidden, self.w2).reshape(len(self.w1), *lead, -1)

    def update(self, feat: torch.Tensor, action: torch.Tensor, stoch: torch.Tensor, is_first: torch.Tensor
               ) -> dict[str, torch.Tensor]:
        """One Adam step on replayed sequences [B, T, ...]: from state t and action t, the latent at t + 1, where
        t + 1 does not start another episode."""
        target = stoch.flatten(2)[:, 1:].detach()
        keep = (~is_first[:, 1:].bool()).float()
        pred = self(feat[:, :-1].detach(), action[:, :-1].float())
        error = ((pred - target) ** 2).mean(-1)  # [K, B, T - 1]
        loss = (error * keep).sum() / (keep.sum().clamp(min=1.0) * len(self.w1))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_sync is not None:
            self.grad_sync(list(self.parameters()))
        self.optimizer.step()
        return {"loss": loss.detach()}

    def spread(self, feat: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The members' disagreement [N, H] over the steps of imagined trajectories [N, H + 1, ...]: the standard
        deviation of their predictions of the latent after each step, averaged over the latent; pure."""
        pred = self(feat[:, :-1], action[:, :-1])
        centred = pred - pred.mean(0)  # the standard deviation written out: torch's std over the leading dim is
        return (centred.square().sum(0) / (len(pred) - 1)).sqrt().mean(-1)  # ten times slower on CPUs

    @torch.no_grad()
    def reward(self, feat: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The exploration reward on arrival [N, H + 1] of imagined trajectories [N, H + 1, ...]: the members'
        ``spread`` over the step that led there (0 at the start), divided by its running mean."""
        spread = self.spread(feat, action)
        self.scale.lerp_(spread.mean(), torch.where(self.scale > 0, self.config.stat_rate, 1.0))
        if self.stat_sync is not None:
            self.stat_sync([self.scale])
        return torch.cat([torch.zeros_like(spread[:, :1]), spread / self.scale.clamp(min=1e-8)], 1)
