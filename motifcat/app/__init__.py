"""The Streamlit catalog browser.

The app itself lives in ``main.py`` (the script handed to ``streamlit run``) and its pages in
``views/`` (listed in ``main.py`` for :func:`st.navigation`); every page reads the catalog
through :mod:`motifcat.app.data`, which calls only the public query, export and catalog
functions. This module only starts it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from motifcat.errors import MotifcatError

#: The script ``streamlit run`` executes.
MAIN_SCRIPT = Path(__file__).with_name("main.py")


def launch_command(catalog: str | None = None, port: int = 8501) -> list[str]:
    """The command line that serves the catalog browser.

    Parameters
    ----------
    catalog : str or None
        Catalog URI (a path, ``ladybug:PATH``, ``bolt://...``); None lets the app use
        ``$MOTIFCAT_CATALOG`` or ``./motifcat-catalog``.
    port : int
        TCP port of the web server on localhost (1-65535).

    Returns
    -------
    list of str
        ``python -m streamlit run .../main.py --server.port PORT --server.headless true ...
        -- --catalog URI``.

    Raises
    ------
    MotifcatError
        If ``port`` is not a valid TCP port.

    Examples
    --------
    >>> cmd = launch_command("./cat", port=8600)
    >>> cmd[cmd.index("--server.port") + 1], cmd[-2:]
    ('8600', ['--catalog', './cat'])
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise MotifcatError(f"app port: {port!r} is not a TCP port (1-65535)")
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(MAIN_SCRIPT),
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
    if catalog is not None and str(catalog) != "":
        cmd += ["--", "--catalog", str(catalog)]
    return cmd


def launch(catalog: str | None = None, port: int = 8501) -> int:
    """Serve the catalog browser on ``http://localhost:PORT`` until interrupted.

    Parameters
    ----------
    catalog : str or None
        Catalog URI; None uses ``$MOTIFCAT_CATALOG`` or ``./motifcat-catalog``.
    port : int
        TCP port of the web server.

    Returns
    -------
    int
        Exit code of the Streamlit server.

    Examples
    --------
    >>> launch("./motifcat-catalog", port=8501)  # doctest: +SKIP
    """
    cmd = launch_command(catalog, port)
    proc = subprocess.Popen(cmd)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        # Ctrl-C reaches the server too (same process group); let it shut down cleanly.
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.terminate()
            return proc.wait()


__all__ = ["MAIN_SCRIPT", "launch", "launch_command"]
