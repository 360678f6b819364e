"""The package type-checks with mypy.

Not style: ``match``, ``learn`` and ``normalise`` are compiled with mypyc (``setup.py``), which
turns their annotations into runtime checks, so a wrong annotation there is a ``TypeError`` in
the compiled build only, and the build falls back to plain Python when mypy rejects a compiled
module. Elsewhere a wrong annotation is a wrong claim to the reader.
"""

from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

ROOT = Path(__file__).resolve().parent.parent


def test_the_package_type_checks() -> None:
    stdout, stderr, status = mypy_api.run([
        "--ignore-missing-imports", "--cache-dir", str(ROOT / ".mypy_cache"), str(ROOT / "monitor")])
    assert status == 0, stdout + stderr
    assert "Success" in stdout
