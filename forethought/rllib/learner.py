"""The Learner: hands replayed batches to ``agent.update`` and registers the agent's optimisers with RLlib."""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.learner.torch.torch_learner import TorchLearner

BATCH_KEYS = ("action", "reward", "is_first", "is_terminal")


class AgentLearner(TorchLearner):
    """Calls the agent's own update; RLlib keeps the optimisers' state in its checkpoints."""

    def configure_optimizers_for_module(self, module_id: str, config: Any = None) -> None:
        agent = self.module[module_id].unwrapped().agent
        optimizers = {"world_model": (agent.world_model.optimizer, agent.world_model.parameters()),
                      "actor": (agent.actor_critic.actor_opt, agent.actor_critic.actor.parameters()),
                      "critic": (agent.actor_critic.critic_opt, agent.actor_critic.critic.parameters())}
        for name, (optimizer, params) in optimizers.items():
            self.register_optimizer(module_id=module_id, optimizer_name=name, optimizer=optimizer,
                                    params=list(params))

    def compute_loss_for_module(self, *, module_id: str, config: Any, batch: Any, fwd_out: Any) -> Any:
        raise NotImplementedError("the agent computes its own losses in agent.update, called by _update")

    def _update(self, batch: dict[str, Any], **kwargs: Any) -> tuple[Any, Any, Any]:
        module = self.module[DEFAULT_MODULE_ID].unwrapped()
        data = batch[DEFAULT_MODULE_ID]
        keys = [*module.agent.world_model.keys, *BATCH_KEYS]
        metrics = module.agent.update({k: torch.as_tensor(data[k], device=self._device) for k in keys})
        for key, value in metrics.items():
            self.metrics.log_value((DEFAULT_MODULE_ID, key), value, window=1)
        loss = torch.tensor(metrics["world_model/loss"])
        return {}, {DEFAULT_MODULE_ID: loss}, {}
