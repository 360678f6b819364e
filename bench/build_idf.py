"""Build the word document frequencies that story clustering weighs shared words by.

In: the shared news items and stream (``../shared/data/news`` or --data), without the stream's
reserved window (2023-11-22 .. 2023-12-02). Out: ``monitor/default_config/word_idf.json``
({"documents": N, "df": {word: count}} for words seen in at least --min-df items).

Words are ``monitor.stories.words`` of title + summary, so the table and the clusterer agree.

Example: python bench/build_idf.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter
from pathlib import Path

from monitor.normalise import html_to_text
from monitor.stories import IDF_PATH, RESERVED, words


def items(data: Path):
    with (data / "news" / "items.jsonl").open() as handle:
        for line in handle:
            yield json.loads(line)
    with gzip.open(data / "news" / "stream_2023-10-07_2023-12-31_7outlets.jsonl.gz", "rt") as handle:
        for line in handle:
            yield json.loads(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parent.parent.parent / "shared/data")
    parser.add_argument("--min-df", type=int, default=3)
    args = parser.parse_args()
    df: Counter[str] = Counter()
    documents = 0
    for item in items(args.data):
        day = (item.get("published") or "")[:10]
        if RESERVED[0] <= day <= RESERVED[1]:
            continue
        documents += 1
        df.update(set(words(html_to_text(item["title"]) + " " + html_to_text(item.get("summary") or ""))))
    table = {word: count for word, count in sorted(df.items()) if count >= args.min_df}
    IDF_PATH.write_text(json.dumps({"documents": documents, "df": table}, separators=(",", ":")))
    print(f"{documents} items, {len(df)} words, {len(table)} kept (df >= {args.min_df}) -> {IDF_PATH}")


if __name__ == "__main__":
    main()
