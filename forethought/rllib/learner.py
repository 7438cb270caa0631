"""The Learner: hands replayed batches to ``agent.update`` and registers the agent's optimisers with RLlib."""

from __future__ import annotations

import logging
import shutil
import time
from typing import Any

import torch
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.learner.torch.torch_learner import TorchLearner

from forethought.replay import STEP_KEYS
from forethought.threads import ThreadTuner, usable_cores


def average_tensors(tensors: list[torch.Tensor]) -> None:
    """All-reduce tensors of any shape in place to their mean over the learners (running statistics), in one
    flat buffer."""
    import torch.distributed as dist

    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """All-reduce the gradients of ``params`` to their mean over the learners (one flat buffer)."""
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for p, g in zip(params, grads, strict=True):
        p.grad = flat[offset : offset + g.numel()].view_as(g)
        offset += g.numel()


class AgentLearner(TorchLearner):
    """Calls the agent's own update; RLlib keeps the optimisers' state in its checkpoints."""

    def build(self) -> None:
        # the learner's process computes with a fixed number of torch threads, or with the count its tuner finds
        # fastest (see ScaleConfig); set here, after the driver's own env runner (if any) was built, so that the
        # driver's learner gets the learner's count
        threads = getattr(self.config, "learner_threads", 0)
        self.thread_tuner = ThreadTuner(usable_cores(), torch.set_num_threads) if threads == "auto" else None
        if threads != "auto" and int(threads):
            torch.set_num_threads(int(threads))
        # bfloat16: matrix products under autocast in every update; weights, optimiser state and the losses' maths
        # stay float32
        self.precision = getattr(torch, getattr(self.config, "learner_precision", "float32"))
        super().build()
        if getattr(self.config, "compile_learner", False):
            if self._device.type == "cpu" and not any(shutil.which(cc) for cc in ("c++", "g++", "clang++")):
                # inductor writes C++ for the CPU: without a compiler the first update would fail
                logging.getLogger(__name__).warning("train.compile: no C++ compiler on this machine; the learner "
                                                    "runs eagerly")
            else:
                self.module[DEFAULT_MODULE_ID].unwrapped().agent.compile_networks()

    def configure_optimizers_for_module(self, module_id: str, config: Any = None) -> None:
        agent = self.module[module_id].unwrapped().agent
        if self.config.num_learners > 1:  # data-parallel: every learner steps with the mean gradient
            agent.set_sync(average_gradients, average_tensors)
        for name, (optimizer, params) in agent.optimizers().items():
            self.register_optimizer(module_id=module_id, optimizer_name=name, optimizer=optimizer, params=params)

    def compute_loss_for_module(self, *, module_id: str, config: Any, batch: Any, fwd_out: Any) -> Any:
        raise NotImplementedError("the agent computes its own losses in agent.update, called by _update")

    def _update(self, batch: dict[str, Any], **kwargs: Any) -> tuple[Any, Any, Any]:
        module = self.module[DEFAULT_MODULE_ID].unwrapped()
        data = batch[DEFAULT_MODULE_ID]
        keys = [*module.agent.world_model.keys, *STEP_KEYS, *(k for k in ("no_start",) if k in data)]
        threads = torch.get_num_threads()
        begin = time.perf_counter()
        with torch.autocast(self._device.type, dtype=self.precision, enabled=self.precision != torch.float32):
            metrics = module.agent.update({k: torch.as_tensor(data[k], device=self._device) for k in keys})
        if self.thread_tuner is not None:  # the update ends in a host sync, so this is its whole time
            self.thread_tuner.record(time.perf_counter() - begin)
        metrics["perf/learner_threads"] = threads
        for key, value in metrics.items():
            self.metrics.log_value((DEFAULT_MODULE_ID, key), value, window=1)
        loss = torch.tensor(metrics["world_model/loss"])
        return {}, {DEFAULT_MODULE_ID: loss}, {}
