"""The recurrent state-space model: a deterministic GRU state plus categorical latents.

States are dicts of tensors: ``deter`` [..., D], ``stoch`` [..., S, C] (one-hot samples) and
``logits`` [..., S, C]. Batches follow the Dreamer convention: ``action[:, t]`` is the action taken
after seeing observation t, so step t is reached with ``action[:, t - 1]``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from world_models.config import WorldModelConfig
from world_models.distributions import CategoricalLatent
from world_models.networks import MLP, GRUCell

State = dict[str, torch.Tensor]
Policy = Callable[[State], torch.Tensor]


def stack_states(states: list[State], dim: int = 1) -> State:
    """Stack a list of per-step states along the time axis."""
    return {key: torch.stack([s[key] for s in states], dim) for key in states[0]}


class RSSM(nn.Module):
    """Recurrent state-space model with discrete latents (DreamerV3)."""

    def __init__(self, embed_dim: int, action_dim: int, config: WorldModelConfig):
        super().__init__()
        c = config
        self.config, self.action_dim = c, action_dim
        latent = c.stoch * c.classes
        self.img_in = MLP(latent + action_dim, c.hidden, 1)
        self.gru = GRUCell(c.hidden, c.deter, c.blocks)
        self.prior_net = nn.Sequential(MLP(c.deter, c.hidden, 1), nn.Linear(c.hidden, latent))
        self.post_net = nn.Sequential(MLP(c.deter + embed_dim, c.hidden, 1), nn.Linear(c.hidden, latent))
        self.initial_deter = nn.Parameter(torch.zeros(c.deter))
        self.feat_dim = c.deter + latent
        #: steps per call of ``observe_steps`` in ``observe`` (0: the whole sequence in one call)
        self.chunk = 0

    # --- pieces -----------------------------------------------------------------------------
    def _latent(self, logits: torch.Tensor, sample: bool) -> State:
        logits = logits.reshape(*logits.shape[:-1], self.config.stoch, self.config.classes)
        dist = CategoricalLatent(logits, self.config.unimix)
        return {"stoch": dist.sample() if sample else dist.mode(), "logits": dist.logits}

    def initial(self, batch_size: int) -> State:
        """The learned start state, the same for every sequence."""
        deter = torch.tanh(self.initial_deter).expand(batch_size, -1)
        return {"deter": deter, **self._latent(self.prior_net(deter), sample=False)}

    def feat(self, state: State) -> torch.Tensor:
        """The features heads read: deterministic state and flattened latents, [..., D + S * C]."""
        return torch.cat([state["deter"], state["stoch"].flatten(-2)], -1)

    def prior_feat(self, deter: torch.Tensor) -> torch.Tensor:
        """Features of deterministic states [..., D] with their prior's most likely latents (to decode goals)."""
        return self.feat({"deter": deter, **self._latent(self.prior_net(deter), sample=False)})

    def img_step(self, state: State, action: torch.Tensor, sample: bool = True) -> State:
        """One step of the prior: the next state predicted from a state and the action taken there."""
        x = self.img_in(torch.cat([state["stoch"].flatten(-2), action], -1))
        deter = self.gru(x, state["deter"])
        return {"deter": deter, **self._latent(self.prior_net(deter), sample)}

    def embed_projection(self, embed: torch.Tensor) -> torch.Tensor:
        """The embedding's part of the posterior's first layer [..., hidden]; a sequence computes it for all
        steps in one matrix product instead of one per step (the layer is linear in [deter, embed])."""
        first: nn.Linear = self.post_net[0][0]  # type: ignore[index]
        return F.linear(embed, first.weight[:, self.config.deter :])

    def _post_logits(self, deter: torch.Tensor, projected: torch.Tensor) -> torch.Tensor:
        first, norm = self.post_net[0][0], self.post_net[0][1]  # type: ignore[index]  # MLP: Linear, LayerNorm, SiLU
        hidden = F.silu(norm(F.linear(deter, first.weight[:, : self.config.deter]) + projected))
        return self.post_net[1](hidden)

    def obs_step(self, state: State, action: torch.Tensor, embed: torch.Tensor, is_first: torch.Tensor,
                 sample: bool = True, init: State | None = None, projected: bool = False) -> tuple[State, State]:
        """One step of the posterior: (posterior, prior) at an observation, resetting where ``is_first``.

        ``init`` is ``initial(B)`` when the caller has it already (a sequence computes it once); with
        ``projected``, ``embed`` is already ``embed_projection(embed)``.
        """
        keep = (~is_first.bool()).float()
        init = self.initial(embed.shape[0]) if init is None else init
        state = {k: v * keep.view(-1, *[1] * (v.dim() - 1)) + init[k] * (1 - keep.view(-1, *[1] * (v.dim() - 1)))
                 for k, v in state.items()}
        action = action * keep.unsqueeze(-1)
        prior = self.img_step(state, action, sample)
        projection = embed if projected else self.embed_projection(embed)
        post = {"deter": prior["deter"], **self._latent(self._post_logits(prior["deter"], projection), sample)}
        return post, prior

    # --- sequences --------------------------------------------------------------------------
    def observe(self, embed: torch.Tensor, action: torch.Tensor, is_first: torch.Tensor,
                state: State | None = None, prev_action: torch.Tensor | None = None,
                sample: bool = True) -> tuple[State, State]:
        """Posteriors and priors [B, T, ...] over a sequence.

        Args:
            embed: encoder output [B, T, E].
            action: [B, T, A]; ``action[:, t]`` is taken after observation t.
            is_first: [B, T] bool; the state is reset to the initial one where true.
            state, prev_action: where to continue from (the last posterior and the action taken
                there); by default the initial state and a zero action.
        """
        batch, steps = embed.shape[:2]
        assert action.shape[:2] == (batch, steps), f"action {tuple(action.shape)} vs embed {tuple(embed.shape)}"
        assert is_first.shape == (batch, steps), f"is_first {tuple(is_first.shape)} vs embed {tuple(embed.shape)}"
        if prev_action is None:
            prev_action = torch.zeros_like(action[:, 0])
        prev_actions = torch.cat([prev_action.unsqueeze(1), action[:, :-1]], 1)
        init = self.initial(batch)
        # a copy, not the same tensors: a compiled observe_steps would otherwise compile once more for the first
        # chunk, whose state and start state alias
        state = {k: v.clone() for k, v in init.items()} if state is None else state
        projection = self.embed_projection(embed)
        posts, priors = [], []
        chunk = self.chunk or steps
        for begin in range(0, steps, chunk):
            end = min(begin + chunk, steps)
            post, prior = self.observe_steps(state, prev_actions[:, begin:end], projection[:, begin:end],
                                             is_first[:, begin:end], init, sample)
            posts.append(post)
            priors.append(prior)
            state = {k: v[:, -1] for k, v in post.items()}
        if len(posts) == 1:
            return posts[0], priors[0]
        return ({k: torch.cat([p[k] for p in posts], 1) for k in posts[0]},
                {k: torch.cat([p[k] for p in priors], 1) for k in priors[0]})

    def observe_steps(self, state: State, prev_actions: torch.Tensor, projection: torch.Tensor,
                      is_first: torch.Tensor, init: State, sample: bool = True) -> tuple[State, State]:
        """Posteriors and priors [B, K, ...] of K consecutive steps from ``state``: ``observe``'s loop body, a unit
        that ``torch.compile`` unrolls (a whole sequence at once compiles for minutes; ``chunk`` steps at a time)."""
        posts, priors = [], []
        for t in range(prev_actions.shape[1]):
            post, prior = self.obs_step(state, prev_actions[:, t], projection[:, t], is_first[:, t], sample, init,
                                        projected=True)
            posts.append(post)
            priors.append(prior)
            state = post
        return stack_states(posts), stack_states(priors)

    def imagine(self, policy: Policy, start: State, horizon: int, sample: bool = True) -> State:
        """Roll the prior forward ``horizon`` steps under ``policy`` from ``start`` states [N, ...].

        Returns states [N, horizon + 1, ...] (the start first) with ``action`` [N, horizon + 1, A],
        the policy's action in each state.
        """
        state = {k: start[k] for k in ("deter", "stoch", "logits")}
        states, actions = [state], []
        for _ in range(horizon):
            action = policy(state)
            actions.append(action)
            state = self.img_step(state, action, sample)
            states.append(state)
        actions.append(policy(state))
        trajectory = stack_states(states)
        trajectory["action"] = torch.stack(actions, 1)
        return trajectory

    def open_loop(self, start: State, actions: torch.Tensor, sample: bool = False) -> State:
        """Predict states [B, K, ...] from ``start`` under given actions [B, K, A] (action k leads to state k)."""
        state, states = start, []
        for k in range(actions.shape[1]):
            state = self.img_step(state, actions[:, k], sample)
            states.append(state)
        return stack_states(states)
