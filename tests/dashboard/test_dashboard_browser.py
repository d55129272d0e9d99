"""The dashboard in a real browser: Debian's headless Chromium driven by Selenium through its chromedriver.

`genroute serve --http` with keys runs as a subprocess against the emulator; calls are made through MCP, then the
page is read the way a person would: sign in by pasting a key, see the call and its cost, the image's thumbnail
(decoded: naturalWidth > 0), a finished video playing, and nothing of another key's. Signed links open in the
browser without a key and stop opening once altered. Screenshots go to docs/ for the README.
Skipped, saying so, only when /usr/bin/chromium is not installed (`bash .ci/chromium.sh` installs it).
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from tests.support import GatewayProcess, http_gateway, write_config
from tests.support_access import client, new_key
from tests.support_media import IMAGE_MODEL, VIDEO_MODEL, media_config

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
DOCS = Path(__file__).resolve().parents[2] / "docs"
# The README's screenshots are refreshed only when asked (GENROUTE_UPDATE_SCREENSHOTS=1): a test run must not
# change tracked files. Otherwise they go to the test's own folder.
UPDATE_SCREENSHOTS = os.environ.get("GENROUTE_UPDATE_SCREENSHOTS") == "1"
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="the browser tests need Debian's chromium and chromium-driver: run `bash .ci/chromium.sh` (as root)",
    ),
]
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--autoplay-policy=no-user-gesture-required",
)
WAIT_S = 20
# A real, playable WebM made by Chromium itself (a canvas recorded for half a second), for the emulator to serve as
# the finished video: the emulator's own MP4 stand-in is not a playable file.
RECORD_WEBM = """
const done = arguments[arguments.length - 1];
const canvas = document.createElement("canvas"); canvas.width = 160; canvas.height = 90;
const ctx = canvas.getContext("2d"); let frame = 0;
const paint = setInterval(() => {
  ctx.fillStyle = `hsl(${(frame += 20) % 360} 80% 50%)`; ctx.fillRect(0, 0, 160, 90); }, 30);
const recorder = new MediaRecorder(canvas.captureStream(30), { mimeType: "video/webm;codecs=vp8" });
const parts = []; recorder.ondataavailable = (e) => parts.push(e.data);
recorder.onstop = async () => { clearInterval(paint); const buf = await new Blob(parts).arrayBuffer();
  let s = ""; for (const b of new Uint8Array(buf)) s += String.fromCharCode(b); done(btoa(s)); };
recorder.start(); setTimeout(() => recorder.stop(), 600);
"""


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never fetch a driver or a browser
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1280,1400"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    driver.set_script_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def until(driver: Any, check: Callable[[Any], Any], what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.2).until(check, message=f"timed out waiting for {what}")


def sign_in(driver: Any, url: str, key: str) -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(url + "/dashboard")
    until(driver, lambda d: d.find_element(By.ID, "key").is_displayed(), "the sign-in form")
    driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.ID, "sign-in").click()
    until(driver, lambda d: d.execute_script("return Number(document.body.dataset.loaded || 0)") >= 1, "the data")


def rows(driver: Any, selector: str) -> list[list[str]]:
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(r => [...r.cells].map(c => c.textContent))", selector
    )


def csp_violations(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]


@contextlib.contextmanager
def served(config: dict[str, Any], tmp_path: Path) -> Iterator[tuple[GatewayProcess, dict[str, str]]]:
    path = write_config(tmp_path / "genroute.toml", config)
    keys = {name: new_key(path, name, *flags) for name, flags in (("alice", ()), ("bob", ()), ("boss", ("--admin",)))}
    with http_gateway(path, auth=True) as gateway:
        yield gateway, keys


async def test_dashboard_shows_calls_media_and_video(
    browser: Any, config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    browser.get("about:blank")
    webm = base64.b64decode(browser.execute_async_script(RECORD_WEBM))
    assert webm[:4] == b"\x1a\x45\xdf\xa3"
    emulator.video_file, emulator.video_run_s = (webm, "video/webm"), 0.3
    config = media_config(config_data)
    config["budget"] = {"monthly_usd": 5}
    with served(config, tmp_path) as (gateway, keys):
        async with client(gateway.mcp_url, keys["alice"]) as mcp:
            image = await mcp.call_tool("generate_image", {"prompt": "a cat", "model": IMAGE_MODEL, "size": "256x256"})
            video = await mcp.call_tool("generate_video", {"prompt": "waves", "model": VIDEO_MODEL, "wait_s": 30})
        assert not image.is_error and video.structured_content["status"] == "completed", video.content

        sign_in(browser, gateway.url, keys["alice"])
        calls = until(browser, lambda d: rows(d, "#calls-body tr.call") or None, "the recent calls")
        assert ["generate_image", IMAGE_MODEL, "alice", "ok", "$0.02"] in [
            [c[1], c[2], c[3], c[4], c[6]] for c in calls
        ]
        thumb_width = until(
            browser,
            lambda d: d.execute_script(
                "const i = document.querySelector('#gallery-grid img.thumb'); return i && i.complete && i.naturalWidth"
            ),
            "the thumbnail to load",
        )
        assert thumb_width > 0
        video_id = video.structured_content["video"]["id"]
        assert rows(browser, "#jobs-body tr.job")[0][3] == "completed"
        spent = browser.find_element("id", "month-spend").text
        assert "$1.02 spent (your calls)" in spent and "server budget $5.00, $3.98 left" in spent, spent
        playing = until(
            browser,
            lambda d: d.execute_script(
                "const v = document.querySelector('#gallery-grid figure.video video');"
                "return v && v.readyState >= 1 && v.videoWidth ? [v.videoWidth, v.error] : null"
            ),
            "the finished video to load in its player",
        )
        assert playing == [160, None]
        shots = DOCS if UPDATE_SCREENSHOTS else tmp_path
        assert browser.save_screenshot(str(shots / "dashboard.png"))
        browser.set_window_size(390, 1600)  # a phone's width: one column, nothing cut off sideways
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert browser.save_screenshot(str(shots / "dashboard-phone.png"))
        assert overflow <= 0
        link = browser.find_element("css selector", "#jobs-body tr.job a.open").get_attribute("href")
        assert link.endswith(f"/dashboard/file/{video_id}")
        browser.get(link)  # "open video": the file itself, in the browser's own player
        until(
            browser,
            lambda d: d.execute_script("const v = document.querySelector('video'); return v && v.readyState >= 1"),
            "the video",
        )
        assert csp_violations(browser) == []


async def test_keys_see_only_their_own_and_admins_see_all(
    browser: Any, config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    with served(media_config(config_data), tmp_path) as (gateway, keys):
        async with client(gateway.mcp_url, keys["alice"]) as mcp:
            assert not (await mcp.call_tool("generate_image", {"prompt": "x", "model": IMAGE_MODEL})).is_error
        sign_in(browser, gateway.url, keys["bob"])
        assert rows(browser, "#calls-body tr.call") == []
        assert browser.execute_script("return document.querySelectorAll('#gallery-grid figure').length") == 0
        assert not browser.find_element("id", "keys").is_displayed()
        sign_in(browser, gateway.url, keys["boss"])
        calls = until(browser, lambda d: rows(d, "#calls-body tr.call") or None, "the admin's view of calls")
        assert [c[3] for c in calls] == ["alice"]
        key_rows = until(browser, lambda d: rows(d, "#keys-body tr.key") or None, "the key list")
        assert {r[0]: r[4] for r in key_rows} == {"alice": "$0.02", "bob": "$0.00", "boss": "$0.00"}
        assert csp_violations(browser) == []


async def test_signed_link_opens_without_a_key_until_altered(
    browser: Any, config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    with served(media_config(config_data), tmp_path) as (gateway, keys):
        async with client(gateway.mcp_url, keys["alice"]) as mcp:
            result = await mcp.call_tool("generate_image", {"prompt": "x", "model": IMAGE_MODEL, "size": "256x256"})
        link = result.structured_content["images"][0]["link"]["url"]
        assert link.startswith(gateway.url + "/media/")  # the address served, as no public_base_url is set
        browser.get(link)  # a fresh profile: no cookie, no key
        width = until(
            browser, lambda d: d.execute_script("const i = document.images[0]; return i && i.naturalWidth"), "the image"
        )
        assert width == 256
        browser.get(link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB"))
        assert "media_link_invalid" in browser.find_element("tag name", "body").text
        assert browser.execute_script("return document.images.length") == 0
