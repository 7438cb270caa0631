"""The RLlib Algorithm: env runners fill a sequence replay, the learners train at a fixed train ratio.

``training_step`` samples one round from every env runner, stores the episode chunks in replay,
then runs as many learner updates as keep (replayed steps / env steps) at the configured train
ratio, and sends the new weights to the env runners. The replay and the counters are part of
every checkpoint, so a restored run continues where it stopped: same weights, optimiser state,
replay, counters and driver random state (remote learners' and env runners' random streams, and
episodes in flight, start afresh).
"""

from __future__ import annotations

import json
import pickle
import random
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.execution.rollout_ops import synchronous_parallel_sample
from ray.rllib.policy.sample_batch import SampleBatch
from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, LEARNER_RESULTS

import envs
from agents.dreamer import DreamerConfig
from forethought.replay import Replay
from forethought.rllib.episodes import chunk_steps
from forethought.rllib.learner import AgentLearner
from forethought.rllib.module import AgentModule
from forethought.spaces import action_spec, replay_spec

ENV_NAME = "forethought_env"


def replay_lanes(num_env_runners: int, num_envs_per_env_runner: int) -> int:
    """One replay lane per concurrent env stream, plus two spare for episodes cut off by a restart."""
    return max(1, num_env_runners) * num_envs_per_env_runner + 2


class ForethoughtConfig(AlgorithmConfig):
    """RLlib config of a Forethought agent; ``training(...)`` takes the replay and train-ratio settings."""

    def __init__(self, algo_class: type | None = None):
        super().__init__(algo_class=algo_class or ForethoughtAlgorithm)
        self.agent_config: Any = DreamerConfig()  # or a DirectorConfig
        self.batch_size_B = 16
        self.batch_length_T = 64
        self.train_ratio = 32.0
        self.replay_capacity = 100_000
        self.recent_fraction = 0.0
        self.recent_window = 10_000
        self.reward_fraction = 0.0
        self.reward_starts = True
        self.terminal_fraction = 0.0
        self.prefill_steps = 1000
        self.learner_threads: int | str = 1
        self.env_runner_threads = 1
        self.compile_learner = False
        self.learner_precision = "float32"
        self.sample_beside_learning = True
        self.rollout_fragment_length = 64
        self.enable_rl_module_and_learner = True
        self.enable_env_runner_and_connector_v2 = True

    def training(self, *, agent_config: Any = NotProvided, batch_size_B: Any = NotProvided,
                 batch_length_T: Any = NotProvided, train_ratio: Any = NotProvided,
                 replay_capacity: Any = NotProvided, recent_fraction: Any = NotProvided,
                 recent_window: Any = NotProvided, reward_fraction: Any = NotProvided, reward_starts: Any = NotProvided,
                 terminal_fraction: Any = NotProvided, prefill_steps: Any = NotProvided,
                 learner_threads: Any = NotProvided, env_runner_threads: Any = NotProvided,
                 compile_learner: Any = NotProvided, learner_precision: Any = NotProvided,
                 sample_beside_learning: Any = NotProvided,
                 **kwargs: Any) -> ForethoughtConfig:
        super().training(**kwargs)
        for name, value in locals().items():
            if name not in ("self", "kwargs", "__class__") and value is not NotProvided:
                setattr(self, name, value)
        return self

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        return RLModuleSpec(module_class=AgentModule, model_config={"agent": self.agent_config,
                                                                    "env_runner_threads": self.env_runner_threads})

    def get_default_learner_class(self) -> type:
        return AgentLearner


class ForethoughtAlgorithm(Algorithm):
    """Sampling into a sequence replay and training from it at a fixed train ratio."""

    config: ForethoughtConfig

    @classmethod
    def get_default_config(cls) -> ForethoughtConfig:
        return ForethoughtConfig()

    def setup(self, config: Any) -> None:
        super().setup(config)
        probe = envs.make(**self.config.env_config)
        self.spec = action_spec(probe.action_space)
        self.env_spaces = (probe.observation_space, probe.action_space)
        lanes = replay_lanes(self.config.num_env_runners, self.config.num_envs_per_env_runner)
        self.replay = Replay(replay_spec(probe.observation_space, self.spec), self.config.replay_capacity, lanes,
                             self.config.recent_fraction, max(1, self.config.recent_window // lanes),
                             seed=self.config.seed or 0, reward_fraction=self.config.reward_fraction,
                             reward_starts=self.config.reward_starts,
                             terminal_fraction=self.config.terminal_fraction)
        probe.close()
        self.counters = {"env_steps": 0, "replayed_steps": 0, "updates": 0, "episodes": 0}
        self._carry: dict[str, float] = {}  # reward on arrival at the next chunk's first observation
        self._running: dict[str, list[float]] = {}  # return and length so far of unfinished episodes
        self.recent_episodes: deque[tuple[float, int]] = deque(maxlen=100)  # (return, length) of finished ones
        self._in_flight = 0  # env steps of the round being sampled beside learning

    # --- data ---------------------------------------------------------------------------------
    def _store(self, episodes: list[Any]) -> int:
        """Put episode chunks into replay (Dreamer's layout); return the env steps they add."""
        added = 0
        for episode in episodes:
            n = len(episode)
            if n == 0:
                continue
            steps = chunk_steps(episode, self.spec, self._carry.pop(episode.id_, 0.0))
            rewards = np.asarray(episode.get_rewards(), np.float32)
            running = self._running.pop(episode.id_, [0.0, 0])
            running[0] += float(rewards.sum())
            running[1] += n
            if episode.is_done:
                self.counters["episodes"] += 1
                self.recent_episodes.append((running[0], int(running[1])))
            else:
                self._carry[episode.id_] = float(rewards[-1])
                self._running[episode.id_] = running
            self.replay.add(str(episode.id_), steps, episode.is_done)
            added += n
        return added

    # --- the loop -----------------------------------------------------------------------------
    def _launch_round(self) -> None:
        """Ask every healthy remote env runner for its next fragment, without waiting for it."""
        c = self.config
        runners = self.env_runner_group.foreach_env_runner_async(
            lambda runner: (runner.sample(), runner.get_metrics()), tag="round")
        self._in_flight = runners * c.rollout_fragment_length * c.num_envs_per_env_runner

    def _collect_round(self) -> None:
        """Wait for the fragments in flight and store them (runners that failed meanwhile send nothing)."""
        results = [result for _, result in self.env_runner_group.fetch_ready_async_reqs(
            tags="round", timeout_seconds=self.config.sample_timeout_s)]
        self._in_flight = 0
        self.metrics.aggregate([metrics for _, metrics in results], key=ENV_RUNNER_RESULTS)
        self.counters["env_steps"] += self._store([episode for episodes, _ in results for episode in episodes])

    def _sample_round(self, random_actions: bool) -> None:
        """Sample one round from every env runner (or the local one), wait for it and store it."""
        c = self.config
        episodes, runner_results = synchronous_parallel_sample(
            worker_set=self.env_runner_group,
            max_env_steps=c.rollout_fragment_length * c.num_envs_per_env_runner * max(1, c.num_env_runners),
            random_actions=random_actions, sample_timeout_s=c.sample_timeout_s,
            _uses_new_env_runners=True, _return_metrics=True,
        )
        self.metrics.aggregate(runner_results, key=ENV_RUNNER_RESULTS)
        self.counters["env_steps"] += self._store(episodes)

    def training_step(self) -> None:
        c = self.config
        prefill = self.counters["env_steps"] < c.prefill_steps
        # beside learning: remote env runners collect the next fragments while the learner trains on what replay
        # holds, and the updates owed for the steps in flight are made meanwhile, so that once they arrive the
        # ratio of replayed to env steps is the configured one
        beside = c.sample_beside_learning and not prefill and self.env_runner_group.num_remote_workers() > 0
        if not beside:
            self._sample_round(random_actions=prefill)
        elif not self._in_flight:
            self._launch_round()

        target = c.train_ratio * (self.counters["env_steps"] + (self._in_flight if beside else 0))
        step_size = c.batch_size_B * c.batch_length_T
        trained, rewarded = False, []
        while (not prefill or self.counters["env_steps"] >= c.prefill_steps) and self.replay.can_sample(
                c.batch_length_T) and self.counters["replayed_steps"] + step_size <= target:
            batch = self.replay.sample(c.batch_size_B, c.batch_length_T)
            results = self.learner_group.update(batch=SampleBatch(batch).as_multi_agent(),
                                                timesteps={"env_steps": self.counters["env_steps"]})
            self.metrics.aggregate(results, key=LEARNER_RESULTS)
            self.counters["replayed_steps"] += step_size
            self.counters["updates"] += 1
            trained = True
            rewarded.append(float((batch["reward"] != 0).any(axis=1).mean()))
        if beside:
            self._collect_round()
        if trained:
            self.env_runner_group.sync_weights(from_worker_or_learner_group=self.learner_group, inference_only=True)
        if beside:
            self._launch_round()  # with the new weights; it runs during the next round's updates
        ratio = self.counters["replayed_steps"] / max(self.counters["env_steps"], 1)
        self.metrics.log_value("perf/train_ratio", ratio, window=1)
        self.metrics.log_value("replay/steps", len(self.replay), window=1)
        if rewarded:  # the share of this round's sequences that held a reward, and of replay's steps
            self.metrics.log_value("replay/rewarded_windows", float(np.mean(rewarded)), window=1)
            self.metrics.log_value("replay/rewarded_steps", len(self.replay.rewarded()[0]) / max(len(self.replay), 1),
                                   window=1)
        for key, value in self.counters.items():
            self.metrics.log_value(f"counters/{key}", value, window=1)

    def learner_agent(self) -> Any:
        """The whole agent as the learner holds it (env runners keep only what acting needs)."""
        if self.learner_group.is_local:
            return self.learner_group._learner.module[DEFAULT_MODULE_ID].unwrapped().agent
        module = self.config.get_default_rl_module_spec()
        module.observation_space, module.action_space = self.env_spaces
        agent_module = module.build()
        agent_module.set_state(self.learner_group.get_state(components="learner/rl_module/default_policy")[
            "learner"]["rl_module"][DEFAULT_MODULE_ID])
        return agent_module.agent

    # --- checkpoints ----------------------------------------------------------------------------
    def save_extra(self, path: Path) -> None:
        """Write the replay, counters and random state beside RLlib's own checkpoint files."""
        self.replay.save(path / "replay.npz")
        state = {"counters": self.counters, "recent_episodes": list(self.recent_episodes)}
        (path / "forethought_state.json").write_text(json.dumps(state))
        rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
               "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
        with open(path / "rng.pkl", "wb") as file:
            pickle.dump(rng, file)

    def load_extra(self, path: Path) -> None:
        """Restore what ``save_extra`` wrote."""
        self.replay.load(path / "replay.npz")
        state = json.loads((path / "forethought_state.json").read_text())
        self.counters = state["counters"]
        self.recent_episodes.clear()
        self.recent_episodes.extend((float(r), int(n)) for r, n in state["recent_episodes"])
        # env runners start new episodes after a restore: nothing carries over, no lane stays taken
        self._carry, self._running = {}, {}
        self.replay.owner = [None] * self.replay.lanes
        with open(path / "rng.pkl", "rb") as file:
            rng = pickle.load(file)  # our own file, written by save_extra
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        # env runners act with the restored weights from the first step on
        self.env_runner_group.sync_weights(from_worker_or_learner_group=self.learner_group, inference_only=True)
