"""Errors that name what was wrong with an env request and what would be accepted."""


class EnvError(ValueError):
    """An env id, option or space that Forethought cannot use; the message says what is accepted."""


class UnknownEnvError(EnvError):
    """No environment is registered under the id."""


class UnsupportedSpaceError(EnvError):
    """The env's observation or action space has a type that the wrappers cannot adapt."""


class MissingSuiteError(EnvError):
    """The id belongs to an optional suite whose package is not installed."""
