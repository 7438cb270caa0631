"""The hierarchical planner: sub-goals chosen by search among replayed states, reached by a worker.

Every ``every`` (K) env steps the planner picks a goal; a goal-conditioned worker acts towards it. Unlike
Director's manager, which decodes goals from codes that no real state may take, the planner's goals are
*landmarks*: world-model states of replayed experience (``planning.Landmarks``), in the same centred goal
space as Director's (the deterministic state minus its running mean). Learned alongside the world model:

- a temporal distance (``planning.TemporalDistance``): steps from a state to a goal, learned from replayed
  pairs. The worker's reward at each step is ``1 - distance / (most + 1)``: 1 at the goal, 0 "farther";
- the worker: an ``ActorCritic`` over ``[features, goal]`` trained in imagination on K-step segments, towards
  hindsight goals (states that replayed sequences really reached 1 to K steps later: reachable, and a signal
  from the first update, before any task reward) and towards the goals the planner picks;
- a task value (``planning.ValueFunction``) of imagined trajectories in which goals are picked by the cheap
  rule below, every K steps.

Picking a goal. The cheap rule scores each landmark g from a state s by ``E[discount^d(s, g)] x (V(g) - V_min)``,
the expectation over the temporal distance's classes with any distance beyond K steps counting 0 (reachable
within the option and valuable; V_min, the lowest landmark value, makes the scores non-negative). At acting time the
planner searches: the cross-entropy method (``planning.cem_search``) over sequences of ``options`` landmarks,
its first round drawn from the cheap rule's scores, each sequence scored by imagining the worker (its most
likely actions) pursuing the goals in turn for K steps each: the predicted task reward on the way, discounted
by the predicted continuation, plus the task value where the imagined worker really ends up. The best
sequence's first goal is held for K steps. Exploring, a share ``explore_goals`` of the options take a landmark
at random instead (the worker goes where experience has been, and from there further).

Tasks that draw a new layout each episode (key door, key chain) need goals of the agent's own episode (``goals``):
a landmark of another episode shows another layout (on KeyDoorVector 98% of them), and no worker reaches it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from agents.actions import ActionSpec
from agents.actor_critic import ActorCritic, ActorCriticConfig
from agents.dreamer import LATENT_KEYS
from agents.goals import future_index, future_states, goal_segments
from agents.options import OptionAgent
from agents.planning import (
    Landmarks,
    TemporalDistance,
    ValueFunction,
    cem_search,
    discounted_reach,
    random_walks,
    reach_scores,
    replay_pairs,
)
from world_models.config import WorldModelConfig
from world_models.rssm import State


@dataclass(frozen=True)
class PlannerConfig:
    """The planner's hyperparameters."""

    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    """The world model."""
    worker: ActorCriticConfig = field(
        default_factory=lambda: ActorCriticConfig(discount=0.9, center_advantages=True))
    """The worker's actor-critic (a short horizon: its goals last K steps)."""
    value: ActorCriticConfig = field(default_factory=lambda: ActorCriticConfig(discount=0.99))
    """The task value's critic (its actor settings are unused); its discount also discounts plans."""
    every: int = 8
    """K: env steps each goal is held for."""
    horizon: int = 16
    """Imagination horizon in env steps for the value and the worker; a multiple of ``every``."""
    imagination_starts: int = 0
    """Replayed states to start imagining from per update, drawn at random; 0 uses all B x T."""
    landmarks: int = 256
    """Replayed states kept as candidate goals."""
    landmark_refresh: int = 8
    """Landmarks replaced by new replayed states per update."""
    most: int = 16
    """The temporal distance's range: 0 to ``most`` steps, and "farther"."""
    distance_units: int = 128
    """Width of the temporal distance's MLP."""
    distance_lr: float = 3e-4
    """Adam learning rate of the temporal distance."""
    negatives: float = 0.25
    """Share of the temporal distance's training pairs whose goal is a state of another sequence ("farther")."""
    options: int = 2
    """Goals in a searched sequence."""
    samples: int = 64
    """Sequences per round of the search."""
    iterations: int = 3
    """Rounds of the search."""
    elites: int = 8
    """Best sequences the search refits to."""
    candidates: int = 32
    """Random landmarks the cheap rule picks the best of, per imagined option (scoring all is costly)."""
    explore_goals: float = 0.25
    """Share of options that pick a random landmark, while exploring (and in imagination)."""
    goals: str = "landmarks"
    """Where goals come from: 'landmarks' (replayed states of any episode), or for tasks that draw a new layout each
    episode, where other episodes' landmarks lie out of reach, the own episode's: 'episode' (in training
    ``candidates`` real states of the start's sequence 1 to ``horizon`` steps ahead; acting, the states of
    ``candidates`` imagined random walks of ``options`` x K steps from the current state) or 'walks' (random
    walks in training too: ``walks`` of K steps from each imagined state)."""
    walks: int = 4
    """Random walks per imagined state in training with goals 'walks'."""
    hindsight: float = 0.5
    """Share of the imagination starts from which the worker also trains for one K-step segment towards a
    hindsight goal."""
    worker_task_weight: float = 0.0
    """Weight of the predicted task reward in the worker's reward, beside the goal reward (0: the goal alone, as
    Director's worker). Above 0 the worker also heads for the task's reward on its way to a goal."""
    replay_value: float = 0.0
    """Weight of the task value's loss on the replayed sequences themselves (their real rewards: TD(lambda) of the
    behaviour that collected them) beside its loss in imagination; 0: imagination alone."""
    replay_best: int = 0
    """With ``replay_value``: 0 trains on the replayed sequences' TD(lambda) returns; n >= 1 on the best of their 1-
    to n-step returns (the value of steering to the best state reached within n steps, as the planner can)."""
    stat_rate: float = 0.01
    """EMA rate, per update, of the running mean of replayed deter states (the centre of the goal space)."""
    timing_every: int = 50
    """Updates between two timed searches from a replayed state (the metric ``planner/plan_ms``)."""

    def __post_init__(self) -> None:
        if self.every < 1 or self.horizon < self.every or self.horizon % self.every:
            raise ValueError(f"horizon ({self.horizon}) must be a positive multiple of every ({self.every})")
        for name in ("landmarks", "candidates", "walks", "most", "options", "samples", "iterations", "elites",
                     "timing_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"planner {name} must be at least 1, got {getattr(self, name)}")
        if self.goals not in ("landmarks", "episode", "walks"):
            raise ValueError(f"planner goals must be 'landmarks', 'episode' or 'walks', got {self.goals!r}")
        for name in ("worker_task_weight", "replay_value", "replay_best"):
            if getattr(self, name) < 0:
                raise ValueError(f"planner {name} must be at least 0, got {getattr(self, name)}")
        for name in ("explore_goals", "hindsight", "negatives"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"planner {name} must be a share from 0 to 1, got {getattr(self, name)}")
        if self.elites > self.samples:
            raise ValueError(f"planner elites ({self.elites}) cannot exceed samples ({self.samples})")
        if self.worker.actor_grad == "dynamics":
            raise ValueError("actor_grad 'dynamics' is implemented for the flat agent only; the planner's worker "
                             "learns by REINFORCE ('auto' or 'reinforce')")


class PlannerAgent(OptionAgent):
    """World model, landmarks, temporal distance, task value and worker.

    The acting state holds the world model's latent and last action plus ``goal`` [B, D] (the landmark pursued,
    in the goal space) and ``steps_left`` [B] (0 asks for a new goal at the next step).
    """

    def __init__(self, obs_space: Mapping[str, Sequence[int]], spec: ActionSpec,
                 config: PlannerConfig | None = None):
        self.config = c = config or PlannerConfig()
        super().__init__(obs_space, spec, c.world_model, c.imagination_starts)
        rssm, deter = self.world_model.rssm, c.world_model.deter
        self.every, self.goal_dim = c.every, deter
        self.landmarks = Landmarks(c.landmarks, rssm.feat_dim)
        self.distance = TemporalDistance(deter, c.most, c.distance_units, 2, c.distance_lr)
        self.task_value = ValueFunction(rssm.feat_dim, c.value)
        self.worker = ActorCritic(rssm.feat_dim + deter, spec, c.worker)
        self.register_buffer("state_mean", torch.zeros(deter))
        self.register_buffer("plan_ms", torch.zeros(()))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.stat_sync: Callable[[list[torch.Tensor]], None] | None = None

    state_mean: torch.Tensor
    plan_ms: torch.Tensor
    updates: torch.Tensor

    def goal_state(self, deter: torch.Tensor) -> torch.Tensor:
        """Deter states [..., D] in the goal space: centred by their running mean."""
        return deter - self.state_mean

    # --- choosing goals -----------------------------------------------------------------------
    # Goals are states of a pool [P, F] of world-model features: the landmarks by default, or (goals 'episode') the
    # replayed batch's states in training and imagined random walks' states while acting.
    def cheap_scores(self, deter: torch.Tensor, index: torch.Tensor | None = None,
                     pool: torch.Tensor | None = None) -> torch.Tensor:
        """The cheap rule's score [N, M] of goals from states [N, D]: the expected discount^distance of reaching
        them within K steps (0 beyond: the goal is held for K) x (value - lowest candidate's value); of the pool's
        states ``index`` [N, M] (default pool: the landmarks), or of all of them."""
        pool = self.landmarks.filled() if pool is None else pool
        value = self.task_value.value(pool)
        goals = self.goal_state(pool[:, : self.config.world_model.deter])
        from_state, from_goal = self.distance.first_layer(self.goal_state(deter), goals)
        if index is None:  # every goal from every state: the parts broadcast
            from_goal, value = from_goal[None], value[None]
        else:
            from_goal, value = from_goal[index], value[index]
        logits = self.distance.head(from_state[:, None] + from_goal)
        return reach_scores(discounted_reach(logits, self.config.value.discount, self.every), value)

    def landmark_goal(self, index: torch.Tensor, pool: torch.Tensor | None = None) -> torch.Tensor:
        """Goal-space states [..., D] of the pool's states ``index`` [...] (default pool: the landmarks)."""
        pool = self.landmarks.filled() if pool is None else pool
        return self.goal_state(pool[index][..., : self.config.world_model.deter])

    def pick_goals(self, deter: torch.Tensor, explore: float, index: torch.Tensor | None = None,
                   pool: torch.Tensor | None = None) -> torch.Tensor:
        """Goals [N, D]: the cheap rule's best of the candidates ``index`` [N, M] of the pool (default:
        ``candidates`` random landmarks), or with probability ``explore`` the first of them (a random one)."""
        n = len(deter)
        if index is None:
            count = len(self.landmarks.filled())
            index = torch.randint(count, (n, min(self.config.candidates, count)), device=deter.device)
        best = index.gather(1, self.cheap_scores(deter, index, pool).argmax(-1, keepdim=True))[:, 0]
        chosen = torch.where(torch.rand(n, device=deter.device) < explore, index[:, 0], best)
        return self.landmark_goal(chosen, pool)

    def walk_pool(self, start: State, walks: int | None = None, steps: int | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Goals of the agent's own episode: ``planning.random_walks`` from states [N, ...], by default
        ``candidates`` walks of ``options`` x K steps."""
        c = self.config
        return random_walks(self.world_model.rssm, self.spec, {k: start[k] for k in LATENT_KEYS},
                            walks or c.candidates, steps or c.options * c.every)

    def rollout_value(self, start: State, goals: torch.Tensor) -> torch.Tensor:
        """Predicted return [N] of the worker (most likely actions) pursuing goals [N, P, D] in turn for K steps
        each from states [N, ...]: discounted task rewards on the way plus the discounted value at the end."""
        rssm, wm, discount = self.world_model.rssm, self.world_model, self.config.value.discount
        state = {k: start[k] for k in LATENT_KEYS}
        total = torch.zeros(goals.shape[0], device=goals.device)
        alive = torch.ones_like(total)
        for p in range(goals.shape[1]):
            for _ in range(self.config.every):
                action = self.worker.policy(torch.cat([rssm.feat(state), goals[:, p]], -1)).mode()
                state = rssm.img_step(state, action, sample=False)
                feat = rssm.feat(state)
                alive = alive * discount
                total = total + alive * wm.reward(feat)
                alive = alive * wm.cont(feat)
        return total + alive * self.task_value.value(feat)

    @torch.no_grad()
    def plan(self, start: State, index: torch.Tensor | None = None, pool: torch.Tensor | None = None
             ) -> torch.Tensor:
        """The search's best first goal [N, D] from states [N, ...], among the pool's states ``index`` [N, M]
        (default pool: the landmarks), or all of them."""
        c = self.config
        n = len(start["deter"])
        # the first position's prior; later positions uniform
        scores = self.cheap_scores(start["deter"], index, pool)
        count = scores.shape[-1]

        def goals(seqs: torch.Tensor) -> torch.Tensor:  # candidate numbers [N, ...] -> goal states [N, ..., D]
            rows = seqs if index is None else index.gather(1, seqs.reshape(n, -1)).reshape(seqs.shape)
            return self.landmark_goal(rows, pool)
        prior = torch.zeros(n, c.options, count, device=scores.device)
        prior[:, 0] = scores / scores.std(-1, correction=0, keepdim=True).clamp(min=1e-6)
        repeated = {k: start[k].repeat_interleave(c.samples, 0) for k in LATENT_KEYS}

        def score(seqs: torch.Tensor) -> torch.Tensor:
            return self.rollout_value(repeated, goals(seqs).flatten(0, 1)).reshape(n, c.samples)

        best, _ = cem_search(score, n, count, c.options, c.samples, c.iterations, c.elites, prior=prior)
        return goals(best[:, :1])[:, 0]

    def goal_observation(self, goal: torch.Tensor) -> dict[str, torch.Tensor]:
        """The observation the world model's decoder makes of goals [..., D] (an acting state's ``goal``)."""
        return self.decode_deter(goal + self.state_mean)

    # --- acting -------------------------------------------------------------------------------
    def new_goals(self, post: State, feat: torch.Tensor, new: torch.Tensor, held: dict[str, torch.Tensor],
                  explore: bool) -> dict[str, torch.Tensor]:
        index = new.nonzero()[:, 0]
        chosen = self.choose({k: post[k][index] for k in LATENT_KEYS}, explore)
        return {"goal": held["goal"].index_put((index,), chosen)}

    @torch.no_grad()
    def choose(self, start: State, explore: bool) -> torch.Tensor:
        """Goals [N, D] for states [N, ...]: the search's, or while exploring with probability ``explore_goals`` a
        random candidate (a landmark, or with goals 'episode' a state of the random walks)."""
        pool, candidates = self.walk_pool(start) if self.config.goals != "landmarks" else (None, None)
        chosen = self.plan(start, candidates, pool)
        if explore and self.config.explore_goals:
            n = len(chosen)
            count = len(self.landmarks.filled()) if candidates is None else candidates.shape[1]
            pick = torch.randint(count, (n, 1), device=chosen.device)
            random = self.landmark_goal((pick if candidates is None else candidates.gather(1, pick))[:, 0], pool)
            swap = torch.rand(n, device=chosen.device) < self.config.explore_goals
            chosen = torch.where(swap.unsqueeze(-1), random, chosen)
        return chosen

    # --- learning -----------------------------------------------------------------------------
    def actor_critics(self) -> dict[str, ActorCritic]:
        return {"worker": self.worker}

    def training_only_modules(self) -> list[str]:
        # planning imagines with the reward and continuation heads, and scores with the distance and the task value
        return ["world_model.decoder", "worker.critic", "worker.slow_critic", "worker.retnorm", "worker.streams",
                "task_value.slow_critic", "task_value.retnorm"]

    def optimizers(self) -> dict[str, tuple[torch.optim.Optimizer, list[nn.Parameter]]]:
        return {**super().optimizers(),
                "distance": (self.distance.optimizer, list(self.distance.parameters())),
                "task_value": (self.task_value.optimizer, list(self.task_value.critic.parameters()))}

    def set_sync(self, grad_sync, stat_sync) -> None:  # type: ignore[no-untyped-def]
        super().set_sync(grad_sync, stat_sync)
        self.distance.grad_sync = self.task_value.grad_sync = grad_sync
        self.stat_sync = stat_sync

    def start_context(self, post: State, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per replayed step [B * T, ...]: ``future_deter``, its hindsight goal (1 to K steps later), ``pair_deter``
        with ``pair_steps``, a state and its offset for the temporal distance (``replay_pairs``), and with goals
        'episode' ``ahead`` [B * T, candidates], the flat batch indices of steps 1 to ``horizon`` steps later in its
        sequence and episode (its goal candidates)."""
        c = self.config
        deter, is_first = post["deter"].detach(), batch["is_first"].bool()
        _, pair, steps = replay_pairs(deter, is_first, c.most, c.negatives)
        context = {"future_deter": future_states(deter, is_first, c.every).flatten(0, 1),
                   "pair_deter": pair, "pair_steps": steps}
        if c.goals == "episode":
            b, t = is_first.shape
            ahead = future_index(is_first, c.horizon, c.candidates)
            context["ahead"] = (ahead + t * torch.arange(b, device=ahead.device)[:, None, None]).flatten(0, 1)
        return context

    def imagine(self, start: State, goal: torch.Tensor | None = None, pool: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
        """Imagined trajectories [N, H + 1, ...]: a goal picked at steps 0, K, 2K, ... (the cheap rule, or at random
        with probability ``explore_goals``; among the ``pool``'s states ``start["ahead"]`` where given), the worker
        acting towards it. Given goals [N, D] instead, the worker pursues them for one K-step segment."""
        c = self.config
        if goal is not None:
            return self.imagine_options(start, c.every, {"goal": goal})
        if c.goals == "walks":
            def walk_goals(state: State, _feat: torch.Tensor) -> dict[str, torch.Tensor]:
                walked, index = self.walk_pool(state, c.walks, c.every)
                return {"goal": self.pick_goals(state["deter"], c.explore_goals, index, walked)}
            return self.imagine_options(start, c.horizon, {}, walk_goals)
        index = start.get("ahead") if pool is not None else None
        return self.imagine_options(start, c.horizon, {}, lambda state, _feat: {
            "goal": self.pick_goals(state["deter"], c.explore_goals, index, pool)})

    def worker_segments(self, trajectory: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The worker's view (``goals.goal_segments``): K-step segments that each hold one goal; the reward is
        1 - the temporal distance to the goal / (most + 1), plus ``worker_task_weight`` x the predicted task
        reward."""
        most, weight = self.config.most, self.config.worker_task_weight

        def reward(goal: torch.Tensor, part: dict[str, torch.Tensor]) -> torch.Tensor:
            with torch.no_grad():
                reached = 1 - self.distance.expected(part["goal_state"], goal) / (most + 1)
                return reached + weight * part["reward"] if weight else reached

        return goal_segments(trajectory, self.config.every, reward)

    def learn_in_imagination(self, start: State, terminal: torch.Tensor, post: State,
                             batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        c = self.config
        deter = post["deter"].detach()
        with torch.no_grad():
            mean = deter.flatten(0, 1).mean(0)
            self.state_mean.lerp_(mean, c.stat_rate if bool(self.state_mean.any()) else 1.0)
            if self.stat_sync is not None:
                self.stat_sync([self.state_mean])
        metrics = {f"distance/{k}": v for k, v in self.distance.update(
            self.goal_state(start["deter"]), self.goal_state(start["pair_deter"]), start["pair_steps"]).items()}
        replayed_feat = self.world_model.rssm.feat(post).detach().flatten(0, 1)
        self.landmarks.refresh(replayed_feat, c.landmark_refresh)
        trajectory = self.imagine(start, pool=replayed_feat if c.goals == "episode" else None)
        trajectory["cont"][:, 0] = 1.0 - terminal
        sequences = (replayed_feat.unflatten(0, deter.shape[:2]), batch["reward"], batch["is_terminal"],
                     batch["is_first"]) if c.replay_value else None
        metrics.update({f"task_value/{k}": v for k, v in self.task_value.update(
            trajectory["feat"], trajectory["reward"], trajectory["cont"], sequences, c.replay_value, c.replay_best
        ).items()})
        segments = self.worker_segments(trajectory)
        # each step 1..H lies in one segment once: the mean less the task part is the goal reward's mean
        weight = c.worker_task_weight
        metrics["worker/goal_reward"] = segments["reward"][:, 1:].mean() - weight * trajectory["reward"][:, 1:].mean()
        hindsight = round(c.hindsight * len(terminal))
        if hindsight:
            pick = torch.randperm(len(terminal), device=terminal.device)[:hindsight]
            goal = self.goal_state(start["future_deter"][pick])
            replayed = self.imagine({k: v[pick] for k, v in start.items()}, goal)
            replayed["cont"][:, 0] = 1.0 - terminal[pick]
            extra = self.worker_segments(replayed)
            task = replayed["reward"][:, 1:].mean()
            metrics["worker/hindsight_reward"] = extra["reward"][:, 1:].mean() - weight * task
            segments = {key: torch.cat([v, extra[key]], 0) for key, v in segments.items()}
        metrics.update({f"worker/{k}": v for k, v in self.worker.update(**segments).items()})
        metrics["planner/task_reward"] = trajectory["reward"].mean()
        self.updates.add_(1)
        if int(self.updates) % c.timing_every == 1 or c.timing_every == 1:
            begin = time.perf_counter()
            self.choose({k: v[:1] for k, v in start.items() if k in LATENT_KEYS}, explore=False)
            self.plan_ms.fill_(1000 * (time.perf_counter() - begin))
        metrics["planner/plan_ms"] = self.plan_ms.clone()
        metrics["planner/landmarks"] = self.landmarks.count.float()
        return metrics
