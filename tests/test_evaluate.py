"""monitor.evaluate: loading errors, the metric arithmetic, and an eval over a copied sample of dev."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from monitor.config import StorylineConfig, load_config, packaged_default_path
from monitor.evaluate import (
    Counts,
    DataError,
    c_det,
    evaluate,
    held_out,
    load_items,
    load_labels,
    run_eval,
)
from monitor.match import Matcher
from monitor.normalise import html_to_text

DATA = Path(__file__).parent / "data"
LABELS = DATA / "labels_sample.jsonl"
ITEMS = DATA / "items_sample.jsonl"

# Deliberately plain rules, so that the expected counts can be worked out by reading the 28 items:
# ceasefire-talks = the item says truce / ceasefire / cease-fire anywhere;
# captive-releases = hostage(s)/prisoner(s) and release/released/releasing/free/freed anywhere.
PLAIN = [
    StorylineConfig("ceasefire-talks", "talks", all=(("truce", "ceasefire"),)),
    StorylineConfig("captive-releases", "releases", all=(("hostage", "prisoner"), ("released", "freed"))),
    StorylineConfig("not-labelled", "x", all=(("zebra",),)),
]


def test_counts_arithmetic():
    c = Counts(tp=8, fp=2, fn=2, tn=88)
    assert c.precision == pytest.approx(0.8)
    assert c.recall == pytest.approx(0.8)
    assert c.f1 == pytest.approx(0.8)
    assert c.p_miss == pytest.approx(0.2)
    assert c.p_fa == pytest.approx(2 / 90)
    assert c.c_det == pytest.approx(0.2 + 4.9 * 2 / 90)
    assert c_det(0.0, 0.1) == pytest.approx(0.49)


def test_counts_with_nothing_predicted_or_nothing_to_find():
    assert Counts(tp=0, fp=0, fn=3, tn=7).precision == 0.0
    assert Counts(tp=0, fp=0, fn=3, tn=7).f1 == 0.0
    assert Counts(tp=0, fp=0, fn=3, tn=7).c_det == pytest.approx(1.0)
    assert Counts(tp=0, fp=1, fn=0, tn=9).p_miss == 0.0
    assert Counts(tp=0, fp=1, fn=0, tn=9).c_det == pytest.approx(0.49)


def test_held_out_is_a_fixed_fifth_by_id_hash():
    # sha1("rl23-6f22932f434e") % 5 != 0; these two were checked by hand with hashlib
    import hashlib

    for item_id in ("rl23-6f22932f434e", "rl23-96926de2d8f4", "mm-x", "pg-1"):
        expected = int(hashlib.sha1(item_id.encode()).hexdigest(), 16) % 5 == 0
        assert held_out(item_id) is expected
    ids = [f"id-{i}" for i in range(2000)]
    assert 330 < sum(map(held_out, ids)) < 470


# The plain rules above, written as regular expressions over the plain text: an oracle that
# shares no code with the matcher or the evaluation.
_ORACLE = {
    "ceasefire-talks": lambda text: bool(re.search(r"\b(truces?|cease-?\s?fires?)\b", text, re.I)),
    "captive-releases": lambda text: bool(
        re.search(r"\b(hostages?|prisoners?)\b", text, re.I)
        and re.search(r"\b(releas(e|ed|es|ing)|free|freed|frees|freeing)\b", text, re.I)),
}


def _oracle_counts() -> dict[str, dict[str, tuple[int, int, int, int]]]:
    """(tp, fp, fn, tn) per part and storyline, worked out from the files alone: the labels,
    the oracle's prediction on each item's text, and the held-out fifth by sha1(id) % 5."""
    items = {}
    for line in ITEMS.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        items[row["id"]] = html_to_text(row["title"]) + " \n " + html_to_text(row.get("summary") or "")
    counts: dict[str, dict[str, list[int]]] = {
        part: {s: [0, 0, 0, 0] for s in _ORACLE} for part in ("tune", "held-out", "all")}
    for line in LABELS.read_text(encoding="utf-8").splitlines():
        label = json.loads(line)
        part = "held-out" if int(hashlib.sha1(label["id"].encode()).hexdigest(), 16) % 5 == 0 else "tune"
        for storyline, rule in _ORACLE.items():
            predicted, true = rule(items[label["id"]]), storyline in label["storylines"]
            cell = (0 if true else 1) if predicted else (2 if true else 3)
            counts[part][storyline][cell] += 1
            counts["all"][storyline][cell] += 1
    return {part: {s: tuple(c) for s, c in row.items()} for part, row in counts.items()}


def test_eval_over_the_sample_matches_counts_worked_out_from_the_files():
    report = evaluate(Matcher(PLAIN), load_labels(LABELS), load_items(ITEMS))
    assert report.storylines == ("ceasefire-talks", "captive-releases")
    assert report.unlabelled == ("not-labelled",)
    expected = _oracle_counts()
    assert report.sizes == {part: sum(expected[part]["ceasefire-talks"]) for part in expected}
    assert report.sizes == {"tune": 21, "held-out": 7, "all": 28}

    def counts(part, storyline):
        c = report.counts[part][storyline]
        return (c.tp, c.fp, c.fn, c.tn)

    for part, row in expected.items():
        for storyline, cells in row.items():
            assert counts(part, storyline) == cells, (part, storyline)
    # what those are, read by hand from the 28 items
    assert counts("all", "ceasefire-talks") == (7, 6, 1, 14)
    assert counts("all", "captive-releases") == (10, 1, 0, 17)
    c = report.counts["all"]["ceasefire-talks"]
    assert c.precision == pytest.approx(7 / 13)
    assert c.recall == pytest.approx(7 / 8)
    assert c.f1 == pytest.approx(2 * 7 / (2 * 7 + 6 + 1))
    assert c.c_det == pytest.approx(1 / 8 + 4.9 * 6 / 20)
    kinds = sorted((e.storyline_id, e.kind) for e in report.errors)
    for storyline, (_tp, fp, fn, _tn) in expected["all"].items():
        assert kinds.count((storyline, "false positive")) == fp
        assert kinds.count((storyline, "miss")) == fn
    assert len(kinds) == sum(fp + fn for _tp, fp, fn, _tn in expected["all"].values())


def test_render_and_json():
    report = evaluate(Matcher(PLAIN), load_labels(LABELS), load_items(ITEMS))
    table = report.render(errors=False)
    assert "ceasefire-talks" in table and "held-out" in table and "C_det" in table
    assert "FALSE POSITIVE" not in table
    with_errors = report.render(errors=True)
    assert "FALSE POSITIVE ceasefire-talks" in with_errors
    assert "MISS ceasefire-talks" in with_errors
    assert "nothing found for all[0]" in with_errors  # the explanation of the miss
    data = json.loads(json.dumps(report.to_dict()))
    assert data["storylines"]["ceasefire-talks"]["all"]["fp"] == 6
    assert data["sizes"]["held-out"] == 7
    assert len(data["errors"]) == 8


def test_entities_are_decoded_before_matching(tmp_path):
    items = tmp_path / "items.jsonl"
    labels = tmp_path / "labels.jsonl"
    items.write_text(json.dumps({"id": "a", "title": "Cease&amp;#8209;fire <b>talks</b>", "summary": None})
                     + "\n" + json.dumps({"id": "b", "title": "Truce&lt;br&gt;", "summary": "x"}) + "\n")
    labels.write_text('{"id": "a", "storylines": ["t"]}\n{"id": "b", "storylines": []}\n')
    storylines = [StorylineConfig("t", "T", all=(("ceasefire",), ("talks",)))]
    report = run_eval(storylines, labels, items)
    c = report.counts["all"]["t"]
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 0, 0, 1)


def test_default_storylines_run_on_the_sample():
    config = load_config(packaged_default_path())
    report = run_eval(config.storylines, LABELS, ITEMS)
    assert set(report.storylines) == {"ceasefire-talks", "cairo-talks", "captive-releases"}
    assert report.counts["all"]["ceasefire-talks"].tp >= 5


@pytest.mark.parametrize("content, message", [
    ('{"id": "a", "storylines": []}\n{"id": "b", "storylines": [}\n',
     "labels.jsonl:2: expected one JSON object"),
    ('{"id": "a", "storylines": []}\n[1, 2]\n', "labels.jsonl:2: expected a JSON object"),
    ('{"storylines": []}\n', "labels.jsonl:1: expected an \"id\" string"),
    ('{"id": "a"}\n', "labels.jsonl:1: expected \"storylines\""),
    ('{"id": "a", "storylines": "t"}\n', "labels.jsonl:1: expected \"storylines\""),
    ('{"id": "a", "storylines": [], "unsure": "no"}\n', "labels.jsonl:1: expected \"unsure\""),
    ('{"id": "a", "storylines": []}\n\n{"id": "a", "storylines": []}\n', "labels.jsonl:3: duplicate id"),
])
def test_bad_labels_name_file_line_and_expectation(tmp_path, content, message):
    path = tmp_path / "labels.jsonl"
    path.write_text(content)
    with pytest.raises(DataError) as error:
        load_labels(path)
    assert message in str(error.value)


@pytest.mark.parametrize("content, message", [
    ('{"id": "a", "title": "x", "summary": null}\n{"id": 3, "title": "x"}\n',
     "items.jsonl:2: expected an \"id\""),
    ('{"id": "a", "summary": "x"}\n', "items.jsonl:1: expected a \"title\" string"),
    ('{"id": "a", "title": "x", "summary": 5}\n', "items.jsonl:1: expected \"summary\""),
    ('{"id": "a", "title": "x"\n', "items.jsonl:1: expected one JSON object per line"),
])
def test_bad_items_name_file_line_and_expectation(tmp_path, content, message):
    path = tmp_path / "items.jsonl"
    path.write_text(content)
    with pytest.raises(DataError) as error:
        load_items(path)
    assert message in str(error.value)


def test_missing_file_and_missing_item(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        load_labels(tmp_path / "nope.jsonl")
    labels = [{"id": "zz", "storylines": ["t"], "unsure": False}]
    with pytest.raises(DataError, match="not found in the items"):
        evaluate(Matcher(PLAIN), labels, {})


def test_skip_unsure_leaves_unsure_labels_out_of_the_scoring_only_when_asked(tmp_path):
    items = tmp_path / "items.jsonl"
    labels = tmp_path / "labels.jsonl"
    rows = [("a", "UN votes for a truce", [], True),  # matched, labelled no, unsure: a false positive
            ("b", "Truce talks resume", ["t"], False),  # a sure hit
            ("c", "Mediators meet again", ["t"], True),  # labelled yes, unsure, not matched: a miss
            ("d", "Weather in Gaza", [], False)]
    items.write_text("".join(json.dumps({"id": i, "title": t, "summary": ""}) + "\n"
                             for i, t, _s, _u in rows))
    labels.write_text("".join(json.dumps({"id": i, "storylines": s, "unsure": u}) + "\n"
                              for i, _t, s, u in rows))
    storylines = [StorylineConfig("t", "T", all=(("truce",),))]

    scored = run_eval(storylines, labels, items)
    c = scored.counts["all"]["t"]
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 1, 1, 1)
    assert scored.sizes["all"] == 4 and scored.unsure_left_out is None
    assert {e.item_id for e in scored.errors} == {"a", "c"}
    assert "unsure" not in scored.render()

    skipped = run_eval(storylines, labels, items, skip_unsure=True)
    c = skipped.counts["all"]["t"]
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 0, 0, 1)
    assert skipped.sizes["all"] == 2 and skipped.errors == []
    assert skipped.unsure_left_out is not None and skipped.unsure_left_out["all"] == 2
    assert skipped.unsure_left_out["tune"] + skipped.unsure_left_out["held-out"] == 2
    assert "unsure labels left out of the scoring (--skip-unsure): 2 items" in skipped.render()
    assert skipped.to_dict()["unsure_left_out"]["all"] == 2

    from click.testing import CliRunner

    from monitor.cli import cli

    config = tmp_path / "monitor.toml"
    config.write_text(f'[monitor]\ndatabase = "{tmp_path / "m.db"}"\n\n'
                      '[[storylines]]\nid = "t"\nname = "T"\nall = [["truce"]]\n')
    for flags, fp in (([], 1), (["--skip-unsure"], 0)):
        result = CliRunner().invoke(cli, ["--config", str(config), "eval", str(labels), "--items", str(items),
                                          "--json", *flags])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["storylines"]["t"]["all"]["fp"] == fp


def test_a_refined_match_is_counted_and_its_errors_explained(tmp_path):
    """eval decides as run does: a refining storyline matches through the one it refines, and a
    false positive made that way says so."""
    items = tmp_path / "items.jsonl"
    labels = tmp_path / "labels.jsonl"
    rows = [("a", "Truce talks resume", "Egypt hosts them", ["t", "cairo"]),  # through t
            ("b", "Truce talks resume", "Egypt hosts a summit", ["t"]),  # the same way: false alarm
            ("c", "Truce talks resume", "Qatar hosts them", ["t"]),  # no Egypt word
            ("d", "Egypt mediators meet", "", ["cairo"])]  # cairo's own rules
    items.write_text("".join(json.dumps({"id": i, "title": t, "summary": s}) + "\n"
                             for i, t, s, _l in rows))
    labels.write_text("".join(json.dumps({"id": i, "storylines": ls, "unsure": False}) + "\n"
                              for i, _t, _s, ls in rows))
    storylines = [StorylineConfig("t", "T", all=(("truce",), ("talks",))),
                  StorylineConfig("cairo", "C", all=(("Egypt",), ("mediators",)), refines="t")]
    report = run_eval(storylines, labels, items)
    c = report.counts["all"]["cairo"]
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 1, 0, 1)
    [error] = report.errors
    assert (error.item_id, error.storyline_id, error.kind) == ("b", "cairo", "false positive")
    assert "refines t: t matched and all[0] found: a match through t" in error.explanation
