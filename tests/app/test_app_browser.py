"""The Streamlit page in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``; ``make test`` installs them with apt-get where it may) opens the
running app, uploads a bundled sample image and reads the probability and the label; a
screenshot is kept in ``tests/artifacts/``. Without the browser the test is skipped and
says why."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from helpers.config import REPO_ROOT, SAMPLE_DIR

SAMPLE = SAMPLE_DIR / "chest_xray" / "test" / "PNEUMONIA" / "person113_bacteria_540.jpeg"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(root: Path, port: int) -> subprocess.Popen:
    """``streamlit run`` on the app with runs under ``root``; returns once it is healthy."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "app" / "streamlit_app.py"),
         "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        env={**os.environ, "APP_ROOT": str(root)}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.read() == b"ok":
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"streamlit did not start:\n{proc.stdout.read()[-2000:]}")


def browser(width: int = 1400, height: int = 1000):
    """Headless Chromium through its Debian driver (nothing downloaded)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def upload_and_read(driver, url: str, image: Path, timeout: float = 120) -> tuple[str, str]:
    """Open the page, upload ``image``, wait for the result: (probability, label) as shown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, timeout)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[type=file]"))
               ).send_keys(str(image))
    metrics = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="stMetricValue"]')
                         if len(d.find_elements(By.CSS_SELECTOR,
                                                '[data-testid="stMetricValue"]')) >= 2 else False)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="stDownloadButton"]'))
    time.sleep(1)  # let the images finish drawing before the screenshot
    return metrics[0].text.strip(), metrics[1].text.strip()


@pytest.fixture
def app_url(toy_run_root: Path) -> Iterator[str]:
    if not (BROWSER and DRIVER):
        pytest.skip("no chromium and chromedriver on PATH: `apt-get install chromium "
                    "chromium-driver` (make test does it where it may)")
    port = free_port()
    proc = start_app(toy_run_root, port)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=20)


def test_the_page_in_chromium_shows_probability_and_label_of_an_upload(
        app_url: str, toy_run_root: Path) -> None:
    driver = browser()
    try:
        probability, label = upload_and_read(driver, app_url, SAMPLE)
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "app_browser.png"
        driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    print(f"screenshot: {shot}")
    recorded = pd.read_csv(next(toy_run_root.glob("results/*/runs/*/predictions.csv")))
    expected = recorded.loc[recorded["path"].str.endswith(SAMPLE.name), "probability"].item()
    assert float(probability) == pytest.approx(expected, abs=1e-3)
    assert label in ("NORMAL", "PNEUMONIA")
    assert shot.stat().st_size > 10_000
