"""The flat agent: a world model plus one actor-critic trained on imagined trajectories (DreamerV3).

It implements the agent interface of ARCHITECTURE.md: ``initial_state``, ``act``, ``update``,
``report``, ``state_dict`` and ``load_state_dict``. The recurrent state (the world model's latent
and the previous action) is passed in and out explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from agents.actions import ActionSpec
from agents.actor_critic import ActorCritic, ActorCriticConfig
from world_models.config import WorldModelConfig
from world_models.rssm import State
from world_models.world_model import WorldModel

LATENT_KEYS = ("deter", "stoch", "logits")


@dataclass(frozen=True)
class DreamerConfig:
    """The flat agent's hyperparameters."""

    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    """The world model."""
    actor_critic: ActorCriticConfig = field(default_factory=ActorCriticConfig)
    """The actor-critic."""
    horizon: int = 15
    """Imagination horizon, in steps."""
    imagination_starts: int = 0
    """Replayed states to start imagining from per update, drawn at random; 0 uses all B x T (DreamerV3)."""


class DreamerAgent(nn.Module):
    """World model plus one actor-critic: the flat baseline the hierarchical agents must beat."""

    def __init__(self, obs_space: Mapping[str, Sequence[int]], spec: ActionSpec, config: DreamerConfig | None = None):
        super().__init__()
        self.config = config or DreamerConfig()
        self.spec = spec
        self.world_model = WorldModel(obs_space, spec.dim, self.config.world_model)
        self.actor_critic = ActorCritic(self.world_model.rssm.feat_dim, spec, self.config.actor_critic)

    def initial_state(self, batch_size: int) -> State:
        """The state before the first observation of an episode: the start latent and a zero action."""
        device = self.world_model.rssm.initial_deter.device
        latent = self.world_model.rssm.initial(batch_size)
        return {**{k: v.detach() for k, v in latent.items()},
                "action": torch.zeros(batch_size, self.spec.dim, device=device)}

    @torch.no_grad()
    def act(self, obs: Mapping[str, torch.Tensor], state: State, explore: bool, is_first: torch.Tensor
            ) -> tuple[torch.Tensor, State]:
        """Choose env actions for a batch of observations [B, ...]; ``is_first`` [B] resets the state.

        Returns env actions (indices for discrete kinds, floats for continuous) and the new state.
        """
        rssm = self.world_model.rssm
        embed = self.world_model.encoder({k: v.unsqueeze(1) for k, v in obs.items()
                                          if k in self.world_model.keys})[:, 0]
        latent = {k: state[k] for k in LATENT_KEYS}
        post, _ = rssm.obs_step(latent, state["action"], embed, is_first)
        dist = self.actor_critic.policy(rssm.feat(post))
        action = dist.sample() if explore else dist.mode()
        return self.spec.to_env(action), {**post, "action": action}

    def imagine(self, start: State) -> dict[str, torch.Tensor]:
        """Imagined trajectories [N, H + 1, ...] from start states under the actor, without gradients."""
        rssm, actor_critic = self.world_model.rssm, self.actor_critic
        with torch.no_grad():
            trajectory = self.world_model.imagine(lambda s: actor_critic.policy(rssm.feat(s)).sample(), start,
                                                  self.config.horizon)
            feat = rssm.feat(trajectory)
            return {"feat": feat, "action": trajectory["action"], "reward": self.world_model.reward(feat),
                    "cont": self.world_model.cont(feat)}

    def update(self, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """One world-model update, then one actor-critic update on trajectories imagined from its posteriors."""
        metrics, post = self.world_model.update_and_states(batch)
        start = {k: post[k].detach().flatten(0, 1) for k in LATENT_KEYS}
        terminal = batch["is_terminal"].float().flatten()
        starts = self.config.imagination_starts
        if 0 < starts < len(terminal):  # fewer starts: cheaper updates on small machines
            pick = torch.randperm(len(terminal), device=terminal.device)[:starts]
            start, terminal = {k: v[pick] for k, v in start.items()}, terminal[pick]
        trajectory = self.imagine(start)
        # the start states are real: their continuation is known, not predicted
        trajectory["cont"][:, 0] = 1.0 - terminal
        ac_metrics = self.actor_critic.update(**trajectory)
        values = torch.stack([v.detach().float() for v in ac_metrics.values()]).tolist()
        metrics.update({f"actor_critic/{k}": v for k, v in zip(ac_metrics, values, strict=True)})
        return metrics

    def report(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The world model's open-loop predictions, for images and videos."""
        return self.world_model.report(batch)

    def optimizer_state_dict(self) -> dict[str, Any]:
        """State of every optimiser, for checkpoints."""
        return {"world_model": self.world_model.optimizer.state_dict(),
                "actor": self.actor_critic.actor_opt.state_dict(),
                "critic": self.actor_critic.critic_opt.state_dict()}

    def load_optimizer_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what ``optimizer_state_dict`` returned."""
        self.world_model.optimizer.load_state_dict(state["world_model"])
        self.actor_critic.actor_opt.load_state_dict(state["actor"])
        self.actor_critic.critic_opt.load_state_dict(state["critic"])
