"""Environments for Forethought: numpy and gymnasium only, never torch.

``envs.make(env_id, seed=...)`` gives any supported env dict observations (``image`` uint8
H x W x C, ``vector`` float32) and Discrete, MultiDiscrete or [-1, 1] Box actions. Importing the
package registers the built-in hierarchical tasks under the ``forethought/`` namespace.
"""

from envs.errors import EnvError, MissingSuiteError, UnknownEnvError, UnsupportedSpaceError
from envs.make import BUILTIN_TASKS, installed_suites, make, register_all

register_all()

__all__ = [
    "BUILTIN_TASKS",
    "EnvError",
    "MissingSuiteError",
    "UnknownEnvError",
    "UnsupportedSpaceError",
    "installed_suites",
    "make",
    "register_all",
]
