"""One actor-critic for imagined trajectories: the flat agent's, the manager's and the worker's.

DreamerV3's recipe: a REINFORCE actor with entropy regularisation whose advantages are divided by
a percentile return scale, and a two-hot symlog critic trained on lambda-returns and regularised
towards a slow EMA copy of itself. Instances differ only in their action spec, their input size
(a worker also reads its goal) and their config.
"""

from __future__ import annotations

import copy
import math
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from agents.actions import ActionSpec, PolicyDist
from agents.returns import Targets, critic_nll, critic_targets, lambda_returns, replay_critic_loss
from world_models.distributions import ReturnNormalizer, TwoHot, twohot_bins
from world_models.networks import MLP, frozen


@dataclass(frozen=True)
class ActorCriticConfig:
    """Hyperparameters of the actor-critic; defaults follow DreamerV3."""

    units: int = 256
    """Width of the actor's and critic's MLPs."""
    layers: int = 2
    """Hidden layers of each MLP."""
    bins: int = 255
    """Bins of the two-hot critic."""
    value_readout: str = "symlog"
    """How the critic's two-hot bins read out: 'symlog' (the prediction ``symexp`` of the expected symlog bin, which
    reads a rarely reached large return at a fraction of its expectation) or 'raw' (the bins as raw values, the
    prediction their expectation; DreamerV3's later code), as ``world_model.reward_readout`` for rewards."""
    discount: float = 1 - 1 / 333
    """Discount per step (an effective horizon of 333 steps)."""
    lam: float = 0.95
    """Lambda of the lambda-returns."""
    entropy: float = 3e-4
    """Weight of the actor's entropy bonus."""
    unimix: float = 0.01
    """Uniform mix of categorical policies."""
    slow_rate: float = 0.02
    """EMA rate of the slow critic, per update."""
    slow_reg: float = 1.0
    """Weight of the critic's regulariser towards the slow critic."""
    actor_lr: float = 3e-5
    """Adam learning rate of the actor."""
    critic_lr: float = 3e-5
    """Adam learning rate of the critic."""
    eps: float = 1e-5
    """Adam epsilon."""
    grad_clip: float = 100.0
    """Global gradient-norm clip of each network."""
    center_advantages: bool = False
    """Subtract the batch's mean advantage (Director normalises advantages so). With dense rewards a critic
    that still lags its targets makes nearly every advantage positive, which pushes up whatever actions
    were sampled; centring leaves only which actions did better than the others."""
    replay_value: float = 0.0
    """Weight of DreamerV3's replay value loss (0.3 in its recipe): the critic also learns lambda-returns along the
    replayed sequences, from their real rewards and episode ends, bootstrapped by itself on the posteriors. 0 trains
    the critic on imagination only. Only the flat agent passes replayed sequences."""
    actor_grad: str = "auto"
    """How the actor's loss reaches it: 'reinforce' (log-probabilities times advantages), 'dynamics' (the
    lambda-returns differentiated through the imagined trajectory: actions reparameterised, the world model
    and the critic held fixed), or 'auto': dynamics for continuous actions, reinforce otherwise. Only the
    flat agent implements dynamics."""

    entropy_target: float = 0.0
    """0 keeps the entropy bonus's weight at ``entropy``. Otherwise the weight adapts, as Director's does, to hold the
    policy's mean entropy near this fraction of its maximum (Director: 0.5): after each update it is multiplied by
    1 + ``entropy_rate`` while the entropy is below the band from target / 1.1 to target x 1.1, by 1 - rate while
    above it, and kept within [entropy_min, entropy_max], starting from ``entropy``. Discrete kinds only."""
    entropy_rate: float = 0.1
    """How fast an adaptive entropy weight moves per update (see entropy_target)."""
    entropy_min: float = 1e-5
    """Lowest adaptive entropy weight."""
    entropy_max: float = 1.0
    """Highest adaptive entropy weight."""

    def __post_init__(self) -> None:
        if self.actor_grad not in ("auto", "reinforce", "dynamics"):
            raise ValueError(f"actor_grad must be 'auto', 'reinforce' or 'dynamics', got {self.actor_grad!r}")
        if not 0.0 <= self.entropy_target < 1.0 or not 0.0 < self.entropy_rate < 1.0:
            raise ValueError(f"entropy_target must be a fraction from 0 to below 1 and entropy_rate one above 0 and "
                             f"below 1, got {self.entropy_target} and {self.entropy_rate}")
        if self.value_readout not in ("symlog", "raw"):
            raise ValueError(f"value_readout must be 'symlog' or 'raw', got {self.value_readout!r}")
        if self.units < 1 or self.layers < 0 or self.bins < 2:
            raise ValueError(f"actor-critic units must be at least 1, layers at least 0 and bins at least 2, got "
                             f"units={self.units}, layers={self.layers}, bins={self.bins}")

    @property
    def raw_values(self) -> bool:
        """Whether the critics' bins are raw values (``value_readout`` 'raw')."""
        return self.value_readout == "raw"

    def dynamics_for(self, spec: ActionSpec) -> bool:
        """Whether an actor of this action spec learns by backpropagation through the dynamics."""
        return self.actor_grad == "dynamics" or (self.actor_grad == "auto" and spec.kind == "continuous")


_T = typing.TypeVar("_T")


def critic_network(feat_dim: int, c: ActorCriticConfig) -> nn.Sequential:
    """A two-hot critic's MLP; its output layer starts at zero, so values start at exactly 0."""
    out = nn.Linear(c.units, c.bins)
    nn.init.zeros_(out.weight)
    nn.init.zeros_(out.bias)
    return nn.Sequential(MLP(feat_dim, c.units, c.layers), out)


class StreamCritic(nn.Module):
    """The critic of one further reward stream: its own two-hot critic, slow copy and return scale."""

    def __init__(self, feat_dim: int, c: ActorCriticConfig):
        super().__init__()
        self.raw = c.raw_values
        self.critic = critic_network(feat_dim, c)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.retnorm = ReturnNormalizer()


Critics = dict[str, tuple[nn.Module, nn.Module, ReturnNormalizer]]
"""Per reward stream: (critic, slow critic, return scale)."""


class ActorCritic(nn.Module):
    """Actor and critic over features ``[..., feat_dim]``, trained on imagined trajectories.

    With ``streams`` (reward stream name to weight, e.g. ``{"task": 1.0, "explore": 0.1}``), as in Director,
    every stream has a critic and a return scale of its own, rewards are passed as a mapping by stream, and the
    actor's advantage is the weighted sum of the streams' advantages, each divided by its own scale. The first
    stream's critic is ``critic``; the others' are in ``streams``."""

    def __init__(self, feat_dim: int, spec: ActionSpec, config: ActorCriticConfig | None = None,
                 dynamics: bool = False, streams: Mapping[str, float] | None = None):
        super().__init__()
        self.config = c = config or ActorCriticConfig()
        self.spec = spec
        #: the actor learns from the lambda-returns' gradient through the imagined trajectory (its caller
        #: imagines with reparameterised actions), not from REINFORCE
        self.dynamics = dynamics
        if streams is not None and (not streams or dynamics):
            raise ValueError("reward streams need at least one stream and REINFORCE (actor_grad 'reinforce')")
        #: weight of each reward stream's advantage; one unnamed stream without ``streams``
        self.stream_weights = dict(streams) if streams else {"": 1.0}
        #: the first stream's name (set here: torch.compile cannot trace ``next(iter(...))`` of a dict in the loss)
        self.first_stream = next(iter(self.stream_weights))
        self.actor = nn.Sequential(MLP(feat_dim, c.units, c.layers), nn.Linear(c.units, spec.logits_dim))
        self.critic = critic_network(feat_dim, c)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.raw = c.raw_values
        self.register_buffer("bins", twohot_bins(c.bins, raw=self.raw), persistent=False)
        self.retnorm = ReturnNormalizer()
        self.streams = nn.ModuleDict({name: StreamCritic(feat_dim, c) for name in list(self.stream_weights)[1:]})
        if c.entropy_target:
            if spec.kind == "continuous":
                raise ValueError("entropy_target applies to discrete kinds of action (a normal's entropy has no "
                                 "maximum); use a fixed entropy weight for continuous actions")
            self.max_entropy = float(sum(math.log(n) for n in spec.sizes))
            self.register_buffer("entropy_weight", torch.tensor(float(c.entropy)))
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.actor_lr, eps=c.eps)
        self.critic_opt = torch.optim.Adam(self.critic_parameters(), lr=c.critic_lr, eps=c.eps)
        #: called with the parameters after backward, before clipping (data-parallel learners)
        self.grad_sync: Callable[[list[nn.Parameter]], None] | None = None
        #: called with the return-scale statistics after each update, to average them in place
        self.stat_sync: Callable[[list[torch.Tensor]], None] | None = None

    bins: torch.Tensor
    entropy_weight: torch.Tensor

    def critics(self) -> Critics:
        """(critic, slow critic, return scale) of every reward stream, the first stream's first."""
        first = self.first_stream
        out: Critics = {first: (self.critic, self.slow_critic, self.retnorm)}
        for name, stream in self.streams.items():
            assert isinstance(stream, StreamCritic)
            out[name] = (stream.critic, stream.slow_critic, stream.retnorm)
        return out

    def critic_parameters(self) -> list[nn.Parameter]:
        """The trained critics' parameters (every stream's), which ``critic_opt`` steps."""
        return [p for critic, _, _ in self.critics().values() for p in critic.parameters()]

    def rewards(self, reward: torch.Tensor | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The rewards by stream: a tensor without ``streams``, a mapping with exactly the stream names with."""
        names = list(self.stream_weights)
        if isinstance(reward, Mapping):
            if sorted(reward) != sorted(names):
                raise ValueError(f"rewards by stream must have the streams {names}, got {sorted(reward)}")
            return dict(reward)
        if names != [""]:
            raise ValueError(f"this actor-critic has the reward streams {names}: pass the rewards as a mapping")
        return {"": reward}

    def policy(self, feat: torch.Tensor) -> PolicyDist:
        """The action distribution in each state."""
        return PolicyDist(self.spec, self.actor(feat), self.config.unimix)

    def value(self, feat: torch.Tensor, slow: bool = False) -> torch.Tensor:
        """Expected return [...] of each state, by the critic or its slow copy."""
        return TwoHot((self.slow_critic if slow else self.critic)(feat), self.bins, self.raw).mean()

    def targets(self, critic_logits: torch.Tensor, reward: torch.Tensor, cont: torch.Tensor) -> Targets:
        """``critic_targets`` with this actor-critic's bins, discount and lambda."""
        return critic_targets(critic_logits, self.bins, reward, cont, self.config.discount, self.config.lam, self.raw)

    def values_and_targets(self, feat: torch.Tensor, rewards: Mapping[str, torch.Tensor], cont: torch.Tensor
                           ) -> tuple[dict[str, torch.Tensor], dict[str, Targets]]:
        """Every stream's critic outputs on ``feat`` (with gradient) and its ``targets``, computed once for the return
        scales and the losses; pure, so that the agent's ``compile_networks`` compiles it as one region. The critics
        see detached states: with dynamics gradients the states carry the actor's gradient, which the critics' loss
        must not reach."""
        logits = {name: critic(feat.detach()) for name, (critic, _, _) in self.critics().items()}
        return logits, {name: self.targets(logits[name], rewards[name], cont) for name in logits}

    def replay_loss(self, feat: torch.Tensor, reward: torch.Tensor, terminal: torch.Tensor, is_first: torch.Tensor
                    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The first stream's critic loss on replayed sequences [B, T] (``replay_value``): ``replay_critic_loss``."""
        c = self.config
        return replay_critic_loss(self.critic, self.slow_critic, self.bins, c.discount, c.lam, c.slow_reg, feat, reward,
                                  terminal, is_first, raw=self.raw)

    def loss(self, feat: torch.Tensor, action: torch.Tensor, reward: torch.Tensor | Mapping[str, torch.Tensor],
             cont: torch.Tensor, critic_logits: torch.Tensor | Mapping[str, torch.Tensor] | None = None,
             actor_out: torch.Tensor | None = None, targets: Targets | Mapping[str, Targets] | None = None,
             ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Actor and critic losses of an imagined trajectory; pure.

        Args:
            feat: states [N, H + 1, F], detached from the world model (but for the actions' gradient, with dynamics).
            action: the actions taken in them [N, H + 1, A].
            reward, cont: predicted reward on arrival and continue probability [N, H + 1] (with dynamics, with the
                gradient to the actions); with ``streams``, the rewards by stream.
            critic_logits, targets: ``values_and_targets(feat, reward, cont)`` (by stream with ``streams``), when the
                caller has them; without either, both are computed here.
            actor_out: the actor's outputs on ``feat`` (with gradient), when imagination computed them.
        Returns (actor_loss, critic_loss, metrics); metrics are detached tensors.
        """
        c = self.config
        n, steps = feat.shape[:2]
        rewards, critics = self.rewards(reward), self.critics()
        assert action.shape[:2] == (n, steps) and all(r.shape == cont.shape == (n, steps) for r in rewards.values()), (
            f"feat {tuple(feat.shape)}, action {tuple(action.shape)}, reward "
            f"{[tuple(r.shape) for r in rewards.values()]}, cont {tuple(cont.shape)} must share [N, H + 1]")
        if critic_logits is None or targets is None:
            critic_logits, targets = self.values_and_targets(feat, rewards, cont)
        logits, target = self._by_stream(critic_logits), self._by_stream(targets)
        first = self.first_stream
        value, _, weight = target[first]
        with torch.no_grad():
            scales = {name: critics[name][2].scale() for name in critics}
            advantage = sum(self.stream_weights[name] * (target[name][1] - target[name][0][:, :-1]) / scales[name]
                            for name in critics)
            assert isinstance(advantage, torch.Tensor)
            if c.center_advantages:
                advantage = advantage - (weight * advantage).sum() / weight.sum()
        if actor_out is None:
            dist = self.policy(feat[:, :-1])
        else:
            assert actor_out.shape == (n, steps, self.spec.logits_dim), (
                f"actor_out {tuple(actor_out.shape)} must be {(n, steps, self.spec.logits_dim)}")
            dist = PolicyDist(self.spec, actor_out[:, :-1], c.unimix)
        entropy = dist.entropy()
        if self.dynamics:
            # the returns' own gradient, through the imagined states to the actions; the critic is held fixed on
            # this path (its loss below trains it on detached states)
            with frozen(self.critic):
                value_path = TwoHot(self.critic(feat), self.bins, self.raw).mean()
            objective = (lambda_returns(rewards[first], value_path, cont, c.discount, c.lam) - value[:, :-1]
                         ) / scales[first]
        else:
            objective = dist.log_prob(action[:, :-1]) * advantage
        bonus = self.entropy_weight if c.entropy_target else c.entropy
        actor_loss = -(weight * (objective + bonus * entropy)).mean()
        critic_loss = torch.zeros((), device=feat.device)
        metrics = {"entropy": entropy.mean().detach(), "advantage": advantage.mean()}
        for name, (_, slow_critic, _) in critics.items():
            slow = TwoHot(slow_critic(feat[:, :-1].detach()), self.bins, self.raw).mean()
            critic_loss = critic_loss + critic_nll(logits[name], self.bins, target[name][1], weight, slow, c.slow_reg,
                                                   self.raw)
            prefix = f"{name}_" if name != first else ""
            metrics.update({f"{prefix}return": target[name][1].mean(), f"{prefix}value": target[name][0].mean(),
                            f"{prefix}return_scale": scales[name], f"{prefix}reward": rewards[name].detach().mean()})
        metrics.update({"actor_loss": actor_loss.detach(), "critic_loss": critic_loss.detach()})
        return actor_loss, critic_loss, metrics

    @staticmethod
    def _by_stream(given: _T | Mapping[str, _T]) -> dict[str, _T]:
        """What the caller gave, by stream (a single value for the one unnamed stream)."""
        return dict(given) if isinstance(given, Mapping) else {"": given}

    def update(self, feat: torch.Tensor, action: torch.Tensor, reward: torch.Tensor | Mapping[str, torch.Tensor],
               cont: torch.Tensor, actor_extra: torch.Tensor | None = None, actor_out: torch.Tensor | None = None,
               critic_extra: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Update the return scales, step both optimisers, then move the slow critics towards the critics.
        ``actor_extra`` and ``critic_extra``, scalar losses on the actor's and the critics' outputs (with gradient,
        e.g. ``replay_value`` times ``replay_loss``), are added to their losses; ``actor_out`` are the actor's
        outputs on ``feat`` where imagination computed them with gradient."""
        c = self.config
        rewards, critics = self.rewards(reward), self.critics()
        logits, targets = self.values_and_targets(feat, rewards, cont)
        with torch.no_grad():  # the return scales first take in this batch's returns, as in DreamerV3
            for name, (_, _, retnorm) in critics.items():
                retnorm.update(targets[name][1])
            if self.stat_sync is not None:
                self.stat_sync([t for _, _, retnorm in critics.values() for t in (retnorm.low, retnorm.high)])
        actor_loss, critic_loss, metrics = self.loss(feat, action, rewards, cont, logits, actor_out, targets)
        if actor_extra is not None:
            actor_loss = actor_loss + actor_extra
        if critic_extra is not None:
            critic_loss = critic_loss + critic_extra
        self.actor_opt.zero_grad(set_to_none=True)
        self.critic_opt.zero_grad(set_to_none=True)
        (actor_loss + critic_loss).backward()  # disjoint parameters: one backward serves both
        critic_parameters = self.critic_parameters()
        if self.grad_sync is not None:
            self.grad_sync([*self.actor.parameters(), *critic_parameters])
        metrics["actor_grad_norm"] = nn.utils.clip_grad_norm_(self.actor.parameters(), c.grad_clip)
        metrics["critic_grad_norm"] = nn.utils.clip_grad_norm_(critic_parameters, c.grad_clip)
        self.actor_opt.step()
        self.critic_opt.step()
        with torch.no_grad():
            for critic, slow_critic, _ in critics.values():
                for slow, fast in zip(slow_critic.parameters(), critic.parameters(), strict=True):
                    slow.lerp_(fast, c.slow_rate)
        if c.entropy_target:
            metrics["entropy_weight"] = self.adapt_entropy(metrics["entropy"])
        return metrics

    @torch.no_grad()
    def adapt_entropy(self, entropy: torch.Tensor) -> torch.Tensor:
        """Move the adaptive entropy weight for this update's mean entropy (see ``entropy_target``); returns it."""
        c = self.config
        share = entropy / self.max_entropy
        factor = torch.where(share < c.entropy_target / 1.1, 1 + c.entropy_rate,
                             torch.where(share > c.entropy_target * 1.1, 1 - c.entropy_rate, 1.0))
        self.entropy_weight.mul_(factor).clamp_(c.entropy_min, c.entropy_max)
        if self.stat_sync is not None:
            self.stat_sync([self.entropy_weight])
        return self.entropy_weight.clone()
