"""The explorer page: self-contained, and working in a real browser (Debian's Chromium, headless,
driven by Selenium through Debian's chromedriver; .ci/run installs both)."""
import re
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from graphcomp.frontend.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("explorer") / "fuv.html"
    assert main(["report", str(EXAMPLES / "fuv.toml"), "--html", "-o", str(path), "--at", "u=2,v=3,w=4"]) == 0
    return path


def test_the_page_needs_nothing_from_the_network(page):
    text = page.read_text(encoding="utf-8")
    addresses = set(re.findall(r"https?://[^\s\"'<>)\\]+", text))
    assert addresses <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink",
                         "http://www.w3.org/1998/Math/MathML"}, addresses  # XML namespaces only
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", text)


def test_a_network_gets_a_page_too(tmp_path):
    path = tmp_path / "digits.html"
    assert main(["report", str(EXAMPLES / "digits.toml"), "-o", str(path)]) == 0  # .html chooses the page
    text = path.read_text(encoding="utf-8")
    assert "<title>W1</title>" in text and "<math" in text and "def _gradients" in text


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM and CHROMEDRIVER, "the browser test needs Debian's chromium and chromium-driver (.ci/run installs them)"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1600,1000", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def details(driver) -> dict[str, str]:
    return {key: driver.find_element("id", f"details-{key}").text
            for key in ("name", "value", "gradient", "locals", "code")}


def test_choosing_a_value_shows_its_formula_numbers_and_code(browser, page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    browser.get(page.as_uri())
    assert details(browser)["name"] == "f (loss)"  # the loss is chosen first
    formulas = browser.find_elements("css selector", "math")
    assert len(formulas) > 5 and all(f.size["height"] > 10 for f in formulas[:5])  # MathML is laid out
    browser.find_element("id", "value-t1").click()  # a node of the SVG picture
    shown = details(browser)
    assert shown["name"] == "t1 (op)" and shown["value"] == "5" and shown["gradient"] == "∂f/∂t1 = 4"
    assert "∂f/∂t1 = w = 4 (adds 4)" in shown["locals"] and "t1 = u + v" in shown["code"]
    assert browser.find_element("id", "details-formula").find_elements("css selector", "math")
    assert "selected" in browser.find_element("id", "value-t1").get_attribute("class")
    assert browser.current_url.endswith("#t1")
    browser.execute_script("document.getElementById('value-w').focus()")  # the keyboard: Tab lands here
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    assert details(browser)["name"] == "w (input)" and details(browser)["gradient"] == "∂f/∂w = 5"
    browser.find_element("css selector", '#values button[data-value="u"]').click()
    assert details(browser)["name"] == "u (input)"


def test_a_screenshot_of_the_page_is_the_window_and_not_blank(browser, page):
    browser.get(page.as_uri() + "#t1")
    png = browser.get_screenshot_as_png()
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == tuple(browser.execute_script("return [window.innerWidth, window.innerHeight]"))
    pixels = zlib.decompress(b"".join(_chunks(png, b"IDAT")))
    assert len(set(pixels)) > 50  # text, colours and lines, not one flat colour


def _chunks(png: bytes, kind: bytes):
    at = 8
    while at < len(png):
        length, name = struct.unpack(">I4s", png[at:at + 8])
        if name == kind:
            yield png[at + 8:at + 8 + length]
        at += 12 + length
