"""Child processes that die with their parent.

A ``SIGKILL`` of ``motifcat ingest`` used to leave its analysis workers (~450 MB each) running
for minutes: a killed parent cannot clean up, so each child must notice by itself.
:func:`die_with_parent` arranges both of:

* on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the child the moment its
  parent exits, however the parent died;
* everywhere, a daemon thread polling ``os.getppid()`` once a second (a parent's death
  re-parents the child), as the fallback where prctl is unavailable.

The parent's pid is checked right after arming, so a parent that died before the child armed
itself is not missed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading

_PR_SET_PDEATHSIG = 1


def _prctl_pdeathsig(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(parent_pid: int, poll_s: float = 1.0) -> None:
    """Make this process exit when the process ``parent_pid`` exits.

    Parameters
    ----------
    parent_pid : int
        The pid of the parent this process must not outlive (``os.getppid()`` at its start).
    poll_s : float, default 1.0
        Seconds between checks of the fallback watchdog thread.

    Examples
    --------
    >>> import os
    >>> die_with_parent(os.getppid())  # in a child: armed; returns at once
    """
    _prctl_pdeathsig(signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before we armed
        os._exit(1)

    def watch() -> None:
        while True:
            threading.Event().wait(poll_s)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="motifcat-parent-watch", daemon=True).start()


def signal_on_parent_death(sig: int) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent exits (Linux ``prctl``).

    Parameters
    ----------
    sig : int
        The signal, e.g. ``signal.SIGTERM`` for a server that should shut down cleanly.

    Returns
    -------
    bool
        True when armed; False where prctl is unavailable (not Linux).

    Examples
    --------
    >>> import signal, sys
    >>> signal_on_parent_death(0) == sys.platform.startswith("linux")  # 0 disarms
    True
    """
    return _prctl_pdeathsig(sig)
