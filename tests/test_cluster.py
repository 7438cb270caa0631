"""A real two-node Ray cluster on this machine: `ray start --head` and a second node joined to it with
`ray start --address`, both run by a Python that has the dependencies (torch, ray, gymnasium) but not this
package, so that training there works only if the driver ships the code. The env runners need a custom resource
that only the second node offers; the driver writes checkpoints into its own run folder and resumes from them.
The test stops exactly the processes it started (their sessions), and the pytest session's own Ray survives."""

import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import venv
from pathlib import Path

import pytest

FORETHOUGHT = Path(sys.executable).parent / "forethought"


def bare_python(folder: Path) -> Path:
    """A venv whose site-packages reach this one's as a plain path: its .pth files (the editable install of
    forethought, agents, envs and world_models) are not read, so the packages are not importable."""
    venv.EnvBuilder(with_pip=False).create(folder)
    python = folder / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def session_processes(sessions: set[int]) -> list[int]:
    """Processes (not zombies) whose session is one of ``sessions``: everything a `ray start` began."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) in sessions:
            found.append(int(stat.parent.name))
    return found


def stop(sessions: set[int], grace: float = 15.0) -> None:
    """SIGTERM every process of the sessions, SIGKILL what is left after ``grace`` seconds, wait for all to end."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 30.0)):
        for pid in session_processes(sessions):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + wait
        while session_processes(sessions) and time.time() < deadline:
            time.sleep(0.2)
        if not session_processes(sessions):
            return


def start_node(python: Path, env: dict, *args: str) -> subprocess.Popen:
    node = subprocess.Popen([str(python), "-m", "ray.scripts.scripts", "start", "--num-cpus=1", "--block",
                             "--disable-usage-stats", "--object-store-memory=100000000", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd="/",
                            start_new_session=True)
    lines = []
    deadline = time.time() + 90
    while time.time() < deadline:  # `--block` prints this once the node is up
        line = node.stdout.readline()
        lines.append(line)
        if "block forever" in line:
            return node
        if not line and node.poll() is not None:
            break
    raise AssertionError("ray start did not come up:\n" + "".join(lines[-30:]))


@pytest.fixture
def cluster(tmp_path, ray_session):
    python = bare_python(tmp_path / "node-env")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["RAY_AUTH_MODE"] = "disabled"
    check = subprocess.run([str(python), "-c", "import ray, torch, gymnasium\ntry:\n import forethought\nexcept "
                            "ImportError:\n print('bare')"], capture_output=True, text=True, env=env, cwd="/")
    assert check.stdout.strip() == "bare", check.stderr[-2000:]  # the nodes cannot import this package
    port = free_port()
    sessions: set[int] = set()
    try:
        head = start_node(python, env, "--head", f"--port={port}", "--include-dashboard=false",
                          '--resources={"head_node": 1}')
        sessions.add(head.pid)
        second = start_node(python, env, f"--address=127.0.0.1:{port}", '--resources={"rollout_node": 1}')
        sessions.add(second.pid)
        yield f"127.0.0.1:{port}"
    finally:
        stop(sessions)
    assert not session_processes(sessions)
    assert ray_session.get(ray_session.put(41)) == 41  # the session's own Ray was left alone


def test_train_on_a_two_node_cluster_ships_the_code_places_runners_and_resumes(cluster, tmp_path):
    run_dir = tmp_path / "run"

    def train(*extra, folder=run_dir):
        # from a folder outside the repository: Ray puts the driver's working directory on the workers' path
        return subprocess.run([str(FORETHOUGHT), "train", "-c", "keydoor_vector", "debug", f"scale.address={cluster}",
                               "scale.env_runner_resources={rollout_node: 1}", f"run.dir={folder}",
                               "train.checkpoint_every=128", "run.wandb=disabled", "--quiet", *extra],
                              capture_output=True, text=True, cwd=tmp_path, timeout=300,
                              env={**os.environ, "RAY_AUTH_MODE": "disabled"})

    first = train("train.steps=256")
    assert first.returncode == 0, first.stderr[-3000:]
    checkpoints = sorted((run_dir / "checkpoints").glob("step_*"))
    assert [c.name for c in checkpoints] == ["step_0000000128", "step_0000000256"]
    assert all((c / "complete").exists() and (c / "replay.npz").exists() for c in checkpoints)

    second = train("train.steps=384")
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resumed from {checkpoints[-1]} at 256 env steps" in second.stdout
    assert (run_dir / "checkpoints" / "step_0000000384" / "complete").exists()

    # the same run without shipping the code fails on the node that has no forethought, in one sentence
    bare = subprocess.run([str(FORETHOUGHT), "train", "-c", "keydoor_vector", "debug", f"scale.address={cluster}",
                           "scale.env_runner_resources={rollout_node: 1}", "scale.ship_code=false",
                           f"run.dir={tmp_path / 'unshipped'}", "run.wandb=disabled", "--quiet"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert bare.returncode == 2
    assert "with scale.ship_code=false every node needs forethought installed" in bare.stderr
    assert "No module named" in (tmp_path / "unshipped" / "logs" / "third_party.log").read_text()

    # a resource no node offers is refused before anything waits for it
    missing = train("scale.env_runner_resources={gpu_node: 1}", folder=tmp_path / "missing")
    assert missing.returncode == 2
    assert "asks for 1 of resource 'gpu_node', which the cluster offers 0" in missing.stderr
