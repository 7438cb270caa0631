"""The RLModule: holds a Forethought agent; its recurrent state travels through RLlib's state in and out."""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule

from agents import build_agent
from agents.dreamer import DreamerConfig
from forethought.spaces import action_spec, obs_shapes


class AgentModule(TorchRLModule, InferenceOnlyAPI):
    """A thin RLlib wrapper: acting calls ``agent.act``; training happens in ``AgentLearner``.

    ``model_config`` carries ``{"agent": DreamerConfig | DirectorConfig, "env_runner_threads": int}``. RLlib puts
    ``get_initial_state()`` into the state of every new episode, which is exactly the agent's reset, so no
    ``is_first`` column is needed while acting.

    On env runners RLlib builds the module ``inference_only``: the agent keeps what acting needs (encoder,
    recurrent model, actors, Director's goal decoder) and the learner's weight syncs carry only that.
    """

    def setup(self) -> None:
        model_config = self.model_config or {}
        config = model_config.get("agent") or DreamerConfig()
        self.spec = action_spec(self.action_space)
        self.agent = build_agent(obs_shapes(self.observation_space), self.spec, config)
        if self.inference_only:
            self.agent.strip_for_acting()
            # an env runner process acts with a fixed number of torch threads (see ScaleConfig)
            threads = int(model_config.get("env_runner_threads", 0))
            if threads:
                torch.set_num_threads(threads)

    def get_non_inference_attributes(self) -> list[str]:
        return [f"agent.{path}" for path in self.agent.training_only_modules()]

    def get_initial_state(self) -> dict[str, Any]:
        return {k: v[0] for k, v in self.agent.initial_state(1).items()}

    def _act(self, batch: dict[str, Any], explore: bool) -> dict[str, Any]:
        obs = batch[Columns.OBS]
        # RLlib adds a time axis of length 1 for stateful modules while acting
        obs = {k: v[:, 0] if v.dim() > len(self.observation_space[k].shape) + 1 else v for k, v in obs.items()}
        state = batch[Columns.STATE_IN]
        batch_size = next(iter(obs.values())).shape[0]
        is_first = torch.zeros(batch_size, dtype=torch.bool, device=state["deter"].device)
        action, state = self.agent.act(obs, state, explore, is_first)
        return {Columns.ACTIONS: action.unsqueeze(1), Columns.STATE_OUT: state}

    def _forward_inference(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._act(batch, explore=False)

    def _forward_exploration(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._act(batch, explore=True)

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError("Forethought agents train through agent.update, called by AgentLearner")
