"""The compiled build (setup.py: mypyc) decides exactly as the Python source it was made from.

CI installs the package with ``pip install .``, which compiles ``match``, ``learn`` and
``normalise`` where a C compiler is at hand; the whole suite then runs on the compiled modules.
This test also runs the source next to them, on real items, in two processes, and compares
every decision and explanation. Where the installed package is plain Python (an editable
install), it compiles a copy of the source itself (cached by the sources' hash) and compares
that; it is skipped only where nothing can be compiled (no mypyc, no C compiler).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import monitor.match

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
COMPILED = monitor.match.__file__.endswith(".so")

# Run in each process: the packaged storylines with their shipped models, over real items.
SCRIPT = """
import json, sys
import monitor.match, monitor.learn, monitor.normalise
from monitor.config import load_config, packaged_default_path
from monitor.deciders import config_matcher
from monitor.normalise import canonical_url, html_to_text

matcher = config_matcher(load_config(packaged_default_path()))
texts = []
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as lines:
        for row in map(json.loads, lines):
            texts.append((html_to_text(row["title"]), html_to_text(row.get("summary") or ""),
                          row.get("link") or row.get("url")))
texts += [("Khalil Al Hayyah arrives in Cairo for truce talks", "hostages freed in retun for prisoners"),
          ("CAIRO (AP) — Hamas delegation", "Haniyah and el-Sisi discuss a cease-fire proposal")]
texts = [t + (None,) if len(t) == 2 else t for t in texts]
print(json.dumps({
    "modules": [m.__file__ for m in (monitor.match, monitor.learn, monitor.normalise)],
    "matches": [[[m.storyline_id, m.score, [h.term for h in m.hits]] for m in matcher.match(t, s)]
                for t, s, _link in texts],
    "explanations": [[e.to_dict() for e in matcher.explain(t, s)] for t, s, _link in texts],
    "urls": [canonical_url(link) for _t, _s, link in texts],
}))
"""


def _run(tmp_path: Path, *, path: Path | None) -> dict:
    """The script's output with ``monitor`` imported from ``path`` (None: as installed)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    if path is not None:
        env["PYTHONPATH"] = str(path)  # this copy of the package comes first
    files = [str(DATA / "items_sample.jsonl"), str(DATA / "e2e_items.jsonl")]
    done = subprocess.run([sys.executable, "-P", "-c", SCRIPT, *files], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _compiled_copy() -> Path:
    """A copy of the package with ``match``, ``learn`` and ``normalise`` compiled by setup.py
    (mypyc), kept in the temporary directory under the hash of the sources, so that only the
    first run after a change pays for the build (~15 s). Skips without mypyc or a C compiler."""
    pytest.importorskip("mypyc", reason="mypyc is not installed: nothing to compile with")
    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler: nothing can be compiled here")
    digest = hashlib.sha256(sys.version.encode())
    # every file of the package, the default config and model files too: the copy decides with them
    files = [ROOT / "setup.py", *sorted(p for p in (ROOT / "monitor").rglob("*")
                                        if p.is_file() and "__pycache__" not in p.parts
                                        and p.suffix != ".so")]
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    build = Path(tempfile.gettempdir()) / f"ceasefire-monitor-compiled-{digest.hexdigest()[:16]}"
    if not build.exists():
        scratch = Path(tempfile.mkdtemp(prefix="ceasefire-monitor-build-"))
        shutil.copy(ROOT / "setup.py", scratch)
        shutil.copy(ROOT / "pyproject.toml", scratch)
        shutil.copytree(ROOT / "monitor", scratch / "monitor",
                        ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        env = {key: value for key, value in os.environ.items() if key != "CEASEFIRE_MONITOR_PURE"}
        done = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                              cwd=scratch, env=env, capture_output=True, text=True, timeout=900)
        built = sorted(p.name.split(".")[0] for p in (scratch / "monitor").glob("*.so"))
        if built != ["learn", "match", "normalise"]:
            shutil.rmtree(scratch, ignore_errors=True)
            pytest.skip(f"the modules could not be compiled here: {done.stderr[-500:]}")
        try:
            scratch.rename(build)
        except OSError:  # another run built it at the same time
            shutil.rmtree(scratch, ignore_errors=True)
    return build


def test_compiled_modules_decide_as_their_source(tmp_path):
    """Against the installed compiled modules when the install compiled them; otherwise
    against a compiled build of the source made for the test."""
    compiled_path = None if COMPILED else _compiled_copy()
    compiled, source = _run(tmp_path, path=compiled_path), _run(tmp_path, path=ROOT)
    assert all(path.endswith(".so") for path in compiled["modules"])
    assert all(path.endswith(".py") and path.startswith(str(ROOT)) for path in source["modules"])
    assert sum(map(len, compiled["matches"])) >= 10  # the items do match storylines
    for key in ("matches", "explanations", "urls"):
        assert compiled[key] == source[key], key
