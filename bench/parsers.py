"""What each parser costs: the fast path (fastparse, C ElementTree) and feedparser, on the farm's
feeds and on the hostile corpus (feedparser's own test feeds). Prints a small table.

    python bench/parsers.py [FARM_DIR]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from monitor import fastparse, parse
from monitor.errors import ParseError

HERE = Path(__file__).resolve().parent
CORPORA = {
    "hostile corpus (shared, 2,100+ files)": Path("/work/shared/data/feeds/feedparser-corpus"),
    "hostile corpus (tests/data/hostile)": HERE.parent / "tests" / "data" / "hostile",
}


def measure(files: list[Path]) -> dict[str, float]:
    real = fastparse.parse
    fast_docs = fast_time_all = slow_time = 0.0
    for path in files:
        body = path.read_bytes()
        url = "http://example.org/feed.xml"
        taken = real(body, base=url, content_type=None) is not None
        started = time.perf_counter()
        try:
            parse.parse_feed(body, url=url)
        except ParseError:
            pass
        shipped = time.perf_counter() - started
        fastparse.parse = lambda *a, **k: None
        started = time.perf_counter()
        try:
            parse.parse_feed(body, url=url)
        except ParseError:
            pass
        slow = time.perf_counter() - started
        fastparse.parse = real
        fast_docs += taken
        fast_time_all += shipped
        slow_time += slow
    return {"files": len(files), "fast_path": fast_docs, "shipped_s": fast_time_all,
            "feedparser_only_s": slow_time}


def main() -> None:
    farm = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "out" / "farm"
    sets = {f"farm ({farm})": sorted(farm.glob("f*.xml"))}
    sets.update({name: sorted(p for p in root.rglob("*.xml") if p.is_file())
                 for name, root in CORPORA.items() if root.is_dir()})
    print("| documents | files | took the fast path | parse as shipped | feedparser only |")
    print("|---|---|---|---|---|")
    for name, files in sets.items():
        m = measure(files)
        print(f"| {name} | {m['files']:,} | {m['fast_path']:,.0f} | {m['shipped_s']:.2f} s | "
              f"{m['feedparser_only_s']:.2f} s |")


if __name__ == "__main__":
    main()
