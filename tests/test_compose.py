"""compose.yaml (issue 16): PostgreSQL 15 and two monitor instances sharing it.

Checked statically on every run (the services, their environment, the start order, the image
bringing psycopg), and the healthcheck the instances run is checked on a real PostgreSQL
database. ``test_compose_up_runs_two_instances_on_one_database`` builds the image and runs
``docker compose up`` only where a Docker engine with compose and the base images is at hand
(no network is needed then); elsewhere it skips, saying which of them is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from click.testing import CliRunner

from monitor.cli import cli
from monitor.config import FeedConfig
from monitor.store import open_store

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
SERVICES = COMPOSE["services"]
MONITORS = sorted(name for name, service in SERVICES.items() if name != "postgres")


def test_postgresql_15_with_its_password_from_the_environment_and_a_healthcheck():
    postgres = SERVICES["postgres"]
    assert postgres["image"] == "postgres:15"
    env = postgres["environment"]
    assert env["POSTGRES_USER"] == "monitor" and env["POSTGRES_DB"] == "monitor"
    assert env["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD")  # never a literal
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert "ports" not in postgres  # reachable on the compose network only
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])


def test_two_monitor_instances_share_the_database_and_wait_for_it():
    assert MONITORS == ["monitor-1", "monitor-2"]
    urls = []
    for name in MONITORS:
        service = SERVICES[name]
        assert service["build"] == "." and (ROOT / "Dockerfile").exists()
        assert service["depends_on"] == {"postgres": {"condition": "service_healthy"}}
        assert "command" not in service and "volumes" not in service  # `monitor run`, default config
        url = service["environment"]["MONITOR_DB"]
        parts = urlsplit(re.sub(r"\$\{POSTGRES_PASSWORD[^}]*\}", "PASSWORD", url))
        assert parts.scheme == "postgresql" and parts.hostname == "postgres" and parts.port == 5432
        assert parts.path == "/" + SERVICES["postgres"]["environment"]["POSTGRES_DB"]
        assert parts.username == SERVICES["postgres"]["environment"]["POSTGRES_USER"]
        assert parts.password == "PASSWORD"
        assert url.count("${POSTGRES_PASSWORD") == 1  # the same variable as the server's
        urls.append(url)
    assert urls[0] == urls[1]


def test_the_image_installs_psycopg_with_the_monitor():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    final = dockerfile.split("\nFROM ${BASE}\n")[1]
    install = next(line for line in final.splitlines() if "pip install" in line)
    assert "--no-deps" not in install  # the wheel's dependencies (psycopg among them) come along
    assert "import psycopg, psycopg_pool" in final  # and the build fails without them
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"psycopg[binary]' in pyproject  # binary: libpq inside the wheel, none in the slim image
    assert "ENTRYPOINT [\"monitor\"]" in final and "CMD [\"run\"]" in final


def test_the_instances_healthcheck_works_on_a_postgresql_url(pg_url):
    """The image's HEALTHCHECK (`monitor health`) with MONITOR_DB a URL: no monitor database
    there yet is unhealthy (exit 1), a feed fetched just now is healthy."""
    runner = CliRunner()
    before = runner.invoke(cli, ["--db", pg_url, "health"])
    assert before.exit_code == 1 and "unhealthy" in before.output
    assert "no monitor database here yet" in before.output
    with open_store(pg_url) as store:
        feed = FeedConfig("Outlet", "http://127.0.0.1:1/a.xml", 60)
        store.sync_feeds([feed])
        now = datetime.now(UTC)
        store.record_not_modified(feed.url, now=now, status=304, next_poll_at=now + timedelta(minutes=5))
    after = runner.invoke(cli, ["--db", pg_url, "health", "--max-age", "15m"])
    assert after.exit_code == 0 and after.output.startswith("healthy"), after.output


def _docker_missing() -> str | None:
    """Why the compose test cannot run here, or None."""
    if not shutil.which("docker"):
        return "no docker command"
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                          capture_output=True, text=True)
    if info.returncode:
        said = (info.stderr.strip().splitlines() or ["no answer"])[-1]
        return f"no Docker engine answers ({said})"
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode:
        return "the Docker engine has no compose plugin (docker compose)"
    base = os.environ.get("MONITOR_DOCKER_BASE", "python:3.11-slim")
    for image in (base, "postgres:15"):
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode:
            return (f"image {image} is not present (docker pull {image}; or MONITOR_DOCKER_BASE "
                    "names a local stand-in for python:3.11-slim)")
    return None


def test_compose_up_runs_two_instances_on_one_database(tmp_path):
    missing = _docker_missing()
    if missing:
        pytest.skip(f"docker compose up not run: {missing}")
    project = f"monitortest{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "POSTGRES_PASSWORD": uuid.uuid4().hex}
    base = os.environ.get("MONITOR_DOCKER_BASE")
    compose = ["docker", "compose", "-p", project, "-f", str(ROOT / "compose.yaml")]
    if base:  # build on a local stand-in for python:3.11-slim
        override = tmp_path / "base.yaml"
        override.write_text(json.dumps({"services": {
            name: {"build": {"context": str(ROOT), "args": {"BASE": base}}} for name in MONITORS}}))
        compose += ["-f", str(override)]

    def psql(sql: str) -> str:
        return subprocess.run([*compose, "exec", "-T", "postgres", "psql", "-U", "monitor", "-d",
                               "monitor", "-Atc", sql], env=env, capture_output=True, text=True,
                              check=True).stdout.strip()

    try:
        subprocess.run([*compose, "up", "-d", "--build"], env=env, check=True, capture_output=True,
                       timeout=900)
        deadline = time.monotonic() + 120
        clients = feeds = 0
        while time.monotonic() < deadline:
            running = subprocess.run([*compose, "ps", "--status", "running", "--services"], env=env,
                                     capture_output=True, text=True).stdout.split()
            assert set(MONITORS) <= set(running), f"not running: {set(MONITORS) - set(running)}"
            try:
                clients = int(psql("SELECT COUNT(DISTINCT client_addr) FROM pg_stat_activity "
                                   "WHERE datname = 'monitor' AND client_addr IS NOT NULL"))
                feeds = int(psql("SELECT COUNT(*) FROM feeds"))
            except subprocess.CalledProcessError:
                clients = feeds = 0  # the schema is not there yet
            if clients >= 2 and feeds:
                break
            time.sleep(2)
        assert clients >= 2, "both instances connected to the database"
        assert feeds >= 1, "the instances synced the default config's feeds"
        logs = subprocess.run([*compose, "logs", *MONITORS], env=env, capture_output=True,
                              text=True).stdout
        assert env["POSTGRES_PASSWORD"] not in logs
        assert "Traceback" not in logs
    finally:
        subprocess.run([*compose, "down", "-v", "--remove-orphans"], env=env, capture_output=True,
                       timeout=300)
