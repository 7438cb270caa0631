"""The ``forethought`` command line: ``envs`` lists tasks, ``train`` trains (several seeds as parallel trials with
``run.seeds``), ``eval`` evaluates a checkpoint (or the random baseline), ``tune`` runs a sweep, ``plot`` draws
learning curves, ``diagnose`` measures a checkpoint's parts on its own replay."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Sequence

from forethought import __version__
from forethought.config import Config, ConfigError, available_presets, describe_fields, load_config
from forethought.run_folder import CheckpointError
from forethought.signals import Stopped
from forethought.train import TrainingError

PRESET_HELP = "YAML presets from configs/ (or paths to .yaml files), stacked left to right"
OVERRIDE_HELP = "dotted overrides applied after the presets, e.g. eval.episodes=5 env.id=forethought/KeyDoor-v0"


def _fields_epilog() -> str:
    rows = [f"  {name:<22} {default:<32} {doc}" for name, default, doc in describe_fields()]
    return (
        f"presets: {', '.join(available_presets())}\n\nconfig fields (set with KEY=VALUE):\n"
        + "\n".join(rows)
        + "\n\nexample:\n  forethought eval -c keydoor debug eval.video=true"
    )


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--configs", nargs="+", action="extend", default=[], metavar="PRESET", help=PRESET_HELP)
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDE_HELP)
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forethought",
        description="Forethought: model-based hierarchical reinforcement learning on PyTorch and Ray RLlib.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `forethought COMMAND --help` for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"forethought {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    envs_parser = commands.add_parser(
        "envs", help="list the built-in tasks and which optional suites are installed",
        description="List the built-in tasks and which optional suites (MiniGrid, Crafter) are installed.",
    )
    envs_parser.add_argument("--json", action="store_true", help="print the listing as JSON")

    train_parser = commands.add_parser(
        "train", help="train an agent on Ray RLlib (resumes a run folder that has checkpoints)",
        description=textwrap.dedent("""\
            Train the configured agent on Ray RLlib: env runners fill a sequence replay, the learner
            trains at train.train_ratio. Writes config.yaml, metrics.jsonl and checkpoints into the run
            folder; running the same command on the same folder resumes where it stopped."""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_fields_epilog(),
    )
    _add_config_args(train_parser)
    train_parser.add_argument("--steps", type=int, help="shortcut for train.steps=N")
    train_parser.add_argument("--quiet", action="store_true", help="no progress bar")

    eval_parser = commands.add_parser(
        "eval", help="evaluate a trained agent's checkpoint, or the random baseline, and write a JSON report",
        usage="forethought eval [RUN_DIR_OR_CHECKPOINT] [KEY=VALUE ...] [--episodes N] [--video] [--workers N] "
              "[--random] [-c PRESET ...] [--print-config] [--quiet]",
        description=textwrap.dedent("""\
            Evaluate the agent of a run folder's newest checkpoint (eval.step=N picks another) or of a
            checkpoint folder: eval.episodes episodes, greedy (eval.policy=sampled samples its actions), on
            the run's env or another with the same spaces (env.id=..., env.options=...), seeds run.seed + i.
            Only the agent is loaded; --workers N runs the episodes on N Ray workers, with the same report.
            The report goes to RUN/eval/<checkpoint>_<policy>_<env>_seed<S>.json (per-episode returns and
            lengths, mean, std, 95% CI, the checkpoint and policy), the video of episode 0 beside it.

            Without a run folder: --random runs the random baseline on the configured env into
            run.dir/eval.json."""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_fields_epilog(),
    )
    _add_config_args(eval_parser)
    eval_parser.add_argument("--episodes", type=int, help="shortcut for eval.episodes=N")
    eval_parser.add_argument("--video", action="store_true", help="shortcut for eval.video=true")
    eval_parser.add_argument("--random", action="store_true", help="shortcut for eval.policy=random (the baseline)")
    eval_parser.add_argument("--workers", type=int, help="shortcut for eval.workers=N")
    eval_parser.add_argument("--quiet", action="store_true", help="no progress bar")
    tune_parser = commands.add_parser(
        "tune", help="run a sweep (grid, random or Optuna search, ASHA early stopping) as Ray Tune trials",
        description=textwrap.dedent("""\
            Run the sweep of SWEEP.yaml as Ray Tune trials, each a `forethought train` run in its own run
            folder under the sweep's folder (runs/sweeps/<name>/) and W&B run in the sweep's group, as many
            at once as the CPUs hold. The file names the presets and fixed overrides, the parameters (each
            {values: [...]}, {uniform: [lo, hi]}, {loguniform: [lo, hi]} or {randint: [lo, hi]}), the search
            (grid, random, optuna), samples, the metric and mode, and optional ASHA early stopping
            (asha: {grace_period: env steps, reduction_factor: 3}). Ctrl-C or SIGTERM stops it with
            checkpoints; the same command resumes it. Writes summary.md and summary.json: each setting's
            final metric, mean and std over its seeds, every seed listed. Examples: configs/sweeps/."""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  forethought tune configs/sweeps/keydoor_entropy_grid.yaml train.steps=5000",
    )
    tune_parser.add_argument("sweep", metavar="SWEEP.yaml", help="the sweep file")
    tune_parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="fixed values added to the sweep's "
                             "overrides for every trial, e.g. train.steps=5000")
    tune_parser.add_argument("--dir", help="the sweep's folder, instead of the file's dir (default runs/sweeps/<name>)")
    tune_parser.add_argument("--print-config", action="store_true", help="print the checked sweep as YAML and exit")
    tune_parser.add_argument("--quiet", action="store_true", help="no progress bar")
    plot_parser = commands.add_parser(
        "plot", help="draw runs' learning curves (PNG and SVG) and a table of when each reaches a threshold",
        description=textwrap.dedent("""\
            Draw a metric of run folders against env steps or wall time: runs grouped by a config field,
            each group's mean and Student-t 95% interval over its runs. Writes OUT.png, OUT.svg, and OUT.md
            and OUT.csv: per run, the env steps and wall seconds at which the metric first reaches
            --threshold, and its final value; per group, the mean final value and its spread."""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  forethought plot 'runs/*KeyDoorVector*' --group agent.name --threshold 0.9",
    )
    plot_parser.add_argument("runs", nargs="+", metavar="RUN_OR_GLOB", help="run folders or glob patterns (quoted)")
    plot_parser.add_argument("--metric", default="eval/return", help="metric to draw (default eval/return; "
                             "episode/return is the exploring return)")
    plot_parser.add_argument("--x", default="env_steps", choices=["env_steps", "wall"], help="x axis (default "
                             "env_steps)")
    plot_parser.add_argument("--group", default="agent.name", help="dotted config field that groups runs (default "
                             "agent.name; e.g. env.id)")
    plot_parser.add_argument("--threshold", type=float, help="report when each run first reaches this value")
    plot_parser.add_argument("--out", default="plot.png", help="where the PNG goes; the SVG, .md and .csv go "
                             "beside it (default plot.png)")
    diagnose_parser = commands.add_parser(
        "diagnose", help="measure a checkpoint's reward head, critic, actor and replay on its own replay",
        description=textwrap.dedent("""\
            Where learning stalls: on every step of a checkpoint's replay, the reward head's predictions on
            rewarded steps against the rest, the continuation head's on terminal steps, the critic's value
            against the discounted return that followed, the actor's entropy, and how much of the task
            replay holds (distinct observations). Prints the figures and writes
            <run>/diagnose/<checkpoint>.json. Nothing is trained; Ray does not start."""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  forethought diagnose runs/forethought-KeyDoorVector-v0 --step 10000",
    )
    diagnose_parser.add_argument("target", metavar="RUN_OR_CHECKPOINT", help="a run folder (its newest checkpoint) "
                                 "or a checkpoints/step_<N> folder")
    diagnose_parser.add_argument("--step", type=int, help="the run folder's checkpoint of this env step")
    diagnose_parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser


def _cmd_envs(args: argparse.Namespace) -> int:
    import envs

    suites = envs.installed_suites()
    if args.json:
        tasks = [{"id": t.id, "description": t.description, "max_episode_steps": t.max_episode_steps}
                 for t in envs.BUILTIN_TASKS]
        print(json.dumps({"builtin": tasks, "suites": suites}, indent=2))
        return 0
    print("Built-in tasks (registered with gymnasium once `envs` is imported):")
    for task in envs.BUILTIN_TASKS:
        print(f"  {task.id:<34} {task.description} ({task.max_episode_steps} steps)")
    print("\nOptional suites:")
    for name, version in suites.items():
        state = f"installed ({version})" if version else f"not installed: pip install 'forethought[{name}]'"
        print(f"  {name:<10} {state}")
    print("\nAny registered gymnasium id and 'module:Class' (your own gymnasium.Env) work too.")
    return 0


def _resolve_overrides(args: argparse.Namespace, shortcuts: dict[str, str]) -> list[str]:
    """The KEY=VALUE words of the command line (some swallowed by -c) and its shortcut options, in order."""
    overrides = [word for word in args.configs if "=" in word] + list(args.overrides)
    for attribute, key in shortcuts.items():
        value = getattr(args, attribute, None)
        if value is True:
            overrides.append(f"{key}=true")
        elif value not in (None, False):
            overrides.append(f"{key}={value}")
    return overrides


def _resolve(args: argparse.Namespace, shortcuts: dict[str, str]) -> Config:
    # nargs="+" of --configs also swallows the KEY=VALUE words that follow it
    presets = [word for word in args.configs if "=" not in word]
    return load_config(presets, _resolve_overrides(args, shortcuts))


def _print_config(config: Config) -> None:
    import yaml

    from forethought.loading import agent_config

    agent_config(config)  # the agent's sections are checked too: a misspelt key fails here as it would in training
    print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), end="")


def _cmd_train(args: argparse.Namespace) -> int:
    from forethought.console import format_summary
    from forethought.train import train

    config = _resolve(args, {"steps": "train.steps"})
    if args.print_config:
        _print_config(config)
        return 0
    if config.run.seeds:  # one trial per seed, on Ray Tune
        from forethought.sweep import markdown, run_sweep
        from forethought.sweep_spec import seeds_sweep

        presets = [word for word in args.configs if "=" not in word]
        report = run_sweep(seeds_sweep(config, presets, _resolve_overrides(args, {"steps": "train.steps"})),
                           progress=not args.quiet)
        print(markdown(report))
        print(f"\nper-seed run folders: {config.run.dir}/seed<S>; curves: forethought plot '{config.run.dir}/seed*'")
        return 0
    record = train(config, progress=not args.quiet)
    print(format_summary(record["summary"]))
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from pathlib import Path

    from forethought.sweep import markdown, run_sweep
    from forethought.sweep_spec import read_sweep

    sweep = read_sweep(Path(args.sweep), args.overrides)
    if args.dir:
        sweep = sweep.model_copy(update={"dir": args.dir})
    if args.print_config:
        import yaml

        print(yaml.safe_dump(sweep.model_dump(mode="json"), sort_keys=False), end="")
        return 0
    report = run_sweep(sweep, progress=not args.quiet)
    print(markdown(report))
    first = next(iter(sweep.parameters))
    print(f"\nwrote {sweep.folder}/summary.md and summary.json; curves: forethought plot '{sweep.folder}/*/' "
          f"--group {first}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from forethought.evaluate import evaluate, format_report

    shortcuts = {"episodes": "eval.episodes", "video": "eval.video", "workers": "eval.workers"}
    if args.random:
        args.overrides.append("eval.policy=random")
    targets = [word for word in args.overrides if "=" not in word]
    if targets:  # a run folder or a checkpoint: its config.yaml is the config
        from pathlib import Path

        from forethought.evaluate_checkpoint import evaluate_checkpoint

        if len(targets) > 1 or args.configs or args.print_config:
            raise ConfigError(f"give one run folder or checkpoint and KEY=VALUE overrides, not {' '.join(targets)}"
                              f"{' with -c presets or --print-config' if args.configs or args.print_config else ''}"
                              " (the run's config.yaml is the config)")
        args.overrides = [word for word in args.overrides if "=" in word]
        report = evaluate_checkpoint(Path(targets[0]), _resolve_overrides(args, shortcuts), progress=not args.quiet)
        print(format_report(report))
        return 0
    config = _resolve(args, shortcuts)
    if args.print_config:
        _print_config(config)
        return 0
    if config.eval.policy != "random":
        raise ConfigError(f"eval.policy={config.eval.policy} needs a trained agent: give its run folder or checkpoint "
                          "(forethought eval RUN_DIR), or --random for the random baseline")
    if config.eval.workers:
        raise ConfigError("eval.workers applies to a run folder's checkpoint; the random baseline runs here")
    report = evaluate(config, progress=not args.quiet)
    print(format_report(report))
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from pathlib import Path

    from forethought.plot import plot

    written = plot(args.runs, args.metric, args.x, args.group, args.threshold, Path(args.out))
    print(written["table"])
    print(f"\nwrote {', '.join(written['plots'])}, {written['markdown']}, {written['csv']}")
    return 0


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from pathlib import Path

    from forethought.diagnose import diagnose, format_diagnosis, write_diagnosis

    report = diagnose(Path(args.target), args.step)
    path = write_diagnosis(report)
    print(json.dumps(report, indent=2) if args.json else f"{format_diagnosis(report)}\n\nwrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; bad input exits 2 with one sentence, not a traceback."""
    import envs

    args = build_parser().parse_args(argv)
    try:
        return {"envs": _cmd_envs, "train": _cmd_train, "eval": _cmd_eval, "tune": _cmd_tune,
                "plot": _cmd_plot, "diagnose": _cmd_diagnose}[args.command](args)
    except (ConfigError, envs.EnvError, TrainingError, CheckpointError) as error:
        print(f"forethought: error: {error}", file=sys.stderr)
        return 2
    except Stopped as stopped:
        print(f"forethought: {stopped}", file=sys.stderr)
        return stopped.exit_code
    except KeyboardInterrupt:
        print("forethought: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
