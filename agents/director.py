"""The hierarchical agent: a manager picks goals every K steps, a worker reaches them (Director).

Following Hafner et al. 2022 ("Deep Hierarchical Planning from Pixels"), everything learns inside
the world model:

- goals live in the space of *centred* deterministic states: the world model's deter minus its
  running mean over replayed states. Raw deter states share a large common part (at one key-door
  checkpoint, states in the same cell had a max-cosine of 0.86, states elsewhere 0.39), which
  blurs the part that tells states apart; centred, the same pairs scored 0.82 and 0.15;
- the goal autoencoder (agents/goals.py) compresses replayed centred states into codes of
  8 categoricals with 8 classes;
- the manager is an ``ActorCritic`` over that code space: every ``every`` steps it picks a code,
  which the autoencoder decodes into a goal state. Its reward, summed over each K-step chunk, is
  the task reward plus ``explore_weight`` x the autoencoder's reconstruction error of the states
  reached (novel states reconstruct badly), divided by its running mean so that it is on the scale
  of 1 whatever the size of the states (Director normalises each reward stream separately; one
  critic on the weighted sum needs the bonus on a known scale instead);
- the worker is an ``ActorCritic`` over env actions reading ``[features, goal]``, rewarded by the
  max-cosine similarity of its centred deterministic state to the goal (plus ``worker_task_weight`` x the
  task reward, off by default). It learns on K-step segments that each hold one goal; with
  ``replay_goals``, more segments pursue hindsight goals: states that replayed sequences really
  reached 1 to K steps after their start.

While acting, the goal and the steps left in the option are part of the agent's state, so they
travel through RLlib's state in and out like the world model's latent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from agents.actions import ActionSpec
from agents.actor_critic import ActorCritic, ActorCriticConfig
from agents.goals import GoalAutoencoder, GoalConfig, chunk_sums, future_states, goal_segments, max_cosine
from agents.options import OptionAgent
from world_models.config import WorldModelConfig
from world_models.rssm import State


@dataclass(frozen=True)
class DirectorConfig:
    """The hierarchical agent's hyperparameters; defaults follow Director, but for ``centre_states``."""

    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    """The world model."""
    manager: ActorCriticConfig = field(
        default_factory=lambda: ActorCriticConfig(discount=0.92, center_advantages=True))
    """The manager's actor-critic; its discount is per manager step (K env steps: 0.99^8 = 0.92, Director's)."""
    worker: ActorCriticConfig = field(
        default_factory=lambda: ActorCriticConfig(discount=0.9, center_advantages=True))
    """The worker's actor-critic. Its reward is dense (a similarity at every step) and its goals last K
    steps, so a short horizon (discount 0.9) keeps its values small enough for the critic to track."""
    goal: GoalConfig = field(default_factory=GoalConfig)
    """The goal autoencoder and the code space the manager acts in."""
    every: int = 8
    """K: env steps each goal is held for; the manager acts once per K steps."""
    horizon: int = 16
    """Imagination horizon in env steps; a multiple of ``every``."""
    imagination_starts: int = 0
    """Replayed states to start imagining from per update, drawn at random; 0 uses all B x T."""
    task_weight: float = 1.0
    """Weight of the task reward in the manager's reward."""
    explore_weight: float = 0.1
    """Weight of the exploration bonus in the manager's reward: the goal autoencoder's reconstruction error
    divided by its running mean over imagined states (so the bonus averages 1 whatever the state scale)."""
    stat_rate: float = 0.01
    """EMA rate, per update, of the running statistics: the mean of replayed deter states (the centre of the
    goal space) and the mean reconstruction error (the scale of the exploration bonus)."""
    centre_states: bool = True
    """Centre deter states by their running mean before they become goals or are compared to goals; False
    uses the raw states, as Director does."""
    replay_goals: float = 0.0
    """Share of the imagination starts from which the worker also trains for one K-step segment towards a
    hindsight goal: the (centred) state its replayed sequence really reached 1 to K steps later (fewer at the
    end of an episode or sequence), reachable by construction. 0 trains the worker on the manager's goals
    only, as Director does."""
    worker_task_weight: float = 0.0
    """Weight of the task reward in the worker's reward (Director: 0, the worker only pursues goals)."""
    reach_weight: float = 0.0
    """Weight, in the manager's reward, of the worker's goal reward (the max-cosine of each state to the goal
    held): it pays the manager for goals the worker reaches. Director: 0; goals decoded from codes no real
    state has point nowhere the worker can go, and nothing else tells the manager so."""
    manager_prior: float = 0.0
    """Weight of a cross-entropy, added to the manager's actor loss, from the goal autoencoder's code posterior
    of each replayed start's hindsight goal (the state its sequence really reached 1 to K steps later) to the
    manager's policy there. It pulls the manager towards codes of states that occur and are reachable, where
    the entropy bonus alone pulls it towards uniform codes, whose decoded goals resemble no real state; the
    task reward then chooses among them. Director: 0. (On Pin Pad vector it made the goals reachable but
    lowered the return; see the README's Results.)"""

    chunk_reward: str = "sum"
    """How the manager's reward for a K-step chunk is made from the K rewards in it: 'sum', or 'mean': Director's
    mean of the rewards, each weighted by the chance that the episode lasted until it."""
    critic_streams: bool = False
    """Director's form: the manager keeps a critic and a return scale per reward stream (task, explore and, with
    ``reach_weight``, reach), and its advantage is the weighted sum (``task_weight``, ``explore_weight``,
    ``reach_weight``) of the streams' advantages, each divided by its own scale. False: one critic learns the
    weighted sum of the rewards."""

    def manager_streams(self) -> dict[str, float]:
        """The manager's reward streams and their weights (reach only with a reach_weight)."""
        weights = {"task": self.task_weight, "explore": self.explore_weight, "reach": self.reach_weight}
        return {name: w for name, w in weights.items() if name != "reach" or w}

    def __post_init__(self) -> None:
        if self.chunk_reward not in ("sum", "mean"):
            raise ValueError(f"chunk_reward must be 'sum' or 'mean', got {self.chunk_reward!r}")
        for name in ("manager", "worker"):
            if getattr(self, name).actor_grad == "dynamics":
                raise ValueError(f"actor_grad 'dynamics' is implemented for the flat agent only (agent.name=dreamer); "
                                 f"the director's {name} learns by REINFORCE ('auto' or 'reinforce')")
        if self.every < 1 or self.horizon < self.every or self.horizon % self.every:
            raise ValueError(f"horizon ({self.horizon}) must be a positive multiple of every ({self.every})")
        if not 0.0 <= self.replay_goals <= 1.0:
            raise ValueError(f"replay_goals must be a share from 0 to 1, got {self.replay_goals}")
        for name in ("reach_weight", "manager_prior"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be a weight of 0 or more, got {getattr(self, name)}")


class DirectorAgent(OptionAgent):
    """World model, goal autoencoder, manager and worker.

    The acting state holds the world model's latent and last action plus ``goal`` [B, D] (the
    decoded goal), ``code`` [B, G * C] (the manager's choice) and ``steps_left`` [B] (env steps the
    goal is still held for; 0 asks the manager for a new one at the next step).
    """

    def __init__(self, obs_space: Mapping[str, Sequence[int]], spec: ActionSpec,
                 config: DirectorConfig | None = None):
        self.config = c = config or DirectorConfig()
        super().__init__(obs_space, spec, c.world_model, c.imagination_starts)
        rssm = self.world_model.rssm
        self.code_spec = ActionSpec.multi_discrete((c.goal.classes,) * c.goal.groups)
        self.goal_autoencoder = GoalAutoencoder(c.world_model.deter, c.goal)
        self.every, self.goal_dim = c.every, c.world_model.deter
        self.option_widths = {"code": self.code_spec.dim}
        self.manager = ActorCritic(rssm.feat_dim, self.code_spec, c.manager,
                                   streams=c.manager_streams() if c.critic_streams else None)
        self.worker = ActorCritic(rssm.feat_dim + c.world_model.deter, spec, c.worker)
        # running means of the reconstruction error and of replayed deter states; 0 until the first update
        self.register_buffer("explore_scale", torch.zeros(()))
        self.register_buffer("state_mean", torch.zeros(c.world_model.deter))
        #: called with [explore_scale, state_mean] after each update, to average them in place (data-parallel
        #: learners)
        self.stat_sync: Callable[[list[torch.Tensor]], None] | None = None

    explore_scale: torch.Tensor
    state_mean: torch.Tensor

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        # RLlib restores modules with strict=False: a checkpoint from before the centred goal space would load
        # with a zero mean and its goals would silently change meaning
        if self.config.centre_states and prefix + "state_mean" not in state_dict:
            raise ValueError("the checkpoint has no Director state_mean: it was written before goals were centred "
                             "states; resume it with agent.hierarchy.centre_states=false or start a new run")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def goal_state(self, deter: torch.Tensor) -> torch.Tensor:
        """Deter states [..., D] in the goal space: centred by their running mean (unless ``centre_states``
        is off)."""
        return deter - self.state_mean if self.config.centre_states else deter

    # --- acting -------------------------------------------------------------------------------
    def choose_goal(self, feat: torch.Tensor, explore: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The manager's code [N, G * C] in each state (sampled, or its mode) and the decoded goal [N, D]."""
        dist = self.manager.policy(feat)
        code = dist.sample() if explore else dist.mode()
        return code, self.decode_goal(code)

    def decode_goal(self, code: torch.Tensor) -> torch.Tensor:
        """Goal states [..., D] from flat codes [..., G * C]."""
        g = self.config.goal
        return self.goal_autoencoder.decode(code.reshape(*code.shape[:-1], g.groups, g.classes))

    def new_goals(self, post: State, feat: torch.Tensor, new: torch.Tensor, held: dict[str, torch.Tensor],
                  explore: bool) -> dict[str, torch.Tensor]:
        code, goal = self.choose_goal(feat, explore)
        new = new.unsqueeze(-1)
        return {"goal": torch.where(new, goal, held["goal"]), "code": torch.where(new, code, held["code"])}

    # --- learning -----------------------------------------------------------------------------
    def actor_critics(self) -> dict[str, ActorCritic]:
        return {"manager": self.manager, "worker": self.worker}

    def training_only_modules(self) -> list[str]:
        # acting decodes the manager's codes into goals but never encodes states
        return [*super().training_only_modules(), "goal_autoencoder.encoder"]

    def optimizers(self) -> dict[str, tuple[torch.optim.Optimizer, list[nn.Parameter]]]:
        return {**super().optimizers(),
                "goal_autoencoder": (self.goal_autoencoder.optimizer, list(self.goal_autoencoder.parameters()))}

    def set_sync(self, grad_sync, stat_sync) -> None:  # type: ignore[no-untyped-def]
        super().set_sync(grad_sync, stat_sync)
        self.goal_autoencoder.grad_sync = grad_sync
        self.stat_sync = stat_sync

    def start_context(self, post: State, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``future_deter`` [B * T, D]: each replayed step's hindsight goal (``goals.future_states``, 1 to K steps
        later). Nothing when ``replay_goals`` and ``manager_prior`` are 0."""
        if not (self.config.replay_goals or self.config.manager_prior):
            return {}
        future = future_states(post["deter"].detach(), batch["is_first"].bool(), self.config.every)
        return {"future_deter": future.flatten(0, 1)}

    def imagine(self, start: State, goal: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Imagined trajectories [N, H + 1, ...]: the manager picks a code at steps 0, K, 2K, ... (also at
        H, for the manager's bootstrap), the worker acts towards the decoded goal at every step. Given goals
        [N, D] instead, the worker pursues them for one K-step segment (codes are then zero)."""
        c = self.config
        if goal is not None:
            code = torch.zeros(len(goal), self.code_spec.dim, device=goal.device)
            trajectory = self.imagine_options(start, c.every, {"code": code, "goal": goal})
        else:
            def choose(_state: State, feat: torch.Tensor) -> dict[str, torch.Tensor]:
                code, decoded = self.choose_goal(feat, explore=True)
                return {"code": code, "goal": decoded}

            trajectory = self.imagine_options(start, c.horizon, {}, choose, choose_last=True)
        trajectory["explore_error"] = self.goal_autoencoder.reconstruction_error(trajectory["goal_state"])
        return trajectory

    @torch.no_grad()
    def update_stats(self, deter: torch.Tensor | None = None, error: torch.Tensor | None = None) -> None:
        """Move the running means towards this batch's replayed deter states [..., D] and reconstruction
        errors [...]; the first batch sets them. (``learn_in_imagination`` then averages them over
        data-parallel learners.)"""
        for stat, batch in ((self.state_mean, deter), (self.explore_scale, error)):
            if batch is None:
                continue
            mean = batch.reshape(-1, *stat.shape).mean(0)
            stat.lerp_(mean, self.config.stat_rate if bool(stat.any()) else 1.0)

    def manager_trajectory(self, trajectory: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """The manager's view [N, H / K + 1, ...]: states at chunk starts, its codes, and per chunk the summed (or,
        with ``chunk_reward`` 'mean', the continuation-weighted mean) reward and the probability that the episode
        lasts through the chunk. The reward is task + explore bonus + reach bonus, weighted, or with
        ``critic_streams`` the three unweighted by stream."""
        c = self.config
        n = trajectory["feat"].shape[0]
        chunks = c.horizon // c.every
        streams = {"task": trajectory["reward"], "explore": trajectory["explore"]}
        if c.reach_weight:  # steps 1..K of chunk j against chunk j's goal (step K already holds the next one)
            held = trajectory["goal"][:, : c.horizon : c.every].repeat_interleave(c.every, 1)
            reached = max_cosine(held, trajectory["goal_state"][:, 1:])
            streams["reach"] = torch.cat([torch.zeros_like(reached[:, :1]), reached], 1)
        alive = torch.cumprod(trajectory["cont"][:, :-1].reshape(n, chunks, c.every), -1)

        def chunked(reward: torch.Tensor) -> torch.Tensor:
            if c.chunk_reward == "mean":  # a reward counts as much as the chance of reaching it within its chunk
                per_chunk = (reward[:, 1:].reshape(n, chunks, c.every) * alive).mean(-1)
            else:
                per_chunk = chunk_sums(reward[:, 1:], c.every)
            return torch.cat([torch.zeros_like(reward[:, :1]), per_chunk], 1)

        weights = c.manager_streams()
        reward: torch.Tensor | dict[str, torch.Tensor]
        if c.critic_streams:
            reward = {name: chunked(r) for name, r in streams.items()}
        else:
            reward = chunked(sum(weights[name] * r for name, r in streams.items()))  # type: ignore[arg-type]
        return {
            "feat": trajectory["feat"][:, :: c.every],
            "action": trajectory["code"][:, :: c.every],
            "reward": reward,
            "cont": torch.cat([trajectory["cont"][:, :1],
                               trajectory["cont"][:, 1:].reshape(n, chunks, c.every).prod(-1)], 1),
        }

    def worker_trajectory(self, trajectory: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The worker's view (``goals.goal_segments``): K-step segments that each hold one goal; the reward is the
        max-cosine of each state to that goal (plus any task reward)."""
        weight = self.config.worker_task_weight
        return goal_segments(trajectory, self.config.every,
                             lambda goal, part: max_cosine(goal, part["goal_state"]) + weight * part["reward"])

    def learn_in_imagination(self, start: State, terminal: torch.Tensor, post: State,
                             batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        deter = post["deter"].detach().flatten(0, 1)
        self.update_stats(deter=deter)
        goal_states = self.goal_state(deter)
        metrics = {f"goal_autoencoder/{k}": v for k, v in self.goal_autoencoder.update(goal_states).items()}
        metrics["goal_autoencoder/random_code_match"] = self.goal_autoencoder.random_code_match(goal_states[:1024])
        trajectory = self.imagine(start)
        self.update_stats(error=trajectory["explore_error"])
        trajectory["explore"] = trajectory["explore_error"] / self.explore_scale.clamp(min=1e-8)
        # the start states are real: their continuation is known, not predicted
        trajectory["cont"][:, 0] = 1.0 - terminal
        prior = None
        if self.config.manager_prior:  # cross-entropy from the hindsight goals' code posteriors to the manager
            with torch.no_grad():
                target = self.goal_autoencoder.encode(self.goal_state(start["future_deter"])).probs.flatten(-2)
            cross_entropy = -self.manager.policy(trajectory["feat"][:, 0]).log_prob(target).mean()
            metrics["manager/prior_loss"] = cross_entropy.detach()
            prior = self.config.manager_prior * cross_entropy
        manager = self.manager.update(**self.manager_trajectory(trajectory), actor_extra=prior)
        segments = self.worker_trajectory(trajectory)
        replayed = round(self.config.replay_goals * len(terminal))
        if replayed:
            pick = torch.randperm(len(terminal), device=terminal.device)[:replayed]
            goal = self.goal_state(start["future_deter"][pick])
            hindsight = self.imagine({k: v[pick] for k, v in start.items()}, goal)
            hindsight["cont"][:, 0] = 1.0 - terminal[pick]
            extra = self.worker_trajectory(hindsight)
            segments = {key: torch.cat([v, extra[key]], 0) for key, v in segments.items()}
            metrics["worker/replay_goal_reward"] = extra["reward"][:, 1:].mean()
        worker = self.worker.update(**segments)
        if self.stat_sync is not None:
            self.stat_sync([self.explore_scale, self.state_mean])
        metrics.update({f"manager/{k}": v for k, v in manager.items()})
        metrics.update({f"worker/{k}": v for k, v in worker.items()})
        metrics["manager/explore_reward"] = trajectory["explore"].mean()
        metrics["manager/explore_scale"] = self.explore_scale.clone()
        metrics["manager/task_reward"] = trajectory["reward"].mean()
        metrics["worker/goal_reward"] = max_cosine(trajectory["goal"], trajectory["goal_state"]).mean()
        return metrics

    # --- inspection ---------------------------------------------------------------------------
    @torch.no_grad()
    def goal_observation(self, goal: torch.Tensor) -> dict[str, torch.Tensor]:
        """The observation the world model's decoder makes of goals [..., D] (an acting state's ``goal``): uint8
        images for image keys, raw vectors for vector keys."""
        return self.decode_deter(goal + self.state_mean if self.config.centre_states else goal)

    @torch.no_grad()
    def report(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The world model's open-loop report plus the manager's goals decoded into observations.

        ``goals/<key>`` [B, T, ...] is, at each step of the replayed sequences, the observation the
        world model's decoder makes of the goal the greedy manager would hold there (chosen at steps
        0, K, 2K, ...): uint8 images for image keys, raw vectors for vector keys. ``goals/similarity``
        [B, T] is the worker's reward (max-cosine of the state to that goal).
        """
        out = self.world_model.report(batch)
        post, _ = self.world_model.observe(batch, sample=False)
        rssm = self.world_model.rssm
        steps = post["deter"].shape[1]
        held = torch.arange(steps, device=post["deter"].device) // self.config.every * self.config.every
        code = self.manager.policy(rssm.feat(post)[:, held]).mode()
        goal = self.decode_goal(code)
        out.update({f"goals/{k}": v for k, v in self.goal_observation(goal).items()})
        out["goals/similarity"] = max_cosine(goal, self.goal_state(post["deter"]))
        return out
