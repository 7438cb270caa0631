"""What the hierarchical agents share while acting: a goal held for K env steps, then a new one; a worker acts
towards the goal held. Director chooses goals with its manager, the planner by search (``new_goals``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from agents.actor_critic import ActorCritic
from agents.dreamer import LATENT_KEYS, WorldModelAgent
from world_models.rssm import State


class OptionAgent(WorldModelAgent):
    """A world-model agent whose acting state also holds ``goal`` [B, D], any further ``option_keys`` and
    ``steps_left`` [B] (env steps the goal is still held for; 0 asks for a new one at the next step)."""

    worker: ActorCritic
    every: int
    goal_dim: int
    #: further per-option entries of the acting state and their widths (Director's ``code``)
    option_widths: dict[str, int] = {}

    def initial_state(self, batch_size: int) -> State:
        state = super().initial_state(batch_size)
        device = state["deter"].device
        state["goal"] = torch.zeros(batch_size, self.goal_dim, device=device)
        for key, width in self.option_widths.items():
            state[key] = torch.zeros(batch_size, width, device=device)
        state["steps_left"] = torch.zeros(batch_size, dtype=torch.long, device=device)
        return state

    def goal_state(self, deter: torch.Tensor) -> torch.Tensor:
        """Deter states [..., D] in the goal space."""
        raise NotImplementedError

    @torch.no_grad()
    def imagine_options(self, start: State, horizon: int, held: dict[str, torch.Tensor],
                        choose: Callable[[State, torch.Tensor], dict[str, torch.Tensor]] | None = None,
                        choose_last: bool = False) -> dict[str, torch.Tensor]:
        """Imagined trajectories [N, horizon + 1, ...] from states [N, ...] (``feat``, ``goal_state``, ``action``,
        ``reward``, ``cont`` and the options held): ``choose(state, feat)`` gives new options (``goal`` and the
        option keys) at steps 0, K, 2K, ... (and at ``horizon`` too with ``choose_last``); without it the options
        ``held`` [N, ...] stay throughout. The worker samples its actions towards the goal held."""
        rssm = self.world_model.rssm
        state = {k: start[k] for k in LATENT_KEYS}
        steps: list[dict[str, torch.Tensor]] = []
        for t in range(horizon + 1):
            feat = rssm.feat(state)
            if choose is not None and t % self.every == 0 and (t < horizon or choose_last):
                held = choose(state, feat)
            action = self.worker.policy(torch.cat([feat, held["goal"]], -1)).sample()
            steps.append({"feat": feat, "goal_state": self.goal_state(state["deter"]), **held, "action": action})
            if t < horizon:
                state = rssm.img_step(state, action)
        trajectory = {k: torch.stack([s[k] for s in steps], 1) for k in steps[0]}
        trajectory["reward"] = self.world_model.reward(trajectory["feat"])
        trajectory["cont"] = self.world_model.cont(trajectory["feat"])
        return trajectory

    def new_goals(self, post: State, feat: torch.Tensor, new: torch.Tensor, held: dict[str, torch.Tensor],
                  explore: bool) -> dict[str, torch.Tensor]:
        """``held`` (``goal`` and the option keys, [B, ...]) with new options where ``new`` [B] is set."""
        raise NotImplementedError

    @torch.no_grad()
    def act(self, obs: Mapping[str, torch.Tensor], state: State, explore: bool, is_first: torch.Tensor
            ) -> tuple[torch.Tensor, State]:
        post = self.observe(obs, state, is_first)
        feat = self.world_model.rssm.feat(post)
        steps_left = torch.where(is_first.bool(), 0, state["steps_left"].long())
        new = steps_left <= 0
        held = {key: state[key] for key in ("goal", *self.option_widths)}
        if new.any():
            held = self.new_goals(post, feat, new, held, explore)
        steps_left = torch.where(new, self.every, steps_left) - 1
        dist = self.worker.policy(torch.cat([feat, held["goal"]], -1))
        action = dist.sample() if explore else dist.mode()
        return self.spec.to_env(action), {**post, "action": action, **held, "steps_left": steps_left}
