"""The shipped storylines as TOML text, for test configs written elsewhere: their `model` paths
made absolute (a model file is found relative to the config file that names it)."""

from __future__ import annotations

import re

from monitor.config import packaged_default_path


def default_storylines(learned: tuple[str, ...] = (), *, models: bool = True) -> str:
    """The [[storylines]] part of the default config; ``learned`` storylines get
    ``learned = true``; ``models=False`` drops the model files (the rules alone decide)."""
    path = packaged_default_path()
    text = path.read_text()
    text = text[text.index("[[storylines]]"):]
    folder = path.resolve().parent
    if models:
        text = re.sub(r'^model = "([^"]+)"$', lambda m: f'model = "{folder / m.group(1)}"', text,
                      flags=re.M)
    else:
        text = re.sub(r'^model = "[^"]+"\n', "", text, flags=re.M)
    for storyline in learned:
        text = text.replace(f'id = "{storyline}"\n', f'id = "{storyline}"\nlearned = true\n')
    return text
