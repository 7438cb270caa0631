"""Action spaces as the agents see them, and the policy distributions over them.

Actions travel as float vectors: one-hot for Discrete, concatenated one-hots for MultiDiscrete,
and values in [-1, 1] for Box (``envs`` rescales every bounded Box to that range).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from world_models.distributions import categorical_index


@dataclass(frozen=True)
class ActionSpec:
    """What the policy must output: ``kind`` is 'discrete', 'multi_discrete' or 'continuous'."""

    kind: str
    sizes: tuple[int, ...]
    """Choices per dimension (discrete kinds) or (dims,) for continuous actions."""

    def __post_init__(self) -> None:
        if self.kind not in ("discrete", "multi_discrete", "continuous"):
            raise ValueError(f"action kind must be discrete, multi_discrete or continuous, got {self.kind!r}")
        if not self.sizes or min(self.sizes) < 1 or (self.kind == "discrete" and len(self.sizes) != 1):
            raise ValueError(f"bad action sizes {self.sizes} for kind {self.kind!r}")

    @classmethod
    def discrete(cls, n: int) -> ActionSpec:
        return cls("discrete", (int(n),))

    @classmethod
    def multi_discrete(cls, nvec: tuple[int, ...]) -> ActionSpec:
        return cls("multi_discrete", tuple(int(n) for n in nvec))

    @classmethod
    def continuous(cls, dims: int) -> ActionSpec:
        return cls("continuous", (int(dims),))

    @property
    def dim(self) -> int:
        """Length of the action vector the world model takes."""
        return self.sizes[0] if self.kind == "continuous" else sum(self.sizes)

    @property
    def logits_dim(self) -> int:
        """Outputs the actor's last layer needs."""
        return 2 * self.sizes[0] if self.kind == "continuous" else sum(self.sizes)

    def to_env(self, action: torch.Tensor) -> torch.Tensor:
        """Action vectors [..., dim] -> what the env takes: indices [...] or [..., dims], or floats."""
        if self.kind == "continuous":
            return action
        indices = torch.stack([part.argmax(-1) for part in action.split(self.sizes, -1)], -1)
        return indices[..., 0] if self.kind == "discrete" else indices

    def from_env(self, action: torch.Tensor) -> torch.Tensor:
        """The inverse of ``to_env``: env actions -> action vectors [..., dim]."""
        if self.kind == "continuous":
            return action.float()
        action = action.long()
        if self.kind == "discrete":
            action = action.unsqueeze(-1)
        parts = [F.one_hot(action[..., i], n).float() for i, n in enumerate(self.sizes)]
        return torch.cat(parts, -1)


class PolicyDist:
    """The actor's distribution: independent categoricals (1% uniform mix) or a bounded normal.

    ``sample`` and ``mode`` return action vectors; gradients reach the actor through
    ``log_prob`` (REINFORCE) and ``entropy``, for every kind of action, or through ``rsample``'s actions
    (backpropagation through the dynamics).
    """

    def __init__(self, spec: ActionSpec, out: torch.Tensor, unimix: float = 0.01,
                 min_std: float = 0.1, max_std: float = 1.0):
        self.spec = spec
        if spec.kind == "continuous":
            mean, std = out.chunk(2, -1)
            self.mean = torch.tanh(mean)
            self.std = (max_std - min_std) * torch.sigmoid(std + 2.0) + min_std
        else:
            self.probs = [
                (1 - unimix) * torch.softmax(part, -1) + unimix / part.shape[-1]
                for part in out.float().split(spec.sizes, -1)
            ]

    def sample(self) -> torch.Tensor:
        """A sampled action vector [..., dim], without gradient."""
        with torch.no_grad():
            if self.spec.kind == "continuous":
                return (self.mean + self.std * torch.randn_like(self.mean)).clamp(-1, 1)
            return torch.cat([_one_hot_sample(p) for p in self.probs], -1)

    def rsample(self) -> torch.Tensor:
        """A sampled action vector [..., dim] with a gradient to the actor's outputs: reparameterised for continuous
        actions (clipped to [-1, 1], the gradient passed straight through the clip), straight-through one-hots for
        discrete kinds. The same random numbers as ``sample``."""
        if self.spec.kind == "continuous":
            raw = self.mean + self.std * torch.randn_like(self.mean)
            return raw + (raw.clamp(-1, 1) - raw).detach()
        return torch.cat([_one_hot_sample(p) + p - p.detach() for p in self.probs], -1)

    def mode(self) -> torch.Tensor:
        """The most likely action vector [..., dim], without gradient."""
        with torch.no_grad():
            if self.spec.kind == "continuous":
                return self.mean.clone()
            return torch.cat([F.one_hot(p.argmax(-1), p.shape[-1]).float() for p in self.probs], -1)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        """Log-probability [...] of action vectors [..., dim]."""
        if self.spec.kind == "continuous":
            normal = torch.distributions.Normal(self.mean, self.std)
            return normal.log_prob(action).sum(-1)
        parts = action.split(self.spec.sizes, -1)
        return sum((part * p.log()).sum(-1) for part, p in zip(parts, self.probs, strict=True))  # type: ignore[return-value]

    def entropy(self) -> torch.Tensor:
        """Entropy [...], summed over action dimensions."""
        if self.spec.kind == "continuous":
            return torch.distributions.Normal(self.mean, self.std).entropy().sum(-1)
        return sum(-(p * p.log()).sum(-1) for p in self.probs)  # type: ignore[return-value]


def _one_hot_sample(probs: torch.Tensor) -> torch.Tensor:
    return F.one_hot(categorical_index(probs), probs.shape[-1]).float()
