"""The typing page at GET / in a real headless Chromium (Debian's `chromium` and
`chromium-driver`, driven by Selenium; skipped where they are not installed): typing
shows the suggestions and next-character chart of the model the server holds for the
text before the caret, asking once per keystroke; Tab and a click insert a suggestion
and a space; it says when the text is over the server's limit or has characters the
model does not know; an empty box shows the start text's suggestions; it asks for the
API key of a server that needs one; "continue" streams a sample in at the caret.

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


def open_page(browser, url):
    browser.get(url + "/")
    wait_for(browser, lambda: "parameters" in browser.find_element(By.ID, "model").text)
    return browser.find_element(By.ID, "text")


def asked(browser):
    return browser.execute_script("return window.questionsAsked")


def test_typing_suggests_and_tab_inserts(server, browser, demo_ckpt, tmp_path):
    model = rnncore.CharRNN.load(demo_ckpt)
    box = open_page(browser, server.url)
    # an empty box: the start text's suggestions, not the zero state's
    wait_for(browser, lambda: suggestion_words(browser) == [s.word for s in
                                                             model.suggest("")])
    text = "Hola mundo, aprendien"
    box.send_keys(text)
    expected = [s.word for s in model.suggest(text)]
    assert expected[0] == "aprendiendo"
    wait_for(browser, lambda: suggestion_words(browser) == expected)
    # the chart shows the ten most likely next characters, the model's
    bars = browser.execute_script(
        "return [...document.querySelectorAll('#chart .bar .c')].map(c => c.textContent)")
    assert bars == [{" ": "\u2423"}.get(c, c) for c, _ in model.next_chars(text, k=10)]
    shot = tmp_path / "page.png"
    browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("RNNCORE_PAGE_SCREENSHOT"):
        shutil.copy(shot, os.environ["RNNCORE_PAGE_SCREENSHOT"])
    box.send_keys(Keys.TAB)
    assert box.get_attribute("value") == "Hola mundo, aprendiendo "    # and a space
    assert browser.switch_to.active_element == box      # Tab did not move the focus
    # the suggestions follow the new text
    after = [s.word for s in model.suggest("Hola mundo, aprendiendo ")]
    wait_for(browser, lambda: suggestion_words(browser) == after)


def test_a_click_inserts_any_suggestion_and_a_space(server, browser, demo_ckpt):
    model = rnncore.CharRNN.load(demo_ckpt)
    box = open_page(browser, server.url)
    box.send_keys("Hola mundo,")
    expected = model.suggest("Hola mundo,")
    wait_for(browser, lambda: suggestion_words(browser) == [s.word for s in expected])
    browser.find_elements(By.CSS_SELECTOR, "#suggestions button")[1].click()
    assert box.get_attribute("value") == "Hola mundo," + expected[1].completion + " "


def test_it_predicts_at_the_caret(server, browser, demo_ckpt):
    model = rnncore.CharRNN.load(demo_ckpt)
    box = open_page(browser, server.url)
    box.send_keys("Hola mundo, aprendien")
    wait_for(browser, lambda: suggestion_words(browser) == [
        s.word for s in model.suggest("Hola mundo, aprendien")])
    box.send_keys(Keys.HOME, *[Keys.ARROW_RIGHT] * 8)        # after "Hola mun"
    expected = model.suggest("Hola mun")
    wait_for(browser, lambda: suggestion_words(browser) == [s.word for s in expected])
    box.send_keys(Keys.TAB)                 # inserted at the caret, a space after it
    assert box.get_attribute("value") == "Hola mun" + expected[0].completion + " " + \
        "do, aprendien"


def test_it_asks_once_per_keystroke(server, browser, demo_ckpt):
    model = rnncore.CharRNN.load(demo_ckpt)
    box = open_page(browser, server.url)
    wait_for(browser, lambda: asked(browser) == 1 and suggestion_words(browser))
    text = "Hola mundo, apr"
    for i, c in enumerate(text, start=1):
        box.send_keys(c)
        wait_for(browser, lambda: suggestion_words(browser) == [
            s.word for s in model.suggest(text[:i])])
        assert asked(browser) == 1 + i
    # a caret that moves asks about its new place; one that stays asks nothing
    box.send_keys(Keys.ARROW_LEFT)
    wait_for(browser, lambda: suggestion_words(browser) == [
        s.word for s in model.suggest(text[:-1])])
    box.send_keys(Keys.SHIFT)
    assert asked(browser) == 2 + len(text)
    # typing faster than the answers come asks at most once per keystroke
    before = asked(browser)
    box.send_keys(Keys.END, "endo redes")
    wait_for(browser, lambda: suggestion_words(browser) == [
        s.word for s in model.suggest(text + "endo redes")])
    assert asked(browser) - before <= len("endo redes")


@pytest.fixture(scope="module")
def short_server(demo_ckpt, tmp_path_factory):
    yield from running_server(demo_ckpt, "--max-length", 100,
                              cwd=tmp_path_factory.mktemp("short"))


def test_it_says_when_the_text_is_over_the_limit_or_unknown(short_server, browser, demo_ckpt):
    model = rnncore.CharRNN.load(demo_ckpt)
    box = open_page(browser, short_server.url)
    notice = browser.find_element(By.ID, "notice")
    box.send_keys("Hola \u00e9mundo, Q")
    wait_for(browser, lambda: "never seen are skipped" in notice.text)
    assert '"\u00e9"' in notice.text and '"Q"' in notice.text
    wait_for(browser, lambda: suggestion_words(browser) == [
        s.word for s in model.suggest("Hola mundo, ")])
    long = "Hola mundo, aprendiendo redes recurrentes! " * 3 + "Hola mundo, apr"
    browser.execute_script("arguments[0].value = arguments[1];"
                           "arguments[0].dispatchEvent(new Event('input'))", box, long)
    wait_for(browser, lambda: "over the server's limit of 100" in notice.text)
    assert f"The text before the caret is {len(long)} characters" in notice.text
    # predicted from its last characters, from a start that moves in steps of a
    # quarter of the limit (so that the server's cache serves the text as it grows)
    assert "predicting from its last 94" in notice.text
    wait_for(browser, lambda: suggestion_words(browser) == [
        s.word for s in model.suggest(long[50:])])
    assert browser.find_element(By.ID, "error").text == ""


def test_it_asks_for_the_api_key(demo_ckpt, browser, tmp_path):
    model = rnncore.CharRNN.load(demo_ckpt)
    for server in running_server(demo_ckpt, "--api-key", "page-key", cwd=tmp_path):
        browser.get(server.url + "/")
        form = browser.find_element(By.ID, "key")
        wait_for(browser, lambda: form.is_displayed())
        browser.find_element(By.ID, "key-value").send_keys("page-key", Keys.ENTER)
        wait_for(browser, lambda: "parameters" in browser.find_element(By.ID, "model").text)
        box = browser.find_element(By.ID, "text")
        box.send_keys("Hola mundo,")
        wait_for(browser, lambda: suggestion_words(browser) == [
            s.word for s in model.suggest("Hola mundo,")])
        browser.execute_script("sessionStorage.clear()")


def test_continue_streams_a_sample_in_at_the_caret(server, browser, demo_ckpt):
    model = rnncore.CharRNN.load(demo_ckpt)
    box = open_page(browser, server.url)
    box.send_keys("Hola!", Keys.ARROW_LEFT)
    length = browser.find_element(By.ID, "length")
    length.clear()
    length.send_keys("150")
    browser.find_element(By.ID, "continue").click()
    wait_for(browser, lambda: len(box.get_attribute("value")) == 155 and
             browser.find_element(By.ID, "continue").is_enabled())
    value = box.get_attribute("value")
    assert value.startswith("Hola") and value.endswith("!")
    assert set(value) <= set(model.vocab.chars)
    assert browser.find_element(By.ID, "error").text == ""
