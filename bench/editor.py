"""Storylines an editor writes, taught by a desk's verdicts: learning curves (issue 19).

In: two storylines written from the README as a new user would (``EDITOR_TOML`` below, never
tuned on these labels), the labels of ``labels/editor/`` (see its RUBRIC.md) and the stream
``news/stream_2023-10-07_2023-12-31_7outlets.jsonl.gz`` of the shared data, without its reserved
window (2023-11-22 to 2023-12-02, never read).

The desk is scripted: the items published before ``--split`` (2023-11-08) are what it has
stored; in rounds of five it judges what ``monitor review`` offers (``monitor.review``: the
borderline decisions, first), two of the five being instead a miss it saw elsewhere (an earlier
positive the monitor does not match) and a false alarm it received (an earlier match that is not
one), drawn at random, each verdict given by the labels. After
each round the learned layer is trained as the daemon trains it (``learn.build_models``). After
0, 5, 10, 20 and 30 verdicts, every item published after the split is decided and scored.

Out, per storyline: F1 and C_det (P_miss + 4.9 P_fa) against the later items, for

- **keywords**: the same terms as plain whole-word keywords (each group of ``all``, and ``any``);
- **rules**: the storyline with no verdicts;
- **learned**: rules + the verdicts, as this release learns (``learn.desk_fit``);
- **from verdicts alone**: a model trained on the verdicts alone with a cross-validated
  threshold, as the release before did for a storyline without a model file;

mean and lowest over ``--seeds`` draws of the misses (the review queue itself is deterministic).

Example: python bench/editor.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from monitor.config import StorylineConfig, load_config
from monitor.draft import draft
from monitor.learn import MIN_EXAMPLES, LearnedMatcher, Model, build_models, examples_for, fit, is_candidate
from monitor.match import Matcher
from monitor.normalise import html_to_text
from monitor.review import review_queue
from monitor.stories import RESERVED

ROOT = Path(__file__).resolve().parents[1]
STREAM = "news/stream_2023-10-07_2023-12-31_7outlets.jsonl.gz"

# Written from the README's "Storylines" section as a new user would, before any label was read
# against them (the terms an editor thinks of; `any` for the context, as the README shows).
EDITOR_TOML = """
[[storylines]]
id = "rafah-crossing"
name = "Rafah crossing"
description = "The Rafah crossing between Gaza and Egypt: openings, closures, aid, people leaving"
all = [["Rafah"],
       ["crossing", "border", "aid", "trucks", "evacuation", "foreign nationals", "open", "opens",
        "reopen", "closed"]]
any = ["Gaza", "Egypt", "Egyptian"]
learned = true

[[storylines]]
id = "hezbollah-front"
name = "Hezbollah front"
description = "Fighting on the Israel-Lebanon border, evacuations, threats of a wider war"
all = [["Hezbollah", "Lebanon", "Lebanese", "Nasrallah"],
       ["border", "strike", "strikes", "fire", "rockets", "missile", "attack", "clashes", "front",
        "war", "escalation"]]
any = ["Israel", "Israeli"]
learned = true
"""

# What the editor gives `monitor storylines draft` for the same two storylines: the name, the
# description above and two headlines of the kind it wants (written with the TOML above).
DRAFTS = {
    "rafah-crossing": ("Rafah crossing", "The Rafah crossing between Gaza and Egypt: openings, closures, "
                       "aid, people leaving", ["Rafah border crossing opens for aid trucks",
                                               "Foreign nationals leave Gaza through Rafah"]),
    "hezbollah-front": ("Hezbollah front", "Fighting on the Israel-Lebanon border, evacuations, threats "
                        "of a wider war", ["Hezbollah fires rockets at northern Israel",
                                           "Israeli strikes hit south Lebanon"]),
}

CHECKPOINTS = (0, 5, 10, 20, 30)
ROUND = 5

Item = tuple[str, str, str]  # key, title, summary (normalised as the pipeline does)


def editor_storylines() -> tuple[StorylineConfig, ...]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "editor.toml"
        path.write_text('[monitor]\ndatabase = "m.db"\n' + EDITOR_TOML, encoding="utf-8")
        return load_config(path).storylines


def load_stream(data: Path) -> list[dict[str, Any]]:
    rows = []
    with gzip.open(data / STREAM, "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            day = (row.get("published") or "")[:10]
            if not day or RESERVED[0] <= day <= RESERVED[1]:
                continue  # undated items cannot be placed; the reserved window is never read
            rows.append(row)
    return rows


def load_labels(storyline_id: str) -> dict[str, dict[str, Any]]:
    path = ROOT / "labels" / "editor" / f"{storyline_id}.jsonl"
    return {r["id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def keyword_rule(storyline: StorylineConfig) -> Callable[[str], bool]:
    """The same terms as whole-word, case-insensitive keywords: a term of each group, and of
    ``any`` when set."""
    groups = [g for g in storyline.all] + ([storyline.any] if storyline.any else [])
    patterns = [re.compile(r"\b(?:" + "|".join(re.escape(t) for t in g) + r")\b", re.I) for g in groups]
    return lambda text: all(p.search(text) for p in patterns)


def score(predicted: set[str], truth: set[str], total: int) -> dict[str, float]:
    tp = len(predicted & truth)
    fp, fn = len(predicted - truth), len(truth - predicted)
    negatives = total - len(truth)
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    cost = fn / len(truth) + 4.9 * fp / negatives
    return {"f1": round(f1, 3), "c_det": round(cost, 3), "tp": tp, "fp": fp, "fn": fn}


def decided(matcher: Matcher, model: Model | None, items: Sequence[Item], storyline_id: str) -> set[str]:
    decider: Matcher | LearnedMatcher = matcher if model is None else LearnedMatcher(
        matcher, {storyline_id: model})
    return {key for key, title, summary in items
            if any(m.storyline_id == storyline_id for m in decider.match(title, summary))}


def verdicts_alone(matcher: Matcher, verdicts: Sequence[tuple[str, str, str, bool]],
                   storyline_id: str) -> Model | None:
    """The release before: a model trained on the verdicts alone, its threshold by CV, once
    both classes had MIN_EXAMPLES candidates."""
    found = examples_for(matcher, ((k, t, s, {storyline_id: y}) for k, t, s, y in verdicts)).get(
        storyline_id, [])
    candidates = [e for e in found if is_candidate(e.explanation)]
    positives = sum(1 for e in candidates if e.label)
    if positives < MIN_EXAMPLES or len(candidates) - positives < MIN_EXAMPLES:
        return None
    return fit(found)


def desk(storyline: StorylineConfig, early: Sequence[Item], late: Sequence[Item],
         truth: set[str], seed: int) -> dict[str, dict[int, dict[str, float]]]:
    """One scripted desk: the curves of the learned layer and of the release before's."""
    sid = storyline.id
    matcher = Matcher([storyline])
    candidates_early = [i for i in early if is_candidate(matcher.explain(i[1], i[2])[0])]
    late_truth = truth & {k for k, _t, _s in late}
    rng = random.Random(seed)
    verdicts: list[tuple[str, str, str, bool]] = []
    model: Model | None = None
    curves: dict[str, dict[int, dict[str, float]]] = {"learned": {}, "from verdicts alone": {}}
    early_truth = truth & {k for k, _t, _s in early}
    while True:
        n = len(verdicts)
        if n in CHECKPOINTS:
            curves["learned"][n] = score(decided(matcher, model, late, sid), late_truth, len(late))
            before = verdicts_alone(matcher, verdicts, sid) if verdicts else None
            curves["from verdicts alone"][n] = score(decided(matcher, before, late, sid), late_truth,
                                                     len(late))
        if n >= CHECKPOINTS[-1]:
            return curves
        judged = {k for k, *_rest in verdicts}
        queue = [r.key for r in review_queue(matcher, sid, candidates_early, model=model,
                                              judged=judged, limit=ROUND)]
        matched_now = decided(matcher, model, early, sid)
        seen = [sorted(early_truth - matched_now - judged - set(queue)),  # a miss seen elsewhere
                sorted(matched_now - early_truth - judged - set(queue))]  # a false alarm it got
        extra = [rng.choice(keys) for keys in seen if keys]
        chosen = [*queue[:ROUND - len(extra)], *extra]
        by_key = {i[0]: i for i in early}
        for key in chosen:
            _k, title, summary = by_key[key]
            verdicts.append((key, title, summary, key in truth))
        model = build_models(matcher, {sid: verdicts})[sid]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"),
                        help="the shared data folder (holding news/)")
    parser.add_argument("--split", default="2023-11-08", help="verdicts before this day, scored after")
    parser.add_argument("--seeds", type=int, default=3, help="draws of the misses the desk saw elsewhere")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    started = time.monotonic()
    stream = load_stream(Path(args.data))
    items = {r["id"]: (r["id"], html_to_text(r.get("title") or ""), html_to_text(r.get("summary") or ""))
             for r in stream}
    early = [items[r["id"]] for r in stream if r["published"][:10] < args.split]
    late = [items[r["id"]] for r in stream if r["published"][:10] >= args.split]
    report: dict[str, Any] = {"split": args.split, "early": len(early), "late": len(late), "storylines": {}}
    written = editor_storylines()
    drafted = [draft(s.id, *DRAFTS[s.id], early).storyline for s in written]  # from the stored items
    for storyline in [*written, *drafted]:
        labels = load_labels(storyline.id)
        truth = {k for k, r in labels.items() if r["label"]}
        late_truth = truth & {k for k, _t, _s in late}
        matcher = Matcher([storyline])
        keywords = keyword_rule(storyline)
        rules = score(decided(matcher, None, late, storyline.id), late_truth, len(late))
        plain = score({k for k, t, s in late if keywords(f"{t}\n{s}")}, late_truth, len(late))
        runs = [desk(storyline, early, late, truth, seed) for seed in range(args.seeds)]
        curves = {}
        for name in ("learned", "from verdicts alone"):
            curves[name] = {n: {"f1": round(statistics.mean(r[name][n]["f1"] for r in runs), 3),
                                "f1_min": min(r[name][n]["f1"] for r in runs),
                                "c_det": round(statistics.mean(r[name][n]["c_det"] for r in runs), 3),
                                "c_det_max": max(r[name][n]["c_det"] for r in runs)}
                            for n in CHECKPOINTS}
        report["storylines"][("drafted " if storyline in drafted else "") + storyline.id] = {
            "all": [list(g) for g in storyline.all], "any": list(storyline.any), "none": list(storyline.none),
            "positives_early": len(truth) - len(late_truth), "positives_late": len(late_truth),
            "keywords": plain, "rules": rules, "curves": curves}
    report["seconds"] = round(time.monotonic() - started, 1)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return 0
    print(f"verdicts on {report['early']} items before {args.split}, scored on the {report['late']} after "
          f"({args.seeds} draws of the misses; mean, worst)")
    for sid, r in report["storylines"].items():
        print(f"\n{sid}: {r['positives_late']} positives after the split ({r['positives_early']} before)")
        print(f"  keywords    F1 {r['keywords']['f1']:.3f}  C_det {r['keywords']['c_det']:.3f}")
        print(f"  rules       F1 {r['rules']['f1']:.3f}  C_det {r['rules']['c_det']:.3f}")
        for name, curve in r["curves"].items():
            print(f"  {name}:")
            for n, c in curve.items():
                print(f"    {n:2d} verdicts  F1 {c['f1']:.3f} (worst {c['f1_min']:.3f})  "
                      f"C_det {c['c_det']:.3f} (worst {c['c_det_max']:.3f})")
    print(f"\n{report['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
