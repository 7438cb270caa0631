"""Director's goal space: an autoencoder of world-model states into discrete codes, and the goal rewards.

The manager acts in the code space (8 categoricals of 8 classes by default); a chosen code is
decoded into a goal state for the worker, who is rewarded by how far its state points the same
way as the goal (``max_cosine``). The manager's own rewards are gathered over each K-step chunk
(``chunk_sums``); its exploration bonus is the autoencoder's reconstruction error of the states it
reaches (novel states reconstruct badly).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from world_models.distributions import CategoricalLatent
from world_models.networks import MLP


@dataclass(frozen=True)
class GoalConfig:
    """Hyperparameters of the goal autoencoder."""

    groups: int = 8
    """Categorical variables in a goal code."""
    classes: int = 8
    """Classes per variable."""
    units: int = 512
    """Width of the encoder's and decoder's MLPs."""
    layers: int = 2
    """Hidden layers of each MLP."""
    kl_scale: float = 1.0
    """Weight of KL(code posterior || uniform prior)."""
    kl_free: float = 6.0
    """Free nats: a code's KL below this is not penalised. Codes may carry up to groups x ln(classes) nats
    (16.6 for 8 x 8); with 1 free nat they kept only whether the key was carried in the key-door task, with
    6 they also told positions apart, which the worker needs for goals to steer by."""
    lr: float = 1e-4
    """Adam learning rate."""
    updates: int = 1
    """Adam steps on each replayed batch per learner update. The states the autoencoder compresses move as the
    world model learns; in short runs one step per update left it behind them (see ``random_code_match``)."""
    grad_clip: float = 100.0
    """Global gradient-norm clip."""

    def __post_init__(self) -> None:
        if self.updates < 1:
            raise ValueError(f"goal updates must be at least 1 Adam step per learner update, got {self.updates}")


class GoalAutoencoder(nn.Module):
    """Compresses states [..., D] into one-hot codes [..., G, C] and decodes them back."""

    def __init__(self, state_dim: int, config: GoalConfig | None = None):
        super().__init__()
        self.config = c = config or GoalConfig()
        self.state_dim = state_dim
        self.encoder = nn.Sequential(MLP(state_dim, c.units, c.layers), nn.Linear(c.units, c.groups * c.classes))
        self.decoder = nn.Sequential(MLP(c.groups * c.classes, c.units, c.layers), nn.Linear(c.units, state_dim))
        self.optimizer = torch.optim.Adam(self.parameters(), lr=c.lr)
        #: called with the parameters after backward, before clipping (data-parallel learners)
        self.grad_sync: Callable[[list[nn.Parameter]], None] | None = None

    def encode(self, state: torch.Tensor) -> CategoricalLatent:
        """The posterior over codes of each state (no uniform mix: the prior is uniform already)."""
        logits = self.encoder(state)
        return CategoricalLatent(logits.reshape(*logits.shape[:-1], self.config.groups, self.config.classes), 0.0)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Goal states [..., D] from one-hot codes [..., G, C]."""
        return self.decoder(code.flatten(-2))

    def reconstruct(self, state: torch.Tensor) -> torch.Tensor:
        """States [..., D] encoded into their most likely codes and decoded back: the goals they stand for."""
        return self.decode(self.encode(state).mode())

    @torch.no_grad()
    def reconstruction_error(self, state: torch.Tensor) -> torch.Tensor:
        """Squared error [...] of encoding (mode) then decoding: the manager's exploration bonus."""
        return (self.reconstruct(state) - state).square().mean(-1)

    def loss(self, state: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Squared error summed over the state plus ``kl_scale`` x max(``kl_free``, KL to the uniform prior),
        on states [..., D]; pure. (The error summed, not averaged, over a state's numbers keeps it in
        proportion to the KL's nats, as a Gaussian log-likelihood would.)"""
        c = self.config
        dist = self.encode(state)
        recon = (self.decode(dist.sample()) - state).square().sum(-1)
        # KL(q || uniform) = log(classes) per group - entropy(q)
        kl = c.groups * torch.log(torch.tensor(float(c.classes))) - dist.entropy()
        loss = (recon + c.kl_scale * torch.clamp(kl, min=c.kl_free)).mean()
        return loss, {"loss": loss.detach(), "recon": recon.mean().detach(), "kl": kl.mean().detach()}

    def update(self, state: torch.Tensor) -> dict[str, torch.Tensor]:
        """``updates`` clipped Adam steps on replayed (detached) states; the metrics of the last."""
        for _ in range(self.config.updates):
            loss, metrics = self.loss(state.detach())
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.grad_sync is not None:
                self.grad_sync(list(self.parameters()))
            metrics["grad_norm"] = nn.utils.clip_grad_norm_(self.parameters(), self.config.grad_clip)
            self.optimizer.step()
        return metrics

    @torch.no_grad()
    def random_code_match(self, state: torch.Tensor, codes: int = 64) -> torch.Tensor:
        """Mean over ``codes`` uniformly random codes of the best ``max_cosine`` of the decoded goal to any of the
        states [N, D]: how close the goals of an untrained (uniform) manager come to states that really occur.
        Near 0, such goals point nowhere the worker can go and teach it nothing. The codes come from a generator
        of their own with a fixed seed: the same codes at every call, and the global random stream, which
        training draws from, is left as it was (a metric must not change a seeded run)."""
        c = self.config
        generator = torch.Generator(device=state.device).manual_seed(0)
        index = torch.randint(c.classes, (codes, c.groups), device=state.device, generator=generator)
        goal = self.decode(nn.functional.one_hot(index, c.classes).to(state.dtype))
        return best_match(goal, state).mean()


def max_cosine(goal: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """Director's goal reward: goal . state / max(|goal|, |state|)^2, in [-1, 1], 1 only at state == goal.

    Plain cosine would pay for pointing the right way at any length; dividing by the larger norm
    squared also asks for the right length.
    """
    norm = torch.maximum(goal.norm(dim=-1), state.norm(dim=-1)).clamp(min=1e-8)
    return (goal * state).sum(-1) / norm.square()


def best_match(goal: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """For each goal [G, D], its highest ``max_cosine`` to any of the states [N, D]: [G]. Near 1, the goal is
    a state that really occurs."""
    return max_cosine(goal[:, None], state[None]).max(1).values


def chunk_sums(values: torch.Tensor, every: int) -> torch.Tensor:
    """Sum [N, T] values over consecutive chunks of ``every`` steps: [N, ceil(T / every)].

    The manager, which acts once per chunk, receives the chunk's summed reward.
    """
    n, steps = values.shape
    pad = -steps % every
    padded = torch.cat([values, values.new_zeros(n, pad)], 1) if pad else values
    return padded.reshape(n, -1, every).sum(-1)


def goal_segments(trajectory: Mapping[str, torch.Tensor], every: int,
                  reward: Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]) -> dict[str, torch.Tensor]:
    """A worker's view of an imagined trajectory [N, H + 1, ...] (``feat``, ``action``, ``cont``, ``goal`` and what
    ``reward`` reads): cut into K-step segments [N * H / K, K + 1, ...] that each hold the goal chosen at their
    start, read as ``[feat, goal]``. ``reward(goal, segment)`` gives each segment's rewards [M, K + 1]. A later
    segment's first continuation is the chance of reaching it, so it counts as much as that chance."""
    chunks = (trajectory["feat"].shape[1] - 1) // every
    alive = torch.cumprod(trajectory["cont"], 1)  # chance the episode still runs at each step
    segments = []
    for j in range(chunks):
        part = {key: v[:, j * every : (j + 1) * every + 1] for key, v in trajectory.items()}
        goal = part["goal"][:, :1].expand_as(part["goal"])
        cont = part["cont"].clone()
        cont[:, 0] = alive[:, j * every]
        segments.append({"feat": torch.cat([part["feat"], goal], -1), "action": part["action"],
                         "reward": reward(goal, part), "cont": cont})
    return {key: torch.cat([s[key] for s in segments], 0) for key in segments[0]}


def episode_ends(is_first: torch.Tensor) -> torch.Tensor:
    """For each step of replayed sequences (``is_first`` [B, T] marks episode starts), the index [B, T] of the last
    step of its episode within the sequence."""
    b, steps = is_first.shape
    upcoming = torch.full((b,), steps, dtype=torch.long, device=is_first.device)
    following = []  # index of the first step of the next episode after each step (steps if none in the sequence)
    for t in reversed(range(steps)):
        following.append(upcoming)
        upcoming = torch.where(is_first[:, t], t, upcoming)
    return torch.stack(following[::-1], 1) - 1


def future_index(is_first: torch.Tensor, most: int, count: int | None = None) -> torch.Tensor:
    """For each step of replayed sequences (``is_first`` [B, T] marks episode starts), the index [B, T] (or ``count``
    of them, [B, T, count]) of a step 1 to ``most`` steps (uniformly) later in the same sequence and episode, cut
    short at the episode's or the sequence's last step."""
    b, steps = is_first.shape
    shape = (b, steps) if count is None else (b, steps, count)
    offset = torch.randint(1, most + 1, shape, device=is_first.device)
    now, ends = torch.arange(steps, device=is_first.device), episode_ends(is_first)
    if count is not None:
        now, ends = now[:, None], ends[..., None]
    return torch.minimum(now + offset, ends)


def future_states(state: torch.Tensor, is_first: torch.Tensor, most: int) -> torch.Tensor:
    """Hindsight goals [B, T, D] of replayed sequences of states [B, T, D]: for each step, the state 1 to ``most``
    steps (uniformly) later in the same sequence and episode, cut short at the episode's or the sequence's last
    step (so a last step's hindsight goal is itself: already reached). ``is_first`` [B, T] marks episode starts."""
    target = future_index(is_first, most)
    return state.gather(1, target.unsqueeze(-1).expand_as(state))
