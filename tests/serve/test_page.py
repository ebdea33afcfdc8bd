"""The typing page at GET / in a real headless Chromium (Debian's `chromium` and
`chromium-driver`, driven by Selenium; skipped where they are not installed): typing
shows the suggestions and next-character chart of the model the server holds, Tab and
a click insert a suggestion, "continue" streams a sample into the box.

The screenshot it takes is docs/server.md's: RNNCORE_PAGE_SCREENSHOT=docs/serve-page.png
pytest tests/serve/test_page.py writes it there too."""
import os
import shutil

import pytest

import rnncore
from support import demo_ckpt, running_server  # noqa: F401  (a fixture)

pytestmark = pytest.mark.slow

webdriver = pytest.importorskip("selenium.webdriver")
pytest.importorskip("fastapi")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    pytest.skip("no Chromium here (Debian: apt-get install chromium chromium-driver)",
                allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def server(demo_ckpt, tmp_path_factory):
    yield from running_server(demo_ckpt, cwd=tmp_path_factory.mktemp("page"))


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-proxy-server",
                 "--disable-dev-shm-usage", "--window-size=900,720",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=DRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def suggestion_words(browser):
    return browser.execute_script(
        "return [...document.querySelectorAll('#suggestions button')]"
        ".map(b => b.firstChild.textContent)")


def wait_for(browser, condition, timeout=20):
    return WebDriverWait(browser, timeout, poll_frequency=0.05).until(
        lambda _: condition())


def test_typing_suggests_and_tab_inserts(server, browser, demo_ckpt, tmp_path):
    model = rnncore.CharRNN.load(demo_ckpt)
    browser.get(server.url + "/")
    box = browser.find_element(By.ID, "text")
    wait_for(browser, lambda: "parameters" in browser.find_element(By.ID, "model").text)
    text = "Hola mundo, aprendien"
    box.send_keys(text)
    expected = [s.word for s in model.suggest(text)]
    assert expected[0] == "aprendiendo"
    wait_for(browser, lambda: suggestion_words(browser) == expected)
    # the chart shows the ten most likely next characters, the model's
    bars = browser.execute_script(
        "return [...document.querySelectorAll('#chart .bar .c')].map(c => c.textContent)")
    assert bars == [c for c, _ in model.next_chars(text, k=10)]
    shot = tmp_path / "page.png"
    browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("RNNCORE_PAGE_SCREENSHOT"):
        shutil.copy(shot, os.environ["RNNCORE_PAGE_SCREENSHOT"])
    box.send_keys(Keys.TAB)
    assert box.get_attribute("value") == "Hola mundo, aprendiendo"
    assert browser.switch_to.active_element == box      # Tab did not move the focus
    # the suggestions follow the new text
    after = [s.word for s in model.suggest("Hola mundo, aprendiendo")]
    wait_for(browser, lambda: suggestion_words(browser) == after)


def test_a_click_inserts_any_suggestion(server, browser, demo_ckpt):
    model = rnncore.CharRNN.load(demo_ckpt)
    browser.get(server.url + "/")
    box = browser.find_element(By.ID, "text")
    box.send_keys("Hola mundo,")
    expected = model.suggest("Hola mundo,")
    wait_for(browser, lambda: suggestion_words(browser) == [s.word for s in expected])
    browser.find_elements(By.CSS_SELECTOR, "#suggestions button")[1].click()
    assert box.get_attribute("value") == "Hola mundo," + expected[1].completion


def test_continue_streams_a_sample_into_the_box(server, browser, demo_ckpt):
    model = rnncore.CharRNN.load(demo_ckpt)
    browser.get(server.url + "/")
    box = browser.find_element(By.ID, "text")
    box.send_keys("Hola")
    length = browser.find_element(By.ID, "length")
    length.clear()
    length.send_keys("150")
    browser.find_element(By.ID, "continue").click()
    wait_for(browser, lambda: len(box.get_attribute("value")) == 154 and
             browser.find_element(By.ID, "continue").is_enabled())
    value = box.get_attribute("value")
    assert value.startswith("Hola") and set(value) <= set(model.vocab.chars)
    assert browser.find_element(By.ID, "error").text == ""
