"""Write the items the humanitarian-pause labels refer to (id, source, title, summary, link,
published), from the team's data, to the path given (default /tmp/humanitarian-pause-items.jsonl):

    python labels/humanitarian-pause/items.py [OUT]
    monitor eval labels/humanitarian-pause/test.jsonl --items /tmp/humanitarian-pause-items.jsonl --rules

The outlets' text stays out of the repository. The stream's reserved window (2023-11-22 to
2023-12-02) is dropped before anything else is read.
"""
import gzip
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DATA = next((p for p in (ROOT.parent / "shared/data/news", ROOT.parent.parent / "shared/data/news")
             if (p / "items.jsonl").exists()), ROOT.parent / "shared/data/news")   # ../shared/data/news
RESERVED = ("2023-11-22", "2023-12-02")


def outside_reserved(item: dict) -> bool:
    day = (item.get("published") or "")[:10]
    return bool(day) and not RESERVED[0] <= day <= RESERVED[1]


def main(out: str) -> None:
    wanted = {json.loads(line)["id"] for name in ("tune.jsonl", "test.jsonl")
              for line in (HERE / name).read_text().splitlines() if line.strip()}
    found = {}
    stream_path = DATA / "stream_2023-10-07_2023-12-31_7outlets.jsonl.gz"
    with open(DATA / "items.jsonl", encoding="utf-8") as items, \
            gzip.open(stream_path, "rt", encoding="utf-8") as stream:
        for line in (*items, *stream):
            item = json.loads(line)
            if item["id"] in wanted and outside_reserved(item):
                found[item["id"]] = {k: item.get(k) for k in ("id", "source", "title", "summary",
                                                              "link", "published")}
    missing = wanted - found.keys()
    if missing:
        sys.exit(f"{len(missing)} labelled ids not found, e.g. {sorted(missing)[0]}")
    with open(out, "w", encoding="utf-8") as f:
        for item in found.values():
            f.write(json.dumps(item, ensure_ascii=False) + "\n")
    print(f"{len(found)} items -> {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/humanitarian-pause-items.jsonl")
