"""Exceptions with the exit codes the CLI maps them to (docs/ARCHITECTURE.md, "Runs, results and
errors")."""


class CosmobenchError(Exception):
    exit_code = 1


class ConfigError(CosmobenchError, ValueError):
    """Bad usage or configuration: unknown key, wrong type, bad value. Exit code 2."""

    exit_code = 2


class InputError(CosmobenchError, ValueError):
    """Bad input data: missing file, missing column, wrong shape. Exit code 2."""

    exit_code = 2


class RunFailure(CosmobenchError, RuntimeError):
    """A run started but failed (e.g. non-finite loss). Exit code 1."""

    exit_code = 1


class NonFiniteLossError(RunFailure):
    """The training or validation loss became NaN or infinite."""
