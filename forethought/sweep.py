"""``forethought tune SWEEP.yaml`` and ``forethought train ... run.seeds=[...]``: trials on Ray Tune, each one a
training run (forethought.train.Training) in a run folder of its own.

A trial reserves what its run needs (1 CPU and the learner's GPUs for the driver's learner, plus each env runner's
and each remote learner's share), so Tune runs as many at once as the cluster holds. A trial reports to Tune once
per record that holds the sweep's metric (the greedy evaluations, every train.eval_every env steps, for
eval/return); ASHA compares trials at its rungs of env steps. A trial that ASHA stops, or that an interrupted sweep
stops, writes a checkpoint first. Interrupting the sweep (Ctrl-C, SIGTERM) saves Tune's state in the sweep's
``tune/`` folder; the same command resumes it: finished trials stay finished and unfinished ones resume from their
run folders' checkpoints. An interrupted sweep first asks its running trials to stop (a small named actor carries
the request, so trials on other nodes hear it too): each one checkpoints at the end of its current round of training
and says so, and only then, or after ``STOP_GRACE_S``, does Tune end the run (it kills a trial that has not answered
within seconds, which is why it is not left to Tune). A second signal ends it at once. At the end ``summary.md`` and
``summary.json`` give each setting's final metric over its seeds (mean, std with ddof=1, every seed).
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import ray
from ray import tune
from tqdm import tqdm

from forethought.config import ConfigError
from forethought.console import route_library_logs, stderr_to_log
from forethought.signals import Stopped
from forethought.stats import summarize
from forethought.sweep_spec import Sweep, check_folder, trial_config, trial_name
from forethought.train import Training, start_ray

#: set when a SIGINT (or a SIGTERM, turned into one) ends Tune's run early; a process-wide flag because a resumed
#: sweep runs the callback that Tune saved with its state, not the one made here
INTERRUPTED = threading.Event()
#: how long an interrupted sweep waits for its running trials to checkpoint before it ends them anyway
STOP_GRACE_S = 120.0


@ray.remote(num_cpus=0)
class StopFlag:
    """Shared by a sweep's driver and its trials: whether the sweep is stopping, and which trials have checkpointed
    since it was asked to."""

    def __init__(self) -> None:
        self.asked = False
        self.stopped: set[str] = set()

    def ask(self) -> None:
        self.asked = True

    def is_asked(self) -> bool:
        return self.asked

    def stop(self, trial_id: str) -> None:
        self.stopped.add(trial_id)

    def stopped_trials(self) -> set[str]:
        return self.stopped


class Stopping:
    """The driver's side of a stop: the first SIGINT (or SIGTERM, turned into one) asks the trials through the flag;
    once every running trial has checkpointed, or after STOP_GRACE_S, or at a second signal, Tune's own handler ends
    the run and saves its state. Process-wide (see INTERRUPTED)."""

    def __init__(self) -> None:
        self.flag: Any = None
        self.asked_at: float | None = None
        self.polled = 0.0
        self.end_tune: Callable[[int, Any], Any] | None = None
        self.say: Callable[[str], Any] = print

    def reset(self, flag: Any) -> None:
        self.flag, self.asked_at, self.end_tune = flag, None, None

    def on_signal(self, signum: int, frame: Any) -> None:
        INTERRUPTED.set()
        if self.asked_at is None and self.flag is not None:
            self.asked_at = time.monotonic()
            self.flag.ask.remote()
            self.say("stopping: each running trial writes a checkpoint first (Ctrl-C again to stop at once)")
        else:
            self.end()

    def poll(self, running: set[str]) -> None:
        """End Tune's run once every running trial has checkpointed (asked at most twice a second)."""
        now = time.monotonic()
        if self.asked_at is None or self.end_tune is None or now - self.polled < 0.5:
            return
        self.polled = now
        if running <= ray.get(self.flag.stopped_trials.remote()) or now - self.asked_at > STOP_GRACE_S:
            self.end()

    def end(self) -> None:
        handler, self.end_tune = self.end_tune, None
        if callable(handler):
            handler(signal.SIGINT, None)


STOPPING = Stopping()


def _index(trial_id: str) -> str:
    return trial_id.rsplit("_", 1)[-1]


class Trial(tune.Trainable):
    """One trial: a training run whose Tune steps end at each record that holds the sweep's metric."""

    def setup(self, config: dict[str, Any], sweep: Sweep, stop_flag: str = "") -> None:  # type: ignore[override]
        self.metric = sweep.metric
        self.flag = ray.get_actor(stop_flag) if stop_flag else None
        self.asked = False
        self.session = Training(trial_config(sweep, config, _index(self.trial_id)), console=False)

    def _stop_asked(self) -> bool:
        """Whether the sweep is stopping (asked of its flag once per round of training)."""
        self.asked = self.asked or (self.flag is not None and bool(ray.get(self.flag.is_asked.remote())))
        return self.asked

    def _result(self, record: dict[str, Any], done: bool = False) -> dict[str, Any]:
        result = {key: value for key, value in record.items() if key != "summary" and value is not None}
        return {**result, "env_steps": self.session.step, "run_dir": str(self.session.run_dir), "done": done}

    def step(self) -> dict[str, Any]:
        session = self.session
        self._stop_asked()  # read once before the first round; advance reads it after every round
        while not session.done and not self.asked:
            record = session.advance(self._stop_asked)
            if session.done or self.asked:
                break
            if record is not None and record.get(self.metric) is not None:
                return self._result(record)
        if self.asked and self.flag is not None:  # the round's record is written; Tune ends this actor once all
            session.interrupt()                      # running trials have checkpointed
            ray.get(self.flag.stop.remote(self.trial_id))
            threading.Event().wait()
        return self._result(session.finish(), done=True)

    def save_checkpoint(self, checkpoint_dir: str) -> dict[str, Any]:
        """Tune's checkpoint of a trial names its run folder, which holds the real checkpoints."""
        return {"run_dir": str(self.session.run_dir)}

    def load_checkpoint(self, checkpoint: dict[str, Any] | None) -> None:
        """Nothing to load: setup resumed the run folder from its newest checkpoint already."""

    def cleanup(self) -> None:
        session = getattr(self, "session", None)  # None when setup failed
        if session is not None and not session.closed:  # stopped early (ASHA, an interrupted sweep): keep it
            session.interrupt()


def param_space(sweep: Sweep) -> dict[str, Any]:
    """Tune's search space of the sweep's parameters."""
    space: dict[str, Any] = {}
    for key, parameter in sweep.parameters.items():
        if parameter.values is not None:
            space[key] = tune.grid_search(parameter.values) if sweep.search == "grid" else tune.choice(parameter.values)
        elif parameter.uniform is not None:
            space[key] = tune.uniform(*parameter.uniform)
        elif parameter.loguniform is not None:
            space[key] = tune.loguniform(*parameter.loguniform)
        elif parameter.randint is not None:
            space[key] = tune.randint(*parameter.randint)
    return space


def trial_count(sweep: Sweep) -> int:
    """Trials the sweep runs: every combination of the values lists per repeat of a grid, else ``samples``."""
    if sweep.search != "grid":
        return sweep.samples
    lists = [len(p.values) for p in sweep.parameters.values() if p.values is not None]
    return sweep.samples * math.prod(lists)


def resources(sweep: Sweep) -> Any:
    """Per trial, the placement group its run needs: the driver (its learner's GPUs when learning there), each
    env runner, each remote learner."""
    from ray.tune.execution.placement_groups import PlacementGroupFactory

    def request(params: dict[str, Any]) -> PlacementGroupFactory:
        scale = trial_config(sweep, params, "check").scale
        local_gpus = scale.num_gpus_per_learner if scale.num_learners == 0 else 0.0
        runner = {"CPU": scale.num_cpus_per_env_runner, "GPU": scale.num_gpus_per_env_runner,
                  **scale.env_runner_resources}
        learner = {"CPU": 1.0, "GPU": scale.num_gpus_per_learner}
        return PlacementGroupFactory([{"CPU": 1.0, "GPU": local_gpus}, *[runner] * scale.num_env_runners,
                                      *[learner] * scale.num_learners], strategy="PACK")

    return request


class Progress(tune.Callback):
    """A bar of env steps over all trials and one line per finished, stopped or failed trial."""

    def __init__(self, sweep: Sweep, steps: int, enabled: bool) -> None:
        self.sweep, self.steps, self.enabled = sweep, steps, enabled
        self.done: dict[str, int] = {}
        self.bar: Any = None

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its callbacks with the experiment's state
        return {**self.__dict__, "bar": None}

    def setup(self, stop: Any = None, num_samples: int | None = None, total_num_samples: int | None = None,
              **info: Any) -> None:
        """Take SIGINT over from Tune's own handler (installed by now; it ends the run and saves its state), which
        STOPPING calls once the trials have checkpointed; start the bar here, so that its clock (and the rate it
        shows) counts from the sweep's start, not its first result."""
        INTERRUPTED.clear()
        STOPPING.say = self._bar().write
        if threading.current_thread() is threading.main_thread():
            STOPPING.end_tune = signal.getsignal(signal.SIGINT)  # type: ignore[assignment]
            signal.signal(signal.SIGINT, STOPPING.on_signal)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        STOPPING.poll({trial.trial_id for trial in trials if trial.status == "RUNNING"})

    def _bar(self) -> Any:
        if self.bar is None:
            self.bar = tqdm(total=trial_count(self.sweep) * self.steps, unit="step", desc=f"tune {self.sweep.name}",
                            disable=not self.enabled, dynamic_ncols=True)
        return self.bar

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.done[trial.trial_id] = int(result.get("env_steps", 0))
        bar = self._bar()
        bar.n = sum(self.done.values())
        bar.refresh()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        steps, value = int(result.get("env_steps", 0)), result.get(self.sweep.metric)
        if steps < self.steps:  # stopped early: count the steps it will not take
            self.done[trial.trial_id] = self.steps
        early = " (stopped early by ASHA)" if steps < self.steps else ""
        shown = "-" if value is None else f"{value:.4g}"
        self._bar().write(f"{trial_name(trial.config, _index(trial.trial_id))}: {self.sweep.metric} {shown} "
                          f"at {steps:,} env steps{early}")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._bar().write(f"{trial_name(trial.config, _index(trial.trial_id))}: failed; see "
                          f"{trial.local_path or self.sweep.folder}/error.txt")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self.bar is not None:
            self.bar.close()


def summary(sweep: Sweep, trials: list[dict[str, Any]]) -> dict[str, Any]:
    """Each setting (the searched values other than run.seed) with its trials' final metric over seeds."""
    rows: dict[str, dict[str, Any]] = {}
    for trial in trials:
        setting = {k: v for k, v in trial["params"].items() if k != "run.seed"}
        row = rows.setdefault(json.dumps(setting, sort_keys=True), {"setting": setting, "trials": []})
        row["trials"].append(trial)
    table = []
    for row in rows.values():
        finals = [t["final"] for t in row["trials"] if t["final"] is not None]
        exploring = [t["exploring"] for t in row["trials"] if t["exploring"] is not None]
        stats = summarize(finals) if finals else None
        explored = summarize(exploring) if exploring else None
        table.append({**row, "seeds": [t["seed"] for t in row["trials"]],
                      "finals": [t["final"] for t in row["trials"]],
                      "mean": stats and stats["mean"], "std": stats and stats["std"],
                      "exploring_mean": explored and explored["mean"], "exploring_std": explored and explored["std"]})
    key = (lambda r: -math.inf if r["mean"] is None else r["mean"]) if sweep.mode == "max" else (
        lambda r: math.inf if r["mean"] is None else -r["mean"])
    table.sort(key=key, reverse=True)
    return {"sweep": sweep.name, "metric": sweep.metric, "mode": sweep.mode, "settings": table, "trials": trials}


def markdown(report: dict[str, Any]) -> str:
    """The summary as a markdown table, best setting first."""
    metric = report["metric"]
    lines = [f"| setting | seeds | final {metric} (mean ± std) | per seed | exploring return (mean ± std) |",
             "|---|---|---|---|---|"]
    for row in report["settings"]:
        setting = ", ".join(f"{k}={v}" for k, v in row["setting"].items()) or "(one setting)"
        spread = "-" if row["mean"] is None else f"{row['mean']:.4g} ± {row['std']:.3g}"
        per_seed = ", ".join(f"{s}: {'-' if f is None else f'{f:.4g}'}{'' if t['status'] == 'finished' else ' *'}"
                             for s, f, t in zip(row["seeds"], row["finals"], row["trials"], strict=True))
        explored = "-" if row["exploring_mean"] is None else f"{row['exploring_mean']:.4g} ± {row['exploring_std']:.3g}"
        lines.append(f"| {setting} | {len(row['seeds'])} | {spread} | {per_seed} | {explored} |")
    if any(t["status"] != "finished" for t in report["trials"]):
        lines.append("\n\\* not at train.steps: stopped early by ASHA (its value when stopped) or failed (-)")
    return "\n".join(lines)


def _trials(sweep: Sweep, grid: Any, steps: int) -> list[dict[str, Any]]:
    trials = []
    for result in grid:
        if result.config is None:  # a trial that had not started when the sweep was stopped
            continue
        metrics = result.metrics or {}
        at = int(metrics.get("env_steps", 0))
        status = "failed" if result.error else "finished" if at >= steps else "stopped"
        params = dict(result.config)
        seed = trial_config(sweep, params, "check").run.seed
        trials.append({"params": params, "seed": seed, "status": status, "env_steps": at,
                       "final": metrics.get(sweep.metric), "exploring": metrics.get("episode/return"),
                       "run_dir": metrics.get("run_dir", "")})
    return sorted(trials, key=lambda t: t["run_dir"])


def run_sweep(sweep: Sweep, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the sweep's trials on Ray Tune; returns the summary (also summary.md and .json)."""
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    resumed = check_folder(sweep)
    first = {key: p.candidates()[0] for key, p in sweep.parameters.items()}
    probe = trial_config(sweep, first, "check")
    steps = probe.train.steps
    if sweep.search == "optuna":
        try:
            from ray.tune.search.optuna import OptunaSearch

            searcher: Any = OptunaSearch(seed=sweep.seed)
        except ImportError:
            raise ConfigError("search: optuna needs the optuna package: pip install 'forethought[tune]' "
                              "(or use search: random)") from None
    else:
        searcher = BasicVariantGenerator(random_state=sweep.seed, max_concurrent=sweep.max_concurrent)
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # each run folder has its metrics.jsonl
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the older reporter, silent at verbose=0: ours reports
    with stderr_to_log(sweep.folder):
        start_ray(probe)
        route_library_logs(sweep.folder)
    # a flag of its own name per run of the command (a resumed sweep's trials get the new one)
    flag_name = f"forethought-stop-{os.getpid()}-{time.time_ns()}"
    STOPPING.reset(StopFlag.options(name=flag_name).remote())  # type: ignore[attr-defined]
    trainable = tune.with_resources(tune.with_parameters(Trial, sweep=sweep, stop_flag=flag_name), resources(sweep))
    state = sweep.folder / "tune"
    if resumed and tune.Tuner.can_restore(str(state)):
        tuner = tune.Tuner.restore(str(state), trainable, resume_unfinished=True, resume_errored=True)
        print(f"resuming sweep {sweep.name} from {state}")
    else:
        scheduler = None if sweep.asha is None else ASHAScheduler(
            time_attr="env_steps", max_t=steps, grace_period=sweep.asha.grace_period,
            reduction_factor=sweep.asha.reduction_factor)
        tuner = tune.Tuner(
            trainable, param_space=param_space(sweep),
            tune_config=tune.TuneConfig(metric=sweep.metric, mode=sweep.mode, search_alg=searcher,
                                        scheduler=scheduler, num_samples=sweep.samples,
                                        # the variant generator limits itself; Optuna is wrapped by Tune
                                        max_concurrent_trials=(sweep.max_concurrent or None) if sweep.search ==
                                        "optuna" else None,
                                        trial_dirname_creator=lambda trial: trial.trial_id),
            run_config=tune.RunConfig(name="tune", storage_path=str(sweep.folder), verbose=0,
                                      callbacks=[Progress(sweep, steps, progress)]))
    print(f"sweep {sweep.name}: {trial_count(sweep)} trials of {steps:,} env steps in {sweep.folder}")
    asked: list[int] = []

    def as_sigint(signum: int, frame: Any) -> None:
        asked.append(signum)
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, as_sigint)
    try:  # Tune ends a run on SIGINT, saving its state; SIGTERM (schedulers, Kubernetes) is made the same
        grid = tuner.fit()
    finally:
        signal.signal(signal.SIGTERM, previous)
    trials = _trials(sweep, grid, steps)
    report = summary(sweep, trials)
    (sweep.folder / "summary.json").write_text(json.dumps(report, indent=2))
    (sweep.folder / "summary.md").write_text(markdown(report) + "\n")
    if INTERRUPTED.is_set():
        signum = asked[0] if asked else signal.SIGINT
        done = sum(t["status"] == "finished" for t in trials)
        raise Stopped(signum, f"sweep {sweep.name} stopped by {signal.Signals(signum).name} with {done} of "
                              f"{trial_count(sweep)} trials finished; run the same command to resume")
    return report
