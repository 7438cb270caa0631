"""One Ray for the whole pytest session, sized for this machine (2 CPUs), started only when a test asks."""

import os

import pytest


@pytest.fixture(scope="session")
def ray_session():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=256 * 2**20,
             log_to_driver=False)
    yield ray
    ray.shutdown()
