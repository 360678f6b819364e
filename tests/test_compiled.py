"""The compiled build (setup.py: mypyc) decides exactly as the Python source it was made from.

CI installs the package with ``pip install .``, which compiles ``match``, ``learn`` and
``normalise`` where a C compiler is at hand; the whole suite then runs on the compiled modules.
This test also runs the source next to them, on real items, in two processes, and compares
every decision and explanation. Skipped where the installed package is plain Python (an
editable install, or no compiler): there is nothing to compare then.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
from monitor.normalise import canonical_url, html_to_text
from monitor.pipeline import config_matcher

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


def _run(tmp_path: Path, *, source: bool) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    if source:
        env["PYTHONPATH"] = str(ROOT)  # the package's source directory comes first
    files = [str(DATA / "items_sample.jsonl"), str(DATA / "e2e_items.jsonl")]
    done = subprocess.run([sys.executable, "-P", "-c", SCRIPT, *files], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(not COMPILED, reason="the installed monitor is plain Python (nothing compiled)")
def test_compiled_modules_decide_as_their_source(tmp_path):
    compiled, source = _run(tmp_path, source=False), _run(tmp_path, source=True)
    assert all(path.endswith(".so") for path in compiled["modules"])
    assert all(path.endswith(".py") and path.startswith(str(ROOT)) for path in source["modules"])
    assert sum(map(len, compiled["matches"])) >= 10  # the items do match storylines
    for key in ("matches", "explanations", "urls"):
        assert compiled[key] == source[key], key
