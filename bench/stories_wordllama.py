"""Would word embeddings help story clustering? bench/stories.py's events mode, with one more
rule: a report that the rules leave alone (no story's bar reached) joins the story whose reports'
wordllama embedding (headline + the summary's first words, cosine with the closest of the
story's first 8 reports) is at least ``--bar``, among the stories it is not ``_apart`` from and
whose word similarity is at least ``--low``. Measured on 2026-12-05 and not adopted (README,
"Stories"): every setting that saved a repeat alert also mixed developments.

Needs ``pip install wordllama`` (0.4; not a dependency of the monitor). The wheel ships its
default model (l2_supercat, 256 dimensions, 16 MB) and tokenizer, so nothing is downloaded: the
model is loaded with ``disable_download=True`` and the package's own folder as cache (``load``
looks for ``<package>/tokenizer/`` but the wheel has ``<package>/tokenizers/``, which is where
it looks in a cache folder). Its weights are distilled from the token embeddings of Llama 2 70B
and phi-3 medium (the package's README); the package says MIT, the Llama 2 licence covers
derivatives of Llama 2 and is not shipped with it.

    python bench/stories_wordllama.py --data ../shared/data --split tune --dim 256 --low 0.2 --bar 0.75
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stories as bench  # bench/stories.py

import monitor.store.core as store_module  # where Store._record_entry calls decide
from monitor import stories

KEPT = 8  # the reports of a story whose vectors are compared


def load_model(dim: int) -> Any:
    import wordllama
    from wordllama import WordLlama

    return WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True,
                          trunc_dim=dim if dim != 256 else None)


def install(model: Any, low: float, bar: float) -> dict[int, list[list[float]]]:
    """Wrap the bench's event_of, StoryProfile.add and the store's decide; return the vectors
    kept per story."""
    vectors: dict[int, list[list[float]]] = {}
    original_event_of, original_add = bench.event_of, stories.StoryProfile.add
    original_decide = store_module.decide

    def event_of(title: str, summary: str) -> stories.Event:
        event = original_event_of(title, summary)
        head = title.split(" | ")[0]
        text = f"{head}. {' '.join(summary.split()[:stories.SUMMARY_WORDS])}"
        object.__setattr__(event, "_vector", [float(x) for x in model.embed([text], norm=True)[0]])
        return event

    def add(self: stories.StoryProfile, event: stories.Event, published: float, source: str,
            storylines: set[str]) -> bool:
        kept = vectors.setdefault(self.story_id, [])
        if event.kind == "report" and len(kept) < KEPT and hasattr(event, "_vector"):
            kept.append(event._vector)  # type: ignore[attr-defined]
        return original_add(self, event, published, source, storylines)

    def decide(event: stories.Event, published: float,
               candidates: list[stories.StoryProfile]) -> stories.Decision:
        decision = original_decide(event, published, candidates)
        vector = getattr(event, "_vector", None)
        if decision.story_id is not None or event.kind != "report" or vector is None:
            return decision
        best: tuple[float, int] | None = None
        for story in candidates:
            if stories._apart(event, story, published) is not None:
                continue
            score, _ = stories.similarity(event, story)
            if score < low:
                continue
            cosine = max((sum(a * b for a, b in zip(vector, v, strict=True))
                          for v in vectors.get(story.story_id, [])), default=0.0)
            if cosine >= bar and (best is None or cosine > best[0]):
                best = (cosine, story.story_id)
        if best is None:
            return decision
        return stories.Decision(best[1], {"by": "embedding", "cosine": round(best[0], 3)})

    bench.event_of = event_of
    stories.StoryProfile.add = add  # type: ignore[method-assign]
    store_module.decide = decide
    return vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=bench.ROOT.parent / "shared" / "data")
    parser.add_argument("--split", choices=("all", "tune", "test"), default="all")
    parser.add_argument("--dim", type=int, default=256, choices=(64, 128, 256))
    parser.add_argument("--low", type=float, default=0.2, help="the word similarity needed")
    parser.add_argument("--bar", type=float, default=0.75, help="the cosine needed")
    args = parser.parse_args()
    paths = sorted((bench.ROOT / "labels").glob("developments-*.jsonl"))
    labelled = [json.loads(line) for path in paths for line in path.read_text().splitlines()]
    labelled = [row for row in labelled
                if not stories.RESERVED[0] <= row["published"][:10] <= stories.RESERVED[1]]
    if args.split != "all":
        labelled = [row for row in labelled if bench.split_of(row["published"]) == args.split]
    labelled.sort(key=lambda row: (row["published"], row["id"]))
    raw = bench.texts(args.data, {row["id"] for row in labelled})
    labelled = [row for row in labelled if row["id"] in raw]
    matcher = bench.config_matcher(bench.load_config(bench.packaged_default_path(), environ={}))
    print("| rules | alerts | redundant | mixed stories | B3 P | B3 R |\n|---|---|---|---|---|---|")
    for name in ("events", f"events + wordllama {args.dim}d (low {args.low}, cosine {args.bar})"):
        if name != "events":
            install(load_model(args.dim), args.low, args.bar)
        s = bench.score(labelled, bench.replay(labelled, raw, "events", matcher), "events")
        print(f"| {name} | {s['alerts']} | {s['redundant']} | {s['mixed stories']} "
              f"| {s['B3 precision']:.3f} | {s['B3 recall']:.3f} |")


if __name__ == "__main__":
    main()
