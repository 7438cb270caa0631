"""One Ray for the whole pytest session, sized for this machine (2 CPUs), started only when a test asks; one
short real training run that several tests read."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def train_briefly(folder: Path, *presets: str) -> Path:
    """A run folder of a short debug-sized `forethought train` run (two checkpoints kept, no evaluation)."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "forethought"), "train", "-c", *presets, "debug", f"run.dir={folder}",
         "train.steps=384", "train.checkpoint_every=192", "train.eval_episodes=0", "run.wandb=disabled", "--quiet"],
        capture_output=True, text=True, cwd=ROOT, timeout=600, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


@pytest.fixture(scope="session")
def trained_cartpole(tmp_path_factory):
    """The flat agent trained briefly on CartPole (episode lengths vary with the seed)."""
    return train_briefly(tmp_path_factory.mktemp("cartpole") / "run", "cartpole")


@pytest.fixture(scope="session")
def ray_session():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=256 * 2**20,
             log_to_driver=False)
    yield ray
    ray.shutdown()
