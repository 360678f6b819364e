"""The README's `monitor eval` figures are what `monitor eval` prints: the sample shipped in
`labels/sample/` (always), and the table on the 600 test items (where the team's items file is at
hand: `../shared/data/news/items.jsonl` from the repository, or $MONITOR_ITEMS)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.config import packaged_default_path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SAMPLE = ROOT / "labels" / "sample"


def evaluate(labels: Path, items: Path, *extra: str) -> dict:
    result = CliRunner().invoke(cli, ["--config", str(packaged_default_path()), "eval", str(labels),
                                      "--items", str(items), "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_the_sample_figures_in_the_readme_are_what_eval_prints():
    command = "monitor eval labels/sample/labels.jsonl --items labels/sample/items.jsonl --rules"
    assert command in README
    block = README[README.index(command):].split("```\n")[2]  # the output block after it
    shown = [line.split() for line in block.splitlines() if " all " in line]
    report = evaluate(SAMPLE / "labels.jsonl", SAMPLE / "items.jsonl", "--rules")
    printed = []
    for storyline, parts in report["storylines"].items():
        a = parts["all"]
        printed.append([storyline, "all", str(a["tp"] + a["fp"] + a["fn"] + a["tn"]), str(a["tp"] + a["fn"]),
                        *(str(a[k]) for k in ("tp", "fp", "fn", "tn")),
                        *(f"{a[k]:.3f}" for k in ("precision", "recall", "f1", "c_det"))])
    assert shown == printed


def items_file() -> Path | None:
    for candidate in (os.environ.get("MONITOR_ITEMS"), ROOT.parent / "shared/data/news/items.jsonl",
                      ROOT.parent.parent / "shared/data/news/items.jsonl"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def readme_table() -> dict[str, dict[str, tuple[float, float]]]:
    """storyline -> {"rules": (F1, C_det), "run": (F1, C_det)} from the test-set table."""
    rows = {}
    for line in README.splitlines():
        found = re.match(r"^\| (ceasefire-talks|cairo-talks|captive-releases) \(\d+( positives)?\) \|"
                         r"[^|]+\| ([\d.]+) / ([\d.]+) \| [^|]*?([\d.]+) / ([\d.]+) \|", line)
        if found:
            rows[found.group(1)] = {"rules": (float(found.group(3)), float(found.group(4))),
                                    "run": (float(found.group(5)), float(found.group(6)))}
    return rows


@pytest.mark.skipif(items_file() is None, reason="the team's items file is not at hand")
def test_the_test_set_table_in_the_readme_is_what_eval_prints():
    table = readme_table()
    assert set(table) == {"ceasefire-talks", "cairo-talks", "captive-releases"}
    labels = ROOT / "labels" / "test-2026-11-26.jsonl"
    for column, extra in (("rules", ("--rules",)), ("run", ())):
        report = evaluate(labels, items_file(), *extra)
        for storyline, figures in table.items():
            a = report["storylines"][storyline]["all"]
            assert figures[column] == (round(a["f1"], 2), round(a["c_det"], 2)), (storyline, column)
