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


def _svg(text: str) -> str:
    return text[text.index("<svg"):text.index("</svg>") + len("</svg>")]


@pytest.mark.parametrize("spec, at", [("fuv.toml", "u=2,v=3,w=4"), ("digits.toml", None)])
def test_the_page_draws_the_picture_graphcomp_graph_draws(tmp_path, spec, at):
    given = ["--at", at] if at else []
    assert main(["report", str(EXAMPLES / spec), "--html", "-o", str(tmp_path / "page.html"), *given]) == 0
    assert main(["graph", str(EXAMPLES / spec), "-o", str(tmp_path / "picture.svg"), *given]) == 0
    page, picture = (tmp_path / "page.html").read_text(encoding="utf-8"), (tmp_path / "picture.svg").read_text(encoding="utf-8")
    assert _svg(page) == _svg(picture)  # one picture, whoever draws it (a network: single-use values folded)
    assert ("relu(x / 16 @ W1 + b1)" in picture) == (spec == "digits.toml")


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


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("explorer") / "digits.html"
    assert main(["report", str(EXAMPLES / "digits.toml"), "--html", "-o", str(path)]) == 0
    return path


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


def view_box(driver) -> list[float]:
    return [float(n) for n in driver.execute_script(
        "return document.querySelector('#picture svg').getAttribute('viewBox')").split()]


def rect(driver, selector: str) -> dict:
    return driver.execute_script("const r = document.querySelector(arguments[0]).getBoundingClientRect();"
                                 "return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width};",
                                 selector)


def test_the_picture_takes_the_page_width_and_the_panel_lies_over_it(browser, page):
    browser.get(page.as_uri())
    width = browser.execute_script("return document.documentElement.clientWidth")
    picture, panel = rect(browser, "#picture"), rect(browser, "#details")
    assert picture["width"] > 0.95 * (width - 40), (picture, width)  # the page's padding only
    assert picture["left"] < panel["left"] < panel["right"] <= picture["right"] and panel["top"] < picture["bottom"]
    browser.find_element("id", "details-toggle").click()  # hide the panel: the picture keeps its size
    assert not browser.find_element("id", "details").is_displayed() and rect(browser, "#picture") == picture
    browser.find_element("id", "details-toggle").click()
    assert browser.find_element("id", "details").is_displayed()
    # the starting view: all of f = (u + v) w, larger than Graphviz's own size, left of the panel
    for name in ("u", "v", "w", "t1", "f"):
        box = rect(browser, f"#value-{name}")
        assert picture["left"] <= box["left"] and box["right"] <= panel["left"] and box["bottom"] <= picture["bottom"]
    assert int(browser.find_element("id", "zoom-level").text.rstrip(" %")) > 100


def test_the_picture_zooms_and_moves(browser, page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
    browser.get(page.as_uri())
    start = view_box(browser)
    box = rect(browser, "#value-t1")
    ActionChains(browser).send_keys("+").perform()  # the keyboard: +, -, 0
    zoomed = view_box(browser)
    assert zoomed[2] == pytest.approx(start[2] / 1.25) and zoomed[3] == pytest.approx(start[3] / 1.25)
    assert rect(browser, "#value-t1")["width"] == pytest.approx(box["width"] * 1.25, rel=0.02)
    ActionChains(browser).send_keys("-").perform()
    assert view_box(browser) == pytest.approx(start)
    browser.find_element("id", "zoom-in").click()
    browser.find_element("id", "zoom-in").click()
    assert view_box(browser)[2] == pytest.approx(start[2] / 1.25 ** 2)
    ActionChains(browser).send_keys("0").perform()
    assert view_box(browser) == pytest.approx(start)
    # the wheel zooms about the pointer: the box under it stays where it is
    before = rect(browser, "#value-t1")
    ActionChains(browser).scroll_from_origin(ScrollOrigin.from_element(browser.find_element("id", "value-t1")), 0, -200).perform()
    after = rect(browser, "#value-t1")
    assert view_box(browser)[2] < start[2] * 0.9 and after["width"] > before["width"] * 1.1
    middle = lambda r: ((r["left"] + r["right"]) / 2, (r["top"] + r["bottom"]) / 2)  # noqa: E731
    assert middle(after) == pytest.approx(middle(before), abs=3)
    browser.find_element("id", "zoom-reset").click()
    assert view_box(browser) == pytest.approx(start)
    # a drag moves the picture, and a drag that starts on a box does not choose it
    browser.find_element("id", "value-w").click()
    scale = rect(browser, "#picture")["width"] / start[2]
    ActionChains(browser).click_and_hold(browser.find_element("id", "value-t1")).move_by_offset(-120, 40) \
        .move_by_offset(-30, 10).release().perform()
    moved = view_box(browser)
    assert moved[0] == pytest.approx(start[0] + 150 / scale, abs=1) and moved[1] == pytest.approx(start[1] - 50 / scale, abs=1)
    assert details(browser)["name"] == "w (input)"
    browser.find_element("id", "zoom-whole").click()  # the whole drawing in the free part of the picture
    for name in ("u", "v", "w", "t1", "f"):
        assert rect(browser, f"#value-{name}")["right"] <= rect(browser, "#details")["left"]


def test_a_value_chosen_by_its_button_is_brought_into_view(browser, network):
    from selenium.webdriver.common.action_chains import ActionChains
    browser.get(network.as_uri())
    ActionChains(browser).send_keys("+" * 6).perform()
    browser.find_element("css selector", '#values button[data-value="x"]').click()
    picture, box = rect(browser, "#picture"), rect(browser, "#value-x")
    assert picture["left"] <= box["left"] and box["right"] <= rect(browser, "#details")["left"]
    assert picture["top"] <= box["top"] and box["bottom"] <= picture["bottom"]


def test_each_use_of_a_value_has_its_line(browser, network, tmp_path):
    spec = tmp_path / "square.toml"
    spec.write_text('[model]\nname = "square"\n\n[inputs]\nx = []\nw = []\n\n[outputs]\nf = "x * x * w"\n')
    assert main(["report", str(spec), "--html", "-o", str(tmp_path / "square.html"), "--at", "x=3,w=2"]) == 0
    browser.get((tmp_path / "square.html").as_uri() + "#x")
    uses = details(browser)["locals"].split("\n")
    assert len(uses) == 2 and all(line.endswith("= x = 3 (adds 6)") for line in uses), uses  # x·x: 3·2 twice
    assert details(browser)["gradient"] == "∂f/∂x = 12"
    browser.get(network.as_uri() + "#W1")  # W1 is read inside h = relu(x / 16 @ W1 + b1): its route is spelled out
    assert details(browser)["locals"] == "through h = relu(x / 16 @ W1 + b1): d_W1 += transpose(x / 16) @ where((x / 16 @ W1 + b1) > 0, d_h, 0)"
    browser.find_element("css selector", '#values button[data-value="loss"]').click()
    formula = browser.find_element("id", "details-formula").text
    assert "softmax" in formula and "onehot" in formula  # the formula as its box reads it, no temporary t_k
    assert not browser.execute_script("return [...document.querySelectorAll('#details-formula msub')]"
                                      ".some(m => m.firstElementChild.textContent === 't')")


def test_formulas_are_large_and_bars_cover_whole_names(browser, network):
    browser.get(network.as_uri())
    sizes = browser.execute_script("return [...document.querySelectorAll('math')].map(m => parseFloat(getComputedStyle(m).fontSize))")
    assert sizes and min(sizes) >= 24  # 1.25em of the 20px text
    bars = browser.execute_script("""return [...document.querySelectorAll('mrow.bar')].map(b => {
        const r = b.getBoundingClientRect(), letters = [...b.querySelectorAll('mi')].map(m => m.getBoundingClientRect());
        return [b.textContent, parseFloat(getComputedStyle(b).borderTopWidth), r.left, r.right, r.top,
                Math.min(...letters.map(l => l.left)), Math.max(...letters.map(l => l.right)),
                Math.min(...letters.map(l => l.top))]; })""")
    names = {bar[0] for bar in bars}
    assert "logits" in names and "W" in names, names  # the bars of \\overline{\\mathrm{logits}} and \\bar{W}_{1}
    for text, border, left, right, top, first, last, letters_top in bars:
        if right > left:  # laid out (the panel shows one value's formula at a time)
            assert border > 0 and left <= first + 1 and last <= right + 1 and top <= letters_top, text  # over every letter


def test_code_lines_wrap_under_their_indentation(browser, network):
    browser.set_window_size(700, 1000)
    try:
        browser.get(network.as_uri())
        pre = browser.find_element("css selector", "#code pre")
        assert browser.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth", pre)
        wrapped = browser.execute_script("""
            for (const line of document.querySelectorAll('#code .line')) {
              const range = document.createRange(); range.selectNodeContents(line);
              const rects = [...range.getClientRects()].filter(r => r.width > 0);
              if (rects.length > 1 && line.textContent.startsWith('    ')) {
                return [rects[0].left, rects[rects.length - 1].left, line.getBoundingClientRect().left,
                        parseFloat(getComputedStyle(line).fontSize)];
              }
            }
            return null;""")
        assert wrapped is not None  # a long line of the module is broken, not cut at the right edge
        first, continued, left, font = wrapped
        assert continued > first + font  # the rest of the line hangs further in than its start
    finally:
        browser.set_window_size(1600, 1000)


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


def test_a_derivation_with_matrices_is_one_row_per_equation_and_no_latex_source(tmp_path):
    """An aligned block's rows are split at its own \\\\, not at those of a matrix inside a row (a
    4-example network's derivation printed its columns as rows of raw LaTeX)."""
    from graphcomp.inspection.mathml import math_html
    latex = "\\begin{aligned}\nt_{3} &= h W_{2} = \\begin{bmatrix} 0 \\\\ -0.5 \\end{bmatrix} \\\\\np &= \\sigma\\left(t_{3}\\right)\n\\end{aligned}"
    page = math_html(latex)
    assert page.count("<tr>") == 2 and 'class="latex"' not in page and "bmatrix" not in page
    path = tmp_path / "xor.html"
    assert main(["report", str(EXAMPLES / "xor.toml"), "--html", "-o", str(path), "--at",
                 str(EXAMPLES / "data" / "xor.csv"), "--params", "init:0"]) == 0
    text = path.read_text(encoding="utf-8")
    assert 'class="latex"' not in text and "\\begin{bmatrix}" not in text
