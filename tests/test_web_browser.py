"""The web desk in a real browser: Debian's headless Chromium driven by Selenium through the
system's chromedriver (no browser or driver download), against the desk served by uvicorn on
127.0.0.1 over a database filled by a real ``monitor run --once``.

Skips, saying why, where ``chromium`` or ``chromedriver`` is missing (``apt-get install
chromium chromium-driver``; ``.ci/run`` installs them).
"""

from __future__ import annotations

import shutil

import pytest
from receivers import free_port
from webdesk import STORED_HOSTILE, TOKEN, build_deployment

from monitor.config import load_config

webdriver = pytest.importorskip("selenium.webdriver",
                                reason="selenium is not installed (pip install selenium)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="headless Chromium is not installed (apt-get install chromium chromium-driver)")


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    from dataclasses import replace

    from monitor.config import WebConfig
    from monitor.web.server import Background

    kit = build_deployment(tmp_path_factory.mktemp("browser"))
    config = load_config(kit.config, environ=kit.env)
    port = free_port()
    config = replace(config, web=WebConfig(listen=f"127.0.0.1:{port}", token=TOKEN))
    web = Background(config)
    web.start()
    try:
        yield kit, f"http://127.0.0.1:{port}"
    finally:
        web.stop()


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, condition, timeout: float = 10):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # htmx swaps elements out from under a look at them: look again
    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(driver, timeout, ignored_exceptions=ignored).until(condition)


def test_hostile_text_never_runs_and_its_javascript_link_is_no_link(desk, browser):
    from selenium.webdriver.common.by import By

    kit, url = desk
    story = kit.rows("SELECT story_id FROM items WHERE title = ?", [STORED_HOSTILE])[0]["story_id"]
    for path in ("/", "/storylines/cairo", f"/stories/{story}"):
        browser.get(url + path)
        assert browser.execute_script("return window.pwned === undefined"), path
        assert browser.execute_script("return typeof htmx") == "object", path  # our own script runs
        hrefs = [a.get_attribute("href") or "" for a in browser.find_elements(By.TAG_NAME, "a")]
        assert not [h for h in hrefs if not h.startswith(("http://", "https://"))], path
    assert "<script>window.pwned = 1</script>" in browser.find_element(By.TAG_NAME, "h1").text


def test_log_in_open_a_story_click_wrong_and_see_the_verdict_stored(desk, browser):
    from selenium.webdriver.common.by import By

    kit, url = desk
    item = kit.rows("SELECT i.id, i.story_id FROM items i JOIN matches m ON m.item_id = i.id "
                    "WHERE m.storyline_id = 'cairo' AND i.title NOT LIKE '%hostile%' "
                    "ORDER BY i.id LIMIT 1")[0]
    browser.get(f"{url}/stories/{item['story_id']}")
    assert not browser.find_elements(By.CSS_SELECTOR, "button.wrong")  # not logged in: no buttons
    browser.find_element(By.LINK_TEXT, "Log in").click()
    wait_for(browser, lambda d: "/login" in d.current_url)
    browser.find_element(By.NAME, "token").send_keys("not-the-token-at-all")
    browser.find_element(By.CSS_SELECTOR, "main form button").click()
    wait_for(browser, lambda d: "Wrong token" in d.page_source)
    browser.find_element(By.NAME, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "main form button").click()
    wait_for(browser, lambda d: f"/stories/{item['story_id']}" in d.current_url)
    row = browser.find_element(By.CSS_SELECTOR, f"#verdicts-{item['id']} [data-storyline='cairo']")
    row.find_element(By.CSS_SELECTOR, "button.wrong").click()
    # htmx swaps the item's verdicts in place: the verdict is counted without a page load
    wait_for(browser, lambda d: "recorded: wrong on cairo" in d.find_element(
        By.ID, f"verdicts-{item['id']}").text)
    stored = kit.rows("SELECT item_id, storyline_id, verdict, source FROM feedback")
    assert {"item_id": item["id"], "storyline_id": "cairo", "verdict": "wrong", "source": "desk"} in stored
    # what `monitor feedback` reads back: the example is the desk's
    counts = kit.rows("SELECT COUNT(*) AS n FROM feedback WHERE storyline_id = 'cairo' AND source = 'desk'")
    assert counts == [{"n": 1}]
    # a write with a wrong CSRF token, from the logged-in page, is refused
    status = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch(arguments[0], {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'},
                             body: 'item=' + arguments[1] + '&storyline=cairo&verdict=right&csrf=bad'})
            .then(r => done(r.status), () => done(0));
    """, f"{url}/stories/{item['story_id']}/verdict", item["id"])
    assert status == 403
    assert kit.rows("SELECT verdict FROM feedback WHERE item_id = ?", [item["id"]]) == [{"verdict": "wrong"}]


def test_the_review_queue_advances_with_one_click(desk, browser):
    from selenium.webdriver.common.by import By

    kit, url = desk
    browser.get(f"{url}/login?next=/review/truce-talks")
    browser.find_element(By.NAME, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "main form button").click()
    wait_for(browser, lambda d: "/review/truce-talks" in d.current_url
             and d.find_elements(By.CSS_SELECTOR, "#review-item button.wrong"))
    first = browser.find_element(By.ID, "review-item").get_attribute("data-item")
    browser.find_element(By.CSS_SELECTOR, "#review-item button.wrong").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "review-item").get_attribute("data-item") != first)
    assert kit.rows("SELECT verdict FROM feedback WHERE storyline_id = 'truce-talks' AND item_id = ?",
                    [int(first)]) == [{"verdict": "wrong"}]


def test_without_logging_in_a_write_is_refused(desk, browser):
    _kit, url = desk
    browser.delete_all_cookies()
    browser.get(url + "/alerts")
    status = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch(arguments[0], {method: 'POST'}).then(r => done(r.status), () => done(0));
    """, f"{url}/alerts/failed/retry")
    assert status == 401
