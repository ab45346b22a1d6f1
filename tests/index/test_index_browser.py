"""The human pages in a real headless Chromium (the `browser` fixture: tests/index/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from platform import machine

import pytest
from support.index_server import Dists, Server

pytestmark = pytest.mark.slow


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
