"""The catalog browser end to end: a real server, driven by Debian's Chromium in headless mode.

The server is ``motifcat app`` (or, until the CLI has that command, the same ``streamlit run``
command line :func:`motifcat.app.launch_command` builds) on a free localhost port against a small
real catalog. Every page is opened, must show its expected text and no Streamlit exception, and
is saved as a screenshot under ``tests/artifacts/`` (git-ignored). Only the system browser and
driver are used: Selenium Manager never runs and nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from motifcat.app import launch_command

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).parent / "artifacts"
SERVER_START_S = 90
PAGE_LOAD_S = 60
WINDOW = (1400, 900)

#: URL path -> texts the page must show once it has run.
PAGES: dict[str, list[str]] = {
    "overview": ["Overview", "Materials", "Samples", "Recurring motifs", "instances"],
    "image": ["Image", "Motif classes in this image", "Columns (level 1)"],
    "motifs": ["Motifs", "Composition", "Where it occurs"],
    "hierarchy": ["Hierarchy", "COMPOSED_OF edges"],
    "cypher": ["Cypher", "Read-only"],
    "export": ["Export", "Column content per level-1 motif", "Download extxyz", "Download POSCAR"],
}

if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.skip(
        f"no system Chromium/chromedriver ({CHROMIUM}, {CHROMEDRIVER}); install the Debian "
        "packages chromium and chromium-driver (make browser-deps)",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(uri: str, port: int) -> list[str]:
    """``motifcat app`` when the CLI has it, else the same streamlit command line."""
    cli = Path(sys.executable).with_name("motifcat")
    if cli.exists():
        probe = subprocess.run([str(cli), "app", "--help"], capture_output=True, timeout=60)
        if probe.returncode == 0:
            return [str(cli), "app", "--catalog", uri, "--port", str(port)]
    return launch_command(uri, port)


@pytest.fixture(scope="module")
def server(tmp_path_factory, synthetic):
    from test_app import build_catalog

    uri, _ = build_catalog(tmp_path_factory.mktemp("browser") / "cat", synthetic)
    port = free_port()
    log = tmp_path_factory.mktemp("log") / "server.log"
    env = {**os.environ, "MOTIFCAT_CATALOG": uri}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            server_command(uri, port), stdout=out, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,  # its own process group: stopping it stops its children
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the app server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the app server did not answer in {SERVER_START_S} s:\n"
                            f"{log.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    # Selenium Manager would look for (and download) a browser: never let it run.
    os.environ["SE_OFFLINE"] = "true"
    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        driver.set_window_size(*WINDOW)
        yield driver
    finally:
        driver.quit()


#: Pages with a plotly figure; its SVG must be drawn before the page counts as loaded.
CHARTS = {"overview", "image", "hierarchy", "export"}
PLOTLY_SVG = ".js-plotly-plot .main-svg"


def wait_for_page(driver, texts: list[str], chart: bool = False) -> str:
    """Wait until the script has run, every text is on the page and (if asked) plotly drew."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + PAGE_LOAD_S
    body = ""
    while time.monotonic() < deadline:
        body = driver.find_element(By.TAG_NAME, "body").text
        # stStatusWidget shows "Running..." while the script runs.
        running = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
        drawn = not chart or driver.find_elements(By.CSS_SELECTOR, PLOTLY_SVG)
        if all(t in body for t in texts) and not running and drawn:
            return body
        time.sleep(0.5)
    missing = [t for t in texts if t not in body]
    raise AssertionError(
        f"page did not show {missing or 'its plotly figure'} within {PAGE_LOAD_S} s; it shows:\n"
        f"{body}"
    )


@pytest.mark.parametrize("path", list(PAGES))
def test_every_page_renders_without_exception(server, browser, path):
    from selenium.webdriver.common.by import By

    # The default page (Overview) lives at the root.
    browser.get(f"{server}/{'' if path == 'overview' else path}")
    wait_for_page(browser, PAGES[path], chart=path in CHARTS)
    assert "Page not found" not in browser.find_element(By.TAG_NAME, "body").text
    exceptions = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    assert not exceptions, exceptions[0].text
    errors = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stAlertContentError"]')
    assert not errors, errors[0].text
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / f"{path}.png"))
    assert (ARTIFACTS / f"{path}.png").stat().st_size > 10_000


def test_image_hover_shows_instance_and_motif(server, browser):
    """Hovering a column of the plot shows its instance id and motif id."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/image")
    wait_for_page(browser, PAGES["image"], chart=True)
    points = browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .scatterlayer .point")
    assert points
    ActionChains(browser).move_to_element(points[len(points) // 2]).perform()
    deadline = time.monotonic() + 10
    text = ""
    while time.monotonic() < deadline:
        text = " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, ".hoverlayer"))
        if "motif" in text:
            break
        time.sleep(0.2)
    assert ("column" in text or "unit" in text) and "motif L" in text, text


def test_hierarchy_node_click_opens_the_motif(server, browser):
    """Clicking a node of the Hierarchy chart opens that motif on the Motifs page."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/hierarchy")
    wait_for_page(browser, PAGES["hierarchy"], chart=True)
    # The nodes are the last scatter trace (the labels and edges come before it).
    nodes = browser.find_elements(
        By.CSS_SELECTOR, ".js-plotly-plot .scatterlayer .trace:last-of-type .point"
    )
    assert nodes
    ActionChains(browser).move_to_element(nodes[0]).click().perform()
    deadline = time.monotonic() + PAGE_LOAD_S
    headers: list[str] = []
    while time.monotonic() < deadline:
        headers = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "h2")]
        if "/motifs" in browser.current_url and any(h.startswith("L") for h in headers):
            break
        time.sleep(0.5)
    assert "/motifs?motif=" in browser.current_url, browser.current_url
    motif = browser.current_url.split("motif=", 1)[1].split("&", 1)[0]
    assert any(h.split(" · ")[0] == motif for h in headers), (motif, headers)
