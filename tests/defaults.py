"""The shipped storylines as TOML text, for test configs written elsewhere."""

from __future__ import annotations

import re

from monitor.config import packaged_storylines_toml


def default_storylines(learned: tuple[str, ...] = (), *, models: bool = True) -> str:
    """The [[storylines]] part of the default config (model paths absolute); ``learned``
    storylines get ``learned = true``; ``models=False`` drops the model files (the rules alone
    decide)."""
    text = packaged_storylines_toml()
    if not models:
        text = re.sub(r'^model = "[^"]+"\n', "", text, flags=re.M)
    for storyline in learned:
        text = text.replace(f'id = "{storyline}"\n', f'id = "{storyline}"\nlearned = true\n')
    return text
