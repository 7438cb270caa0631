"""The flat agent: a world model plus one actor-critic trained on imagined trajectories (DreamerV3).

``WorldModelAgent`` is what the flat and the hierarchical agents (agents/director.py) share.
Both implement the agent interface of ARCHITECTURE.md: ``initial_state``, ``act``, ``update``,
``report``, ``state_dict`` and ``load_state_dict``. The recurrent state (the world model's latent
and the previous action) is passed in and out explicitly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from agents.actions import ActionSpec, PolicyDist
from agents.actor_critic import ActorCritic, ActorCriticConfig
from agents.explore import Disagreement, ExploreConfig
from world_models.config import WorldModelConfig
from world_models.networks import frozen
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
    explore: ExploreConfig = field(default_factory=ExploreConfig)
    """Plan2Explore's disagreement as a second reward stream (agents/explore.py); off by default."""


class WorldModelAgent(nn.Module):
    """What every Forethought agent shares: a world model that observes, and learners trained in it.

    Subclasses add their learners in ``__init__`` and implement ``act``, ``learn_in_imagination``
    and ``actor_critics``; checkpoints, optimiser registration with RLlib and data-parallel
    hooks work from ``optimizers()``.
    """

    def __init__(self, obs_space: Mapping[str, Sequence[int]], spec: ActionSpec, world_model: WorldModelConfig,
                 imagination_starts: int):
        super().__init__()
        self.spec = spec
        self.imagination_starts = imagination_starts
        self.world_model = WorldModel(obs_space, spec.dim, world_model)

    def initial_state(self, batch_size: int) -> State:
        """The state before the first observation of an episode: the start latent and a zero action."""
        device = self.world_model.rssm.initial_deter.device
        latent = self.world_model.rssm.initial(batch_size)
        return {**{k: v.detach() for k, v in latent.items()},
                "action": torch.zeros(batch_size, self.spec.dim, device=device)}

    def observe(self, obs: Mapping[str, torch.Tensor], state: State, is_first: torch.Tensor) -> State:
        """The posterior latent after one observation per batch entry [B, ...], reset where ``is_first``."""
        embed = self.world_model.encoder({k: v.unsqueeze(1) for k, v in obs.items()
                                          if k in self.world_model.keys})[:, 0]
        latent = {k: state[k] for k in LATENT_KEYS}
        post, _ = self.world_model.rssm.obs_step(latent, state["action"], embed, is_first)
        return post

    def update(self, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """One world-model update, then the learners' updates on trajectories imagined from its posteriors."""
        metrics, post = self.world_model.update_and_states(batch)
        start = {k: post[k].detach().flatten(0, 1) for k in LATENT_KEYS}
        start.update(self.start_context(post, batch))
        terminal = batch["is_terminal"].float().flatten()
        starts = self.imagination_starts
        if "no_start" in batch:  # replay drew these sequences around rewards for the world model only
            allowed = torch.nonzero(~batch["no_start"].bool().flatten()).squeeze(1)
            if len(allowed):
                if 0 < starts < len(allowed):
                    allowed = allowed[torch.randperm(len(allowed), device=allowed.device)[:starts]]
                start, terminal = {k: v[allowed] for k, v in start.items()}, terminal[allowed]
        elif 0 < starts < len(terminal):  # fewer starts: cheaper updates on small machines
            pick = torch.randperm(len(terminal), device=terminal.device)[:starts]
            start, terminal = {k: v[pick] for k, v in start.items()}, terminal[pick]
        learned = self.learn_in_imagination(start, terminal, post, batch)
        # one device sync for all the learners' metrics
        values = torch.stack([v.detach().float().reshape(()) for v in learned.values()]).tolist()
        metrics.update(zip(learned, values, strict=True))
        return metrics

    def start_context(self, post: State, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Extra per-start tensors [B * T, ...] from the replayed posteriors [B, T, ...] and their batch; they
        are picked along with the imagination starts. None by default."""
        return {}

    def learn_in_imagination(self, start: State, terminal: torch.Tensor, post: State,
                             batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Update the learners from imagination ``start`` states [N, ...] (``terminal`` [N] marks real
        episode ends), the replayed posteriors [B, T, ...] and their batch; return metrics named
        ``<part>/<name>``."""
        raise NotImplementedError

    def act(self, obs: Mapping[str, torch.Tensor], state: State, explore: bool, is_first: torch.Tensor
            ) -> tuple[torch.Tensor, State]:
        """Choose env actions for a batch of observations [B, ...]; ``is_first`` [B] resets the state.

        Returns env actions (indices for discrete kinds, floats for continuous) and the new state.
        """
        raise NotImplementedError

    def actor_critics(self) -> dict[str, ActorCritic]:
        """The agent's actor-critics by name."""
        raise NotImplementedError

    def training_only_modules(self) -> list[str]:
        """Dotted names of the submodules that acting never uses: critics, return scales and the world model's
        decoder and heads. Env runners drop them, and weight syncs to env runners leave them out."""
        parts = ["world_model.decoder", "world_model.reward_head", "world_model.cont_head"]
        for name in self.actor_critics():
            parts += [f"{name}.critic", f"{name}.slow_critic", f"{name}.retnorm", f"{name}.streams"]
        return parts

    def strip_for_acting(self) -> None:
        """Delete the training-only modules in place: what is left can act (``act``, ``initial_state``) but
        not learn."""
        for path in self.training_only_modules():
            parent, _, leaf = path.rpartition(".")
            delattr(self.get_submodule(parent) if parent else self, leaf)

    def compile_networks(self, **options: Any) -> None:
        """``torch.compile`` the world model's training pass, every actor-critic's networks and its loss (a pure
        function of the imagined trajectory) in place; weight names stay."""
        self.world_model.compile_parts(**options)
        for ac in self.actor_critics().values():
            ac.actor.compile(**options)
            for critic, slow_critic, _ in ac.critics().values():
                critic.compile(**options)
                slow_critic.compile(**options)
            ac.loss = torch.compile(ac.loss, **options)  # type: ignore[method-assign]
            ac.values_and_targets = torch.compile(ac.values_and_targets, **options)  # type: ignore[method-assign]
            ac.replay_loss = torch.compile(ac.replay_loss, **options)  # type: ignore[method-assign]

    def optimizers(self) -> dict[str, tuple[torch.optim.Optimizer, list[nn.Parameter]]]:
        """Every optimiser with the parameters it steps, by name (RLlib registers and checkpoints them)."""
        out: dict[str, tuple[torch.optim.Optimizer, list[nn.Parameter]]] = {
            "world_model": (self.world_model.optimizer, list(self.world_model.parameters()))}
        for name, ac in self.actor_critics().items():
            out[f"{name}_actor"] = (ac.actor_opt, list(ac.actor.parameters()))
            out[f"{name}_critic"] = (ac.critic_opt, ac.critic_parameters())
        return out

    def set_sync(self, grad_sync: Callable[[list[nn.Parameter]], None] | None,
                 stat_sync: Callable[[list[torch.Tensor]], None] | None) -> None:
        """Install the data-parallel hooks: gradient averaging and return-scale averaging (None removes)."""
        self.world_model.grad_sync = grad_sync
        for ac in self.actor_critics().values():
            ac.grad_sync, ac.stat_sync = grad_sync, stat_sync

    @torch.no_grad()
    def decode_deter(self, deter: torch.Tensor) -> dict[str, torch.Tensor]:
        """The observation the world model's decoder makes of deterministic states [..., D] (with their prior's
        most likely latents): uint8 images for image keys, raw vectors for vector keys."""
        return self.world_model.decode(self.world_model.rssm.prior_feat(deter))

    def report(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The world model's open-loop predictions, for images and videos."""
        return self.world_model.report(batch)

    def optimizer_state_dict(self) -> dict[str, Any]:
        """State of every optimiser, for checkpoints."""
        return {name: optimizer.state_dict() for name, (optimizer, _) in self.optimizers().items()}

    def load_optimizer_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what ``optimizer_state_dict`` returned."""
        for name, (optimizer, _) in self.optimizers().items():
            optimizer.load_state_dict(state[name])


class DreamerAgent(WorldModelAgent):
    """World model plus one actor-critic: the flat baseline the hierarchical agents must beat."""

    def __init__(self, obs_space: Mapping[str, Sequence[int]], spec: ActionSpec, config: DreamerConfig | None = None):
        self.config = config or DreamerConfig()
        super().__init__(obs_space, spec, self.config.world_model, self.config.imagination_starts)
        ac, explore, wm = self.config.actor_critic, self.config.explore, self.config.world_model
        streams = {"task": 1.0, "explore": explore.weight} if explore.weight else None
        if streams and ac.dynamics_for(spec):
            raise ValueError("exploration (agent.explore.weight > 0) needs a REINFORCE actor: set "
                             "agent.actor_critic.actor_grad=reinforce for continuous actions, or explore.weight=0")
        feat_dim = self.world_model.rssm.feat_dim
        self.actor_critic = ActorCritic(feat_dim, spec, ac, dynamics=ac.dynamics_for(spec), streams=streams)
        if streams:
            self.explore = Disagreement(feat_dim, spec.dim, wm.stoch * wm.classes, explore)

    @torch.no_grad()
    def act(self, obs: Mapping[str, torch.Tensor], state: State, explore: bool, is_first: torch.Tensor
            ) -> tuple[torch.Tensor, State]:
        post = self.observe(obs, state, is_first)
        dist = self.actor_critic.policy(self.world_model.rssm.feat(post))
        action = dist.sample() if explore else dist.mode()
        return self.spec.to_env(action), {**post, "action": action}

    def actor_critics(self) -> dict[str, ActorCritic]:
        return {"actor_critic": self.actor_critic}

    def training_only_modules(self) -> list[str]:
        return super().training_only_modules() + (["explore"] if self.config.explore.weight else [])

    def optimizers(self) -> dict[str, tuple[torch.optim.Optimizer, list[nn.Parameter]]]:
        out = super().optimizers()
        if self.config.explore.weight:
            out["explore"] = (self.explore.optimizer, list(self.explore.parameters()))
        return out

    def set_sync(self, grad_sync: Callable[[list[nn.Parameter]], None] | None,
                 stat_sync: Callable[[list[torch.Tensor]], None] | None) -> None:
        super().set_sync(grad_sync, stat_sync)
        if self.config.explore.weight:
            self.explore.grad_sync, self.explore.stat_sync = grad_sync, stat_sync

    def compile_networks(self, **options: Any) -> None:
        """The parts, and the whole imagination as one region (its horizon unrolled)."""
        super().compile_networks(**options)
        self.imagine = torch.compile(self.imagine, **options)  # type: ignore[method-assign]
        if self.config.explore.weight:
            self.explore.spread = torch.compile(self.explore.spread, **options)  # type: ignore[method-assign]

    def imagine(self, start: State) -> dict[str, torch.Tensor]:
        """Imagined trajectories [N, H + 1, ...] from start states under the actor, with ``actor_out``, the actor's
        outputs in each state (the actor's loss reuses them instead of a second pass). For REINFORCE nothing else
        carries a gradient; with dynamics gradients the actions are reparameterised and the states, rewards and
        continuations carry their gradient to them, the world model's weights held fixed."""
        rssm, actor_critic = self.world_model.rssm, self.actor_critic
        dynamics = actor_critic.dynamics
        outs: list[torch.Tensor] = []

        def policy(state: State) -> torch.Tensor:
            with torch.enable_grad():
                outs.append(actor_critic.actor(rssm.feat(state)))
            if dynamics:
                return PolicyDist(self.spec, outs[-1], actor_critic.config.unimix).rsample()
            return PolicyDist(self.spec, outs[-1].detach(), actor_critic.config.unimix).sample()

        with frozen(self.world_model) if dynamics else torch.no_grad():
            trajectory = self.world_model.imagine(policy, start, self.config.horizon)
            feat = rssm.feat(trajectory)
            out = {"feat": feat, "action": trajectory["action"], "reward": self.world_model.reward(feat),
                   "cont": self.world_model.cont(feat)}
        out["actor_out"] = torch.stack(outs, 1)  # outside no_grad: the stack keeps the actor's gradient path
        return out

    def learn_in_imagination(self, start: State, terminal: torch.Tensor, post: State,
                             batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        trajectory = self.imagine(start)
        # the start states are real: their continuation is known, not predicted (out of place: with dynamics
        # gradients the predictions are still needed for the backward pass)
        trajectory["cont"] = torch.cat([1.0 - terminal[:, None], trajectory["cont"][:, 1:]], 1)
        ac, replay = self.actor_critic, None
        metrics: dict[str, torch.Tensor] = {}
        explored: dict[str, torch.Tensor] = {}
        inputs: dict[str, Any] = dict(trajectory)
        feat = self.world_model.rssm.feat(post) if self.config.explore.weight or ac.config.replay_value > 0 else None
        if feat is not None and self.config.explore.weight:  # the ensemble learns from replay, rewards novelty
            explored = self.explore.update(feat, batch["action"], post["stoch"], batch["is_first"])
            bonus = self.explore.reward(trajectory["feat"], trajectory["action"])
            inputs["reward"] = {"task": trajectory["reward"], "explore": bonus}
            explored.update(reward=bonus[:, 1:].mean(), scale=self.explore.scale.clone())
        if feat is not None and ac.config.replay_value > 0:  # DreamerV3's replay value loss: real sequences too
            loss, metrics = ac.replay_loss(feat, batch["reward"], batch["is_terminal"], batch["is_first"])
            replay = ac.config.replay_value * loss
        metrics.update(ac.update(**inputs, critic_extra=replay))
        return {**{f"actor_critic/{k}": v for k, v in metrics.items()},
                **{f"explore/{k}": v for k, v in explored.items()}}
