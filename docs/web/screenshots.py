"""The README's pictures of the web desk, made from the real app in headless Chromium.

    python docs/web/screenshots.py      # writes docs/web/*.png

The items of ``tests/data/`` (real headlines of 2023) are served as feeds on 127.0.0.1, their
times moved to the last days; one ``monitor run --once`` with the shipped storylines stores
them; the desk is served by uvicorn and photographed through Selenium and the system's
chromedriver (``apt-get install chromium chromium-driver``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from defaults import default_storylines  # noqa: E402
from feedserver import FeedServer, rss  # noqa: E402
from receivers import free_port  # noqa: E402

from monitor.config import WebConfig, load_config  # noqa: E402
from monitor.web.server import Background  # noqa: E402

OUT = Path(__file__).resolve().parent
TOKEN = "screenshots-token-0123456789"


def items() -> list[dict]:
    rows = [json.loads(line) for name in ("stories_items.jsonl", "e2e_items.jsonl")
            for line in (ROOT / "tests" / "data" / name).read_text().splitlines()]
    newest = max(datetime.fromisoformat(r["published"]) for r in rows)
    oldest = min(datetime.fromisoformat(r["published"]) for r in rows)
    span = (newest - oldest) or timedelta(days=1)
    now = datetime.now(UTC) - timedelta(minutes=30)
    for row in rows:  # spread over the last six days, in their order
        age = newest - datetime.fromisoformat(row["published"])
        row["published"] = now - age / span * timedelta(days=6)
    return rows


def main() -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    rows = items()
    with tempfile.TemporaryDirectory() as folder, FeedServer() as server:
        sources = sorted({r["source"] for r in rows})
        feeds = ""
        for source in sources:
            path = "/" + source.lower().replace(" ", "-") + ".xml"
            server.set_feed(path, rss([{"title": r["title"], "summary": r["summary"], "link": r["link"],
                                        "guid": r["id"], "published": r["published"]}
                                       for r in rows if r["source"] == source], title=source))
            feeds += f'\n[[feeds]]\nname = "{source}"\nurl = "{server.url(path)}"\n'
        config_path = Path(folder) / "monitor.toml"
        config_path.write_text(f'[monitor]\ndatabase = "{folder}/monitor.db"\nalert_max_age = "7d"\n'
                               f'{feeds}\n[[alerts]]\ntype = "console"\nname = "console"\n'
                               f'{default_storylines()}')
        env = {**os.environ, "MONITOR_CONFIG": str(config_path)}
        subprocess.run([sys.executable, "-m", "monitor", "run", "--once"], env=env, check=True,
                       capture_output=True)
        config = load_config(config_path)
        port = free_port()
        web = Background(replace(config, web=WebConfig(listen=f"127.0.0.1:{port}", token=TOKEN)))
        web.start()
        options = Options()
        options.binary_location = "/usr/bin/chromium"
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                         "--hide-scrollbars"):
            options.add_argument(argument)
        driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
        try:
            url = f"http://127.0.0.1:{port}"
            driver.get(url + "/login?next=/")
            driver.find_element("name", "token").send_keys(TOKEN)
            driver.find_element("css selector", "main form button").click()
            driver.save_screenshot(str(OUT / "desk.png"))
            storyline = config.storylines[0].id
            stories = json.loads(subprocess.run(
                [sys.executable, "-m", "monitor", "stories", "--since", "30d", "--json"], env=env,
                check=True, capture_output=True, text=True).stdout)
            busiest = max(config.storylines, key=lambda s: sum(s.id in st["storylines"] for st in stories))
            storyline = busiest.id
            driver.get(f"{url}/storylines/{storyline}")
            driver.save_screenshot(str(OUT / "storyline.png"))
            story = max(stories, key=lambda s: s["outlets"])
            driver.get(f"{url}/stories/{story['story_id']}")
            driver.save_screenshot(str(OUT / "story.png"))
        finally:
            driver.quit()
            web.stop()
    print("wrote", ", ".join(str(OUT / n) for n in ("desk.png", "storyline.png", "story.png")))


if __name__ == "__main__":
    main()
