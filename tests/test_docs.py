"""The README documents every command, and every command's help has an example."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from monitor.cli import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def commands(group: click.Group, prefix: str = "monitor") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        found.append((f"{prefix} {name}", command))
        if isinstance(command, click.Group):
            found.extend(commands(command, f"{prefix} {name}"))
    return found


@pytest.mark.parametrize("name, command", commands(cli), ids=lambda v: v if isinstance(v, str) else "")
def test_command_documented_with_example(name, command):
    assert f"`{name}" in README, f"{name} is missing from README.md"
    assert "Example:" in (command.help or ""), f"{name} --help has no Example:"


def test_quick_start_is_two_commands():
    assert "pip install . && monitor run" in README
    assert "pip install '.[test]' && pytest" in README
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "pip install '.[test]' && pytest" in ci


def test_ci_requires_the_postgresql_server():
    """CI runs the PostgreSQL half of the store's tests and fails, not skips, without a server."""
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "export MONITOR_TEST_POSTGRES=postgresql://postgres@127.0.0.1:5432/postgres" in ci
    assert "export MONITOR_TEST_POSTGRES_REQUIRED=1" in ci
    assert ci.index("MONITOR_TEST_POSTGRES_REQUIRED=1") < ci.index("&& pytest")
    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    assert '"psycopg[binary]' in pyproject and '"psycopg-pool' in pyproject
