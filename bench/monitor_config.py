# ruff: noqa: E501
"""The monitor's config for the benchmark: the farm's feeds and 20 storylines (the 4 of the
packaged default, read at run time so that tuning them is measured, plus 16 generated ones)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from monitor.config import packaged_storylines_toml

# 16 more storylines about the other news of the same months: (id, all-groups, none).
_GENERATED: list[tuple[str, list[list[str]], list[str]]] = [
    ("ukraine-front", [["Ukraine", "Ukrainian", "Kyiv", "Zelensky"], ["offensive", "attack", "drone", "missile", "frontline"]], []),
    ("russia-sanctions", [["Russia", "Russian", "Kremlin", "Moscow"], ["sanctions", "embargo", "export ban"]], []),
    ("us-speaker", [["House", "Congress", "Republicans"], ["speaker", "shutdown", "funding bill"]], ["White House"]),
    ("lebanon-border", [["Hezbollah", "Lebanon", "Lebanese"], ["border", "rocket", "strike", "clashes"]], []),
    ("red-sea", [["Houthi", "Houthis", "Yemen", "Red Sea"], ["ship", "shipping", "vessel", "attack", "missile"]], []),
    ("west-bank", [["West Bank", "Jenin", "Nablus", "settlers"], ["raid", "killed", "violence", "arrest"]], []),
    ("un-votes", [["United Nations", "Security Council", "General Assembly", "UN"], ["resolution", "vote", "veto"]], []),
    ("aid-convoys", [["aid", "humanitarian", "UNRWA", "convoy"], ["Rafah", "crossing", "trucks", "fuel"]], []),
    ("hospitals", [["hospital", "al-Shifa", "Shifa", "medical"], ["raid", "siege", "patients", "evacuate"]], []),
    ("protests", [["protest", "march", "demonstrators", "rally"], ["London", "Washington", "Paris", "Berlin", "campus"]], []),
    ("antisemitism", [["antisemitism", "antisemitic", "Islamophobia", "hate crime"]], []),
    ("iran-proxies", [["Iran", "Iranian", "Tehran"], ["proxy", "militia", "Syria", "Iraq", "attack"]], []),
    ("us-election", [["Trump", "Biden", "Haley", "DeSantis"], ["campaign", "primary", "poll", "election"]], []),
    ("climate-cop", [["COP28", "climate", "fossil fuels"], ["summit", "Dubai", "agreement", "emissions"]], []),
    ("ai-regulation", [["artificial intelligence", "AI", "OpenAI", "Altman"], ["regulation", "board", "safety", "law"]], []),
    ("earthquakes", [["earthquake", "quake", "tremor"], ["killed", "magnitude", "rescue", "Afghanistan", "Nepal"]], []),
]


def _toml(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)  # JSON strings and arrays are valid TOML


def monitor_toml(urls: Sequence[str], *, database: str, interval: str = "5m",
                 webhook: str | None = None, fetch_workers: int = 8) -> str:
    lines = ["[monitor]", f"database = {_toml(database)}", f"poll_interval = {_toml(interval)}",
             'alert_max_age = "48h"', 'user_agent = "ceasefire-monitor-bench/0.1"',
             f"fetch_workers = {fetch_workers}", ""]
    for index, url in enumerate(urls):
        lines += ["[[feeds]]", f'name = "farm {index:04d}"', f"url = {_toml(url)}", ""]
    lines.append(packaged_storylines_toml())
    for story_id, groups, none in _GENERATED:
        lines += ["", "[[storylines]]", f"id = {_toml(story_id)}", f"name = {_toml(story_id)}",
                  f"all = {_toml(groups)}", f"none = {_toml(none)}", "threshold = 90"]
    if webhook:
        lines += ["", "[[alerts]]", 'type = "webhook"', f"url = {_toml(webhook)}",
                  'secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"']
    return "\n".join(lines) + "\n"


def seconds(duration: str) -> float:
    from monitor.config import parse_duration

    return parse_duration(duration)
