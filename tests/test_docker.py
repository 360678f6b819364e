"""The Dockerfile builds what the README says: the compiled matcher (setup.py copied, a compiler in
the build stage, the build failing when the matcher did not compile) and a HEALTHCHECK that runs a
real command. The image itself is built by hand (`docker build`, README "Docker")."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from monitor.cli import cli

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")


def test_the_build_stage_compiles_with_setup_py_and_the_image_checks_it():
    build, final = DOCKERFILE.split("\nFROM ${BASE}\n")
    copied = [line.split()[1:-1] for line in build.splitlines() if line.startswith("COPY ")]
    assert any("setup.py" in files for files in copied) and any("pyproject.toml" in f for f in copied)
    assert "gcc" in build and "pip wheel" in build
    assert "m.__file__.endswith('.so')" in final  # the build fails on a plain Python matcher


def test_the_healthcheck_runs_a_monitor_command_that_exists(tmp_path):
    found = re.search(r"^HEALTHCHECK .*?CMD (\[.*?\])$", DOCKERFILE, re.M | re.S)
    assert found, "no HEALTHCHECK"
    args = [a.strip(' "') for a in found.group(1).strip("[]").split(",")]
    assert args[:2] == ["monitor", "health"]
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "none.db"), *args[1:]])
    assert result.exit_code == 1 and "no database" in result.output  # unhealthy, not a usage error


def test_the_readme_shows_how_to_pass_secrets():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    docker = readme[readme.index("## Docker"):readme.index("## Development")]
    assert "-e MONITOR_WEBHOOK_SECRET" in docker and "--env-file" in docker
    assert "docker build" in docker
