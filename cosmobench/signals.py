"""SIGTERM stops a cosmobench process like Ctrl-C (docs/ARCHITECTURE.md, "Runs, results and
errors"): a scheduler's time limit or preemption must not be ignored until SIGKILL.

:func:`handle_sigterm` (called first by the CLI) installs a handler that raises
:class:`Terminated` in the main thread; runs stop, are marked interrupted (nothing recorded,
resumable with ``resume=last``) and the CLI exits 143.
"""
from __future__ import annotations

import signal
import threading


class Terminated(BaseException):
    """Raised in the main thread by the SIGTERM handler (:func:`handle_sigterm`): a scheduler's
    time limit or preemption (SLURM sends SIGTERM, then SIGKILL after a grace period). Not a
    KeyboardInterrupt: libraries catch that and carry on (scikit-learn's MLP ends its fit early
    with "Training interrupted by user", so a C2ST would silently change); like it, not an
    Exception, so no ``except Exception`` swallows it. Code that handles Ctrl-C handles both
    (:data:`INTERRUPTS`); the CLI exits 143 (128 + 15)."""

    exit_code = 143


#: what an interrupted run catches: Ctrl-C and SIGTERM
INTERRUPTS = (KeyboardInterrupt, Terminated)


_state = {"received": False, "handled": False}


def _raise_terminated(signum, frame) -> None:
    if _state["handled"]:  # the interrupt is being cleaned up: a repeated SIGTERM must not break it
        return
    if not _state["received"]:
        _state["received"] = True
        # Python code called from C (a __del__, a library's callback) may swallow the exception:
        # deliver it again every 2 s until someone handles it (acknowledge())
        threading.Thread(target=_redeliver, args=(signum,), daemon=True).start()
    raise Terminated(f"received {signal.Signals(signum).name}")


def _redeliver(signum) -> None:
    import os
    import time
    while not _state["handled"]:
        time.sleep(2.0)
        if not _state["handled"]:
            os.kill(os.getpid(), signum)


def acknowledge() -> None:
    """The interrupt reached code that stops the run (runner, CLI): no more re-deliveries."""
    _state["handled"] = True


def handle_sigterm() -> None:
    """Make SIGTERM stop this process like Ctrl-C (:class:`Terminated`), from the main thread
    (the CLI calls it first). Lightning keeps its own handler in front of it while it runs
    (it forwards the signal to DDP children and, under SLURM, requeues on SIGUSR1)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


def interrupt_code(exc: BaseException) -> int:
    """130 (Ctrl-C) or 143 (SIGTERM) for an interrupt: its ``exit_code`` (:class:`Terminated`,
    ``runner.RunInterrupted``), also when Lightning turned it into ``sys.exit(1)`` (the
    original exception is then the context)."""
    acknowledge()
    for e in (exc, exc.__context__):
        code = getattr(e, "exit_code", None)
        if isinstance(code, int):
            return code
    return 130
