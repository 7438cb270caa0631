"""The sub-goal planner's parts: a learned temporal distance, a task value, landmarks from replay, and a search.

- ``TemporalDistance`` predicts how many steps separate a state from a goal (both in the goal space): a
  classifier over 0, 1, ..., ``most`` steps and one class for "farther", trained on pairs of replayed states
  of one episode labelled with their real offset, and on pairs from different sequences labelled "farther".
  Its expected value rewards the worker (closer is better) and tells which goals are reachable.
- ``ValueFunction`` is a two-hot critic of the task return with a slow copy (the actor-critic's recipe
  without an actor): the planner scores the end of a plan with it.
- ``Landmarks`` keeps replayed world-model states, the candidates that sub-goals are chosen from, so that
  every goal is a state that really occurred.
- ``cem_search`` is the cross-entropy method over sequences of candidate indices: sample sequences from a
  categorical per position, keep the best, refit, repeat.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import cast

import torch
from torch import nn

from agents.actions import ActionSpec, PolicyDist
from agents.actor_critic import ActorCriticConfig, StreamCritic
from agents.goals import episode_ends
from agents.returns import critic_nll, critic_targets, replay_critic_loss
from world_models.distributions import TwoHot, twohot_bins
from world_models.networks import MLP
from world_models.rssm import RSSM, State


class TemporalDistance(nn.Module):
    """Steps from states [..., D] to goals [..., D]: logits over 0..``most`` steps and "farther" (``most`` + 1)."""

    def __init__(self, dim: int, most: int, units: int, layers: int, lr: float):
        super().__init__()
        self.most = most
        self.net = nn.Sequential(MLP(3 * dim, units, layers), nn.Linear(units, most + 2))
        self.register_buffer("steps", torch.arange(most + 2, dtype=torch.float32), persistent=False)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=lr)
        #: called with the parameters after backward (data-parallel learners)
        self.grad_sync: Callable[[list[nn.Parameter]], None] | None = None

    steps: torch.Tensor

    def logits(self, state: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Logits [..., most + 2] of states and goals [..., D] that broadcast against each other."""
        from_state, from_goal = self.first_layer(state, goal)
        return self.head(from_state + from_goal)

    def first_layer(self, state: torch.Tensor, goal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first layer's parts from states and from goals [..., units]: it reads ``[state, goal, goal - state]``,
        so its three weight blocks fold into one per input, and the parts of N states and L goals give all N x L
        pairs (``head`` of their sums) for the cost of N + L rows."""
        first = cast(nn.Linear, cast(MLP, self.net[0])[0])
        w_state, w_goal, w_diff = first.weight.split(state.shape[-1], 1)
        return state @ (w_state - w_diff).T, goal @ (w_goal + w_diff).T

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits from the first layer's summed parts (``first_layer``)."""
        for layer in list(cast(MLP, self.net[0]))[1:]:
            hidden = layer(hidden)
        return self.net[1](hidden)

    def expected(self, state: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Expected steps [...] from each state to its goal, "farther" counted as ``most`` + 1."""
        return torch.softmax(self.logits(state, goal), -1) @ self.steps

    def loss(self, state: torch.Tensor, goal: torch.Tensor, steps: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Cross-entropy to the observed offsets [...] (clipped to "farther"); pure."""
        target = steps.long().clamp(0, self.most + 1)
        logits = self.logits(state, goal)
        loss = nn.functional.cross_entropy(logits.flatten(0, -2), target.flatten())
        error = (torch.softmax(logits, -1) @ self.steps - target.float()).abs().mean()
        return loss, {"loss": loss.detach(), "abs_error": error.detach()}

    def update(self, state: torch.Tensor, goal: torch.Tensor, steps: torch.Tensor) -> dict[str, torch.Tensor]:
        loss, metrics = self.loss(state.detach(), goal.detach(), steps)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_sync is not None:
            self.grad_sync(list(self.parameters()))
        metrics["grad_norm"] = nn.utils.clip_grad_norm_(self.parameters(), 100.0)
        self.optimizer.step()
        return metrics


def discounted_reach(logits: torch.Tensor, discount: float, within: int | None = None) -> torch.Tensor:
    """``E[discount^steps]`` [...] under a temporal distance's logits [..., most + 2]: "farther" counts 0, and so
    does any distance beyond ``within`` steps (a goal held for K steps is worth nothing where the worker needs
    longer)."""
    reach = logits.shape[-1] - 1 if within is None else min(within + 1, logits.shape[-1] - 1)
    steps = torch.arange(reach, dtype=logits.dtype, device=logits.device)
    return torch.softmax(logits, -1)[..., :reach] @ discount**steps


def replay_pairs(state: torch.Tensor, is_first: torch.Tensor, most: int, negatives: float
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training pairs for ``TemporalDistance`` from replayed sequences [B, T, D] (``is_first`` [B, T]): each step
    with a later state of its episode 0 to 2 x ``most`` steps on (cut short at the episode's or sequence's end)
    and the real offset, and a share ``negatives`` of the steps with a state of another sequence, labelled
    "farther". Returns (states, goals, steps), flat [B * T, ...]."""
    b, steps = state.shape[:2]
    now = torch.arange(steps, device=state.device).expand(b, steps)
    offset = torch.randint(0, 2 * most + 1, (b, steps), device=state.device)
    target = torch.minimum(now + offset, episode_ends(is_first))
    goal = state.gather(1, target.unsqueeze(-1).expand_as(state))
    offset = target - now
    if negatives and b > 1:
        other = torch.rand(b, steps, device=state.device) < negatives
        shifted = state.roll(1, 0)[:, torch.randperm(steps, device=state.device)]
        goal = torch.where(other.unsqueeze(-1), shifted, goal)
        offset = torch.where(other, most + 1, offset)
    return state.flatten(0, 1), goal.flatten(0, 1), offset.flatten()


@torch.no_grad()
def random_walks(rssm: RSSM, spec: ActionSpec, start: State, walks: int, steps: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The world-model features [N * C * L, F] of the states that C = ``walks`` imagined walks of uniformly random
    actions pass through in L = ``steps`` steps from each of the states [N, ...], and each start's share of them in
    a random order, an index [N, C * L]."""
    state = {k: v.repeat_interleave(walks, 0) for k, v in start.items()}
    device = state["deter"].device
    uniform = PolicyDist(spec, torch.zeros(len(state["deter"]), spec.logits_dim, device=device))
    feats = []
    for _ in range(steps):
        state = rssm.img_step(state, uniform.sample())
        feats.append(rssm.feat(state))
    n = len(start["deter"])
    pool = torch.stack(feats, 1).reshape(n * walks * steps, -1)  # each start's walks in a row
    order = torch.rand(n, walks * steps, device=device).argsort(1)
    return pool, order + walks * steps * torch.arange(n, device=device)[:, None]


def best_returns(reward: torch.Tensor, value: torch.Tensor, cont: torch.Tensor, discount: float, most: int,
                 cut: torch.Tensor | None = None) -> torch.Tensor:
    """The best of the 1- to ``most``-step returns [N, H] from each state of a trajectory [N, H + 1] (reward on
    arrival, continue probability, values to bootstrap from), the steps on cut by the trajectory's end and by
    ``cut`` (another episode starts there; a state that no step of its own episode follows keeps its value): the
    return of the best state it reached within ``most`` steps. A planner that can steer to any state it has seen
    reached within an option is worth at least that; its TD(lambda) return is the behaviour's instead."""
    horizon = reward.shape[1] - 1
    now = torch.arange(horizon, device=reward.device)
    best = torch.full(reward[:, :-1].shape, -torch.inf, device=reward.device)
    total, scale = torch.zeros_like(best), torch.ones_like(best)
    inside = torch.ones_like(best, dtype=torch.bool)
    for k in range(1, min(most, horizon) + 1):
        ahead = (now + k).clamp(max=horizon)
        if cut is not None:
            inside = inside & (cut[:, ahead] == 0)
        total = total + scale * reward[:, ahead]
        scale = scale * discount * cont[:, ahead]
        best = torch.where((now + k <= horizon) & inside, torch.maximum(best, total + scale * value[:, ahead]), best)
    return best if cut is None else torch.where(best.isinf(), value[:, :-1], best)


class ValueFunction(StreamCritic):
    """A two-hot critic of the return with a slow copy, trained on lambda-returns of imagined trajectories."""

    def __init__(self, feat_dim: int, config: ActorCriticConfig):
        super().__init__(feat_dim, config)
        self.config = config
        self.register_buffer("bins", twohot_bins(config.bins, raw=self.raw), persistent=False)
        self.optimizer = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr, eps=config.eps)
        self.grad_sync: Callable[[list[nn.Parameter]], None] | None = None

    bins: torch.Tensor

    def value(self, feat: torch.Tensor, slow: bool = False) -> torch.Tensor:
        return TwoHot((self.slow_critic if slow else self.critic)(feat), self.bins, self.raw).mean()

    def loss(self, feat: torch.Tensor, reward: torch.Tensor, cont: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, values [N, H + 1], returns [N, H]) on an imagined trajectory [N, H + 1] (reward on arrival,
        continue probability): its lambda-returns."""
        c = self.config
        feat = feat.detach()
        logits = self.critic(feat)
        value, returns, weight = critic_targets(logits, self.bins, reward, cont, c.discount, c.lam, self.raw)
        with torch.no_grad():
            slow = self.value(feat[:, :-1], slow=True)
        return critic_nll(logits, self.bins, returns, weight, slow, c.slow_reg, self.raw), value, returns

    def update(self, feat: torch.Tensor, reward: torch.Tensor, cont: torch.Tensor,
               replayed: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
               replay_weight: float = 0.0, replay_best: int = 0) -> dict[str, torch.Tensor]:
        """One Adam step on a trajectory [N, H + 1] (reward on arrival, continue probability), and with
        ``replay_weight`` on ``replayed`` sequences too (features, rewards, terminal and first flags [B, T] of
        sequences that may cross episode boundaries: ``replay_critic_loss``; their targets the best of the 1- to
        ``replay_best``-step returns where that is set), then the slow copy's EMA step."""
        c = self.config
        loss, value, returns = self.loss(feat, reward, cont)
        self.retnorm.update(returns)
        metrics: dict[str, torch.Tensor] = {}
        if replayed is not None and replay_weight:
            targets = partial(best_returns, discount=c.discount, most=replay_best) if replay_best else None
            replay_loss, metrics = replay_critic_loss(self.critic, self.slow_critic, self.bins, c.discount, c.lam,
                                                      c.slow_reg, *replayed, returns=targets, raw=self.raw)
            loss = loss + replay_weight * replay_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_sync is not None:
            self.grad_sync(list(self.critic.parameters()))
        norm = nn.utils.clip_grad_norm_(self.critic.parameters(), c.grad_clip)
        self.optimizer.step()
        with torch.no_grad():
            for slow_p, fast in zip(self.slow_critic.parameters(), self.critic.parameters(), strict=True):
                slow_p.lerp_(fast, c.slow_rate)
        return {"loss": loss.detach(), "value": value.mean(), "return": returns.mean(), "grad_norm": norm,
                "return_scale": self.retnorm.scale(), **metrics}


def reach_scores(reach: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """The cheap rule's score of goals: ``reach x (value - lowest value)``, reach (``TemporalDistance.reach``) and
    values [..., M] (the lowest over the last axis). A goal counts for its value, discounted by the steps it takes
    to get there, and for nothing where it is out of reach."""
    return reach * (value - value.min(-1, keepdim=True).values)


class Landmarks(nn.Module):
    """Up to ``size`` replayed world-model features [L, F], refreshed a few at a time; kept in the state dict (so
    they travel to env runners and into checkpoints). ``count`` of them are filled."""

    def __init__(self, size: int, feat_dim: int):
        super().__init__()
        self.register_buffer("feat", torch.zeros(size, feat_dim))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    feat: torch.Tensor
    count: torch.Tensor

    @torch.no_grad()
    def refresh(self, feat: torch.Tensor, replace: int) -> None:
        """Fill the empty slots from replayed features [N, F] (drawn at random), then replace ``replace``
        random landmarks by random replayed features."""
        size, filled = len(self.feat), int(self.count)
        fill = min(size - filled, len(feat))
        pick = torch.randperm(len(feat), device=feat.device)
        if fill:
            self.feat[filled : filled + fill] = feat[pick[:fill]]
            self.count.add_(fill)
        replace = min(replace, len(feat) - fill, int(self.count))
        if replace > 0:
            slots = torch.randperm(int(self.count), device=feat.device)[:replace]
            self.feat[slots] = feat[pick[fill : fill + replace]]

    def filled(self) -> torch.Tensor:
        return self.feat[: max(int(self.count), 1)]


def cem_search(score: Callable[[torch.Tensor], torch.Tensor], batch: int, candidates: int, length: int,
               samples: int, iterations: int, elites: int, prior: torch.Tensor | None = None, mix: float = 0.2
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The cross-entropy method over sequences of ``length`` candidate indices, for each of ``batch`` problems.

    ``score(sequences [batch, samples, length]) -> [batch, samples]``, higher is better. The first round
    samples from ``prior`` logits [batch, length, candidates] (uniform without); each round refits a
    categorical per position to the ``elites`` best sequences seen so far (this round's and the last elites),
    mixed with ``mix`` of the last distribution so that no candidate's probability drops to 0. Returns the best
    sequence seen [batch, length] and its score [batch]."""
    if prior is not None:
        probs = torch.softmax(prior, -1)
    else:
        probs = torch.full((batch, length, candidates), 1.0 / candidates)
    elite = torch.zeros(batch, 0, length, dtype=torch.long, device=probs.device)
    elite_scores = torch.zeros(batch, 0, device=probs.device)
    for _ in range(iterations):
        seqs = torch.multinomial(probs.reshape(-1, candidates), samples, replacement=True)
        seqs = torch.cat([elite, seqs.reshape(batch, length, samples).transpose(1, 2)], 1)  # [B, E + S, L]
        scores = torch.cat([elite_scores, score(seqs[:, elite.shape[1]:])], 1)
        top = scores.topk(min(elites, samples), dim=1)
        elite, elite_scores = seqs.gather(1, top.indices.unsqueeze(-1).expand(-1, -1, length)), top.values
        counts = nn.functional.one_hot(elite, candidates).float().mean(1)  # [B, L, C]
        probs = (1 - mix) * counts + mix * probs
    return elite[:, 0], elite_scores[:, 0]
