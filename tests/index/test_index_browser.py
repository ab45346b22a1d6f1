"""The human pages in a real headless Chromium (Debian's chromium + chromium-driver, via selenium)."""

from __future__ import annotations

import shutil
from pathlib import Path
from platform import machine

import pytest
from support.index_server import Dists, Server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail(
            "chromium and chromium-driver are needed (tests/debian-packages.txt; make test installs them)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    drv = webdriver.Chrome(service=Service(driver), options=options)
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()


def test_home_and_project_pages_in_a_browser(
    browser, server: Server, published: Dists, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/")
    text = browser.find_element(By.TAG_NAME, "body").text
    pip_command = browser.find_element(By.ID, "pip-command")
    assert pip_command.is_displayed()
    assert pip_command.text.startswith(f"pip install --extra-index-url {server.url}/simple/ ")
    assert f"extra-index-url = {server.url}/simple/" in browser.find_element(By.ID, "pip-conf").text
    assert f'url = "{server.url}/simple/"' in browser.find_element(By.ID, "uv-conf").text
    assert "tiny-native" in browser.find_element(By.ID, "projects").text
    assert "projects" in text
    browser.save_screenshot(str(tmp_path / "home.png"))

    browser.find_element(By.LINK_TEXT, "tiny-native").click()
    assert browser.current_url == f"{server.url}/project/tiny-native/"
    assert browser.find_element(By.TAG_NAME, "h1").text == "tiny-native"
    rows = [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in browser.find_elements(By.CSS_SELECTOR, "table.files tbody tr")
    ]
    assert len(rows) == 1
    filename, kind, python, platform, arch, size, _uploaded = rows[0]
    assert filename.startswith(published.native.name)
    assert (kind, platform, arch) == ("wheel", "Linux", machine())
    assert python.startswith("cp3")
    assert size.endswith(("KiB", "B"))
    link = browser.find_element(By.LINK_TEXT, published.native.name)
    assert link.get_attribute("href") == f"{server.url}/files/tiny-native/{published.native.name}"
    browser.save_screenshot(str(tmp_path / "project.png"))
