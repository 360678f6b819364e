"""Helpers for the fault-injection tests: a config on disk, the real CLI as a subprocess,
headlines that match, and read-only looks into the SQLite file.

    kit = Kit(tmp_path, secrets={"HOOK_SECRET": TEST_SECRET})
    kit.write(feeds=[("A", server.url("/a.xml"))], channels=webhook(hook.url), interval="1s")
    result = kit.cli("run", "--once")
    daemon = kit.start()            # `monitor run` with stderr in a log file
    daemon.kill()                   # SIGKILL

The tests define their own storylines (below) rather than the shipped ones, so that the
tuning of the shipped storylines never changes what these tests exercise.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STORYLINES = """
[[storylines]]
id = "truce-talks"
name = "Truce talks"
all = [["truce", "ceasefire"], ["talks", "negotiations", "delegation"]]

[[storylines]]
id = "cairo"
name = "Cairo track"
all = [["Cairo"]]
"""

# Words for headlines that are unlike each other (so that every one is its own story).
WORDS = """apple harbor violin meadow quartz lantern pepper saddle timber orbit falcon marble
cobalt willow tundra canyon glacier pebble ribbon thistle walnut basalt cedar dune ember
fjord garnet hazel iris jasper kelp lichen maple nectar onyx prairie quill raven sorrel
tulip umber vellum wren yarrow zephyr anvil beacon cinder dynamo easel ferry gondola
hammock igloo jigsaw kettle ladle mosaic nozzle oyster paddle quiver rocket sprocket
trellis utensil vortex wagon xylophone yodel zipper acorn bramble cactus dahlia eucalyptus
fern gorse heather ivy juniper kudzu lupine mallow nettle oleander peony quince rosemary
sage tansy vetch wisteria alder birch chestnut dogwood elm fir ginkgo hemlock ironwood
larch mulberry oak pine redwood spruce sycamore teak yew banjo cello drum flute guitar
harp lute oboe piano sitar tuba viola zither""".split()


def headline(rng: random.Random, n: int) -> dict[str, Any]:
    """A new relevant item (matches both test storylines), unlike every other one."""
    words = rng.sample(WORDS, 7)
    return {"title": f"Truce talks in Cairo: {' '.join(words[:4])} report {n}",
            "summary": f"Delegation number {n} met over {' '.join(words[4:])} and more.",
            "link": f"https://news.example/story/{n}", "guid": f"story-{n}",
            "published": datetime.now(UTC)}


def webhook(url: str, name: str = "hook", secret_var: str = "HOOK_SECRET",
            extra: str = "") -> str:
    return f"""
[[alerts]]
type = "webhook"
name = "{name}"
url = "{url}"
secret = "${{{secret_var}}}"
{extra}
"""


def email(port: int, name: str = "mail", *, password_var: str | None = None,
          extra: str = "") -> str:
    login = f'username = "desk"\npassword = "${{{password_var}}}"\n' if password_var else ""
    return f"""
[[alerts]]
type = "email"
name = "{name}"
host = "127.0.0.1"
port = {port}
starttls = false
sender = "monitor@example.org"
to = ["desk@example.org"]
{login}{extra}
"""


class Kit:
    """A deployment on disk: config, database, environment, logs."""

    def __init__(self, tmp_path: Path, secrets: dict[str, str] | None = None) -> None:
        self.tmp_path = tmp_path
        self.db = tmp_path / "monitor.db"
        self.config = tmp_path / "monitor.toml"
        self.env = {**os.environ, **(secrets or {})}
        self.env.pop("MONITOR_CONFIG", None)
        self.env.pop("MONITOR_DB", None)
        self.outputs: list[str] = []  # everything the CLI printed, for the secret grep
        self.runs = 0

    def write(self, *, feeds: Sequence[tuple[str, str]], channels: str = "", interval: str = "1m",
              settings: str = "", storylines: str = STORYLINES,
              retry_base: str | None = "0s") -> None:
        feed_tables = "".join(f'\n[[feeds]]\nname = "{name}"\nurl = "{url}"\n' for name, url in feeds)
        self.config.write_text(f"""
[monitor]
database = "{self.db}"
poll_interval = "{interval}"
alert_max_age = "48h"
{f'delivery_retry_base = "{retry_base}"' if retry_base else ""}
# every synthetic headline is its own story: these tests are about delivery, not clustering
stories = "copies"
{settings}
{feed_tables}
{channels}
{storylines}
""")

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "monitor", "--config", str(self.config), *args]

    def cli(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
        result = subprocess.run(self.command(*args), capture_output=True, text=True, env=self.env,
                                cwd=self.tmp_path, timeout=timeout)
        self.outputs += [result.stdout, result.stderr]
        return result

    def run_once(self, *, timeout: float = 90, incomplete: bool | None = None) -> subprocess.CompletedProcess:
        """``run --once``: it must exit 0 (``incomplete=False``), 3 (``True``: a feed failed or
        alerts were left undelivered, as fault tests cause on purpose) or either (None)."""
        result = self.cli("run", "--once", timeout=timeout)
        codes = {None: (0, 3), False: (0,), True: (3,)}[incomplete]
        assert result.returncode in codes, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def json(self, *args: str) -> Any:
        result = self.cli(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def start(self, *args: str) -> Daemon:
        self.runs += 1
        log = self.tmp_path / f"run-{self.runs}.log"
        return Daemon(self, subprocess.Popen(
            self.command("run", *args), stdout=log.open("w"), stderr=subprocess.STDOUT,
            env=self.env, cwd=self.tmp_path), log)

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.tmp_path.glob("run-*.log")))

    # -- looking into the database without the monitor's code

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute(sql, params)]
        finally:
            conn.close()


class Daemon:
    def __init__(self, kit: Kit, process: subprocess.Popen, log: Path) -> None:
        self.kit, self.process, self.log = kit, process, log

    def kill(self) -> None:
        self.process.kill()  # SIGKILL
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 30) -> int:
        self.process.terminate()
        return self.process.wait(timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def integrity_check(path: Path) -> str:
    """SQLite's own integrity check, from a connection of our own (after a kill: the WAL
    is recovered as the next start would)."""
    conn = sqlite3.connect(path, timeout=10)
    try:
        return "; ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()
