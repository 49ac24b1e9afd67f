"""The Streamlit catalog browser.

The app itself lives in ``main.py`` (the script handed to ``streamlit run``) and its pages in
``views/`` (listed in ``main.py`` for :func:`st.navigation`); every page reads the catalog
through :mod:`motifcat.app.data`, which calls only the public query, export and catalog
functions. This module only starts it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

from motifcat.errors import MotifcatError

#: The script ``streamlit run`` executes.
MAIN_SCRIPT = Path(__file__).with_name("main.py")


#: The address the server binds unless told otherwise: this machine only. The console runs
#: Cypher for whoever can reach the page, so the network is opt-in (``--host``).
DEFAULT_HOST = "127.0.0.1"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def is_loopback(host: str) -> bool:
    """True when ``host`` is reachable from this machine only.

    Examples
    --------
    >>> is_loopback("127.0.0.1"), is_loopback("0.0.0.0")
    (True, False)
    """
    return host in _LOOPBACK or host.startswith("127.")


def launch_command(
    catalog: str | None = None, port: int = 8501, host: str = DEFAULT_HOST
) -> list[str]:
    """The command line that serves the catalog browser.

    The catalog URI is *not* on it (a password in a URI would show in every process list):
    :func:`launch` hands it to the server in ``$MOTIFCAT_CATALOG``.

    Parameters
    ----------
    catalog : str or None
        Unused here (kept for callers of the old signature); see :func:`launch`.
    port : int
        TCP port of the web server (1-65535).
    host : str, default "127.0.0.1"
        Address to bind; anything but a loopback address exposes the app to the network.

    Returns
    -------
    list of str
        ``python -m streamlit run .../main.py --server.address HOST --server.port PORT ...``.

    Raises
    ------
    MotifcatError
        If ``port`` is not a valid TCP port or ``host`` is empty.

    Examples
    --------
    >>> cmd = launch_command("./cat", port=8600)
    >>> cmd[cmd.index("--server.port") + 1], cmd[cmd.index("--server.address") + 1]
    ('8600', '127.0.0.1')
    >>> "./cat" in cmd
    False
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise MotifcatError(f"app port: {port!r} is not a TCP port (1-65535)")
    if not host or not str(host).strip():
        raise MotifcatError("app host: empty address")
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(MAIN_SCRIPT),
        "--server.address",
        str(host),
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        # No network at run time: Streamlit would otherwise send usage statistics.
        "--browser.gatherUsageStats",
        "false",
        # A catalog browser, not a Streamlit Cloud app: no "Deploy" button.
        "--client.toolbarMode",
        "minimal",
    ]


def launch_env(catalog: str | None = None) -> dict[str, str]:
    """The server's environment: this one, with the catalog URI in ``$MOTIFCAT_CATALOG``."""
    env = dict(os.environ)
    if catalog is not None and str(catalog) != "":
        env["MOTIFCAT_CATALOG"] = str(catalog)
    return env


def _die_with_us() -> None:  # pragma: no cover - runs in the forked child before exec
    from motifcat.procs import signal_on_parent_death

    signal_on_parent_death(signal.SIGTERM)


#: Signals :func:`launch` passes on to the server (a service manager's stop, a closed terminal).
FORWARDED_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGINT", "SIGQUIT")
    if hasattr(signal, name)
)


def launch(catalog: str | None = None, port: int = 8501, host: str = DEFAULT_HOST) -> int:
    """Serve the catalog browser on ``http://HOST:PORT`` until stopped.

    Signals sent to this process (SIGTERM, SIGHUP, SIGINT, SIGQUIT) are forwarded to the
    Streamlit server and this process waits for it to exit; on Linux the server also gets
    SIGTERM if this process dies without a chance to forward anything (``SIGKILL``).

    Parameters
    ----------
    catalog : str or None
        Catalog URI; None uses ``$MOTIFCAT_CATALOG`` or ``./motifcat-catalog``.
    port : int
        TCP port of the web server.
    host : str, default "127.0.0.1"
        Address to bind; a warning is printed when it is not a loopback address.

    Returns
    -------
    int
        Exit code of the Streamlit server.

    Examples
    --------
    >>> launch("./motifcat-catalog", port=8501)  # doctest: +SKIP
    """
    cmd = launch_command(catalog, port, host)
    if not is_loopback(host):
        warnings.warn(
            f"motifcat app: serving on {host}:{port}, reachable from the network; anyone who "
            "can reach it can read the whole catalog and run console queries",
            stacklevel=2,
        )
    preexec = _die_with_us if sys.platform.startswith("linux") else None
    proc = subprocess.Popen(cmd, env=launch_env(catalog), preexec_fn=preexec)  # noqa: PLW1509
    previous = {}

    def forward(signum, _frame) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    for sig in FORWARDED_SIGNALS:
        try:
            previous[sig] = signal.signal(sig, forward)
        except (ValueError, OSError):  # not the main thread, or not allowed here
            pass
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:  # pragma: no cover - handled by forward() above
                proc.send_signal(signal.SIGINT)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:  # pragma: no cover - only if wait() itself failed
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


__all__ = ["DEFAULT_HOST", "MAIN_SCRIPT", "is_loopback", "launch", "launch_command", "launch_env"]
