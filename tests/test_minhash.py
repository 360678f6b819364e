"""The packed MinHash computes the same signature as the plain formula, so fingerprints stored
by earlier releases still meet new ones."""

from __future__ import annotations

import json
import random
from pathlib import Path

from monitor import dedup

ITEMS = Path(__file__).parent / "data" / "items_sample.jsonl"


def _reference(shingles: frozenset[int]) -> list[int]:
    return [min(((a * s + b) % dedup._MERSENNE) & dedup._MASK32 for s in shingles)
            for a, b in dedup._COEFFS]


def test_packed_minhash_equals_the_formula_on_real_texts_and_edges():
    rng = random.Random(5)
    sets = [frozenset({0}), frozenset({0xFFFFFFFF}), frozenset({0, 1, 0xFFFFFFFF}),
            frozenset(rng.getrandbits(32) for _ in range(200))]
    for line in ITEMS.read_text(encoding="utf-8").splitlines()[:300]:
        item = json.loads(line)
        shingles = dedup.shingles_of(dedup.words(item["title"], item.get("summary") or ""))
        if shingles:
            sets.append(shingles)
    for shingles in sets:
        assert dedup._minima(shingles) == _reference(shingles)


def test_unfinished_fold_takes_the_formula(monkeypatch):
    # Force the rare branch: every slot reported as unfinished.
    monkeypatch.setattr(dedup, "_PACKED_BIT61", -1)
    shingles = frozenset({7, 12345, 0xFFFFFFFF})
    assert dedup._minima(shingles) == _reference(shingles)
