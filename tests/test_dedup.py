"""Near-duplicate fingerprints on real headlines: copies of one story from different outlets
are one story; different events with similar words are not (a wrong merge would swallow an
alert, so the bar errs towards keeping stories apart)."""

from __future__ import annotations

import pytest

from monitor.dedup import fingerprint


def same_story(a: tuple[str, str], b: tuple[str, str]) -> bool:
    """The store's rule: an equal headline key, or text similar enough."""
    fa, fb = fingerprint(*a), fingerprint(*b)
    if fa.title_key is not None and fa.title_key == fb.title_key:
        return True
    return fa.duplicates(fb.shingles) is not None


# Real pairs from ../shared/data/news/items.jsonl (different outlets, same story).
SAME = [
    (("The secret negotiations that led to the Gaza hostages deal",
      "Qatar's emir and the CIA director spent weeks on the phone."),
     ("The secret negotiations that led to the Gaza hostages deal",
      "How a small cell of officials brokered the release of 50 captives.")),
    (("Israel-Hamas latest news: Hamas fighters to free more hostages as families reunite",
      "Hamas fighters are to free more hostages as families reunite with relatives freed on Friday."),
     ("Hamas fighters to free more hostages as families reunite",
      "Hamas fighters are to free more hostages as families reunite with relatives freed on Friday.")),
    (("Israel intensifies its Assault on Southern Gaza, Causing Renewed Concern", ""),
     ("Israel intensifies its assault on southern Gaza, causing renewed concern - Arab News", "")),
    (("Hamas accepts Gaza cease-fire proposal from Egypt and Qatar mediators", ""),
     ("Hamas Accepts Gaza Ceasefire Proposal From Egypt And Qatar Mediators", "")),
]

DIFFERENT = [
    (("Hamas releases two American hostages", "The first captives freed since October 7."),
     ("Hamas releases two more hostages", "Two elderly Israeli women were freed.")),
    (("Israel strikes Gaza after truce expires", ""),
     ("Truce between Israel and Hamas ends", "")),
    (("What are the details of the truce between Israel and Hamas?", ""),
     ("The truce between Israel and Hamas held for another day.", "")),
    (("Hamas delegation arrives in Cairo for truce talks", ""),
     ("Israeli delegation arrives in Cairo for truce talks", "")),
]


@pytest.mark.parametrize("a, b", SAME)
def test_same_story(a, b):
    assert same_story(a, b)


@pytest.mark.parametrize("a, b", DIFFERENT)
def test_different_stories(a, b):
    assert not same_story(a, b)


def test_fingerprints_are_stable_across_processes():
    import subprocess
    import sys

    code = ("from monitor.dedup import fingerprint;"
            "print(fingerprint('Hamas delegation arrives in Cairo', 'for truce talks').band_keys)")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout for _ in range(2)}
    assert len(runs) == 1 and runs.pop().strip() == str(
        fingerprint("Hamas delegation arrives in Cairo", "for truce talks").band_keys)


def test_keys_fit_sqlite_integers():
    keys = fingerprint("A long headline about a Gaza truce deal", "and a summary of it").band_keys
    assert all(0 <= key < 2**63 for key in keys)
