"""What ships with the monitor: the packaged default config and its model files.

In: nothing but the installed package. Out: ``packaged_default_path`` (the default
``monitor.toml``), ``packaged_models_path`` (the folder where ``model = "builtin:NAME"`` finds
``NAME.json``) and ``packaged_storylines_toml`` (the default's ``[[storylines]]``, to embed in
another config). The files are package data of ``monitor`` (``monitor/default_config/``), found
through ``importlib.resources`` from the ``monitor`` package, not from this module's folder.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

BUILTIN = "builtin:"  # model = "builtin:NAME": a model file packaged with the monitor


def packaged_default_path() -> Path:
    return Path(str(resources.files("monitor") / "default_config" / "monitor.toml"))


def packaged_models_path() -> Path:
    """The folder of the packaged model files: ``model = "builtin:NAME"`` is ``NAME.json`` there."""
    return Path(str(resources.files("monitor") / "default_config" / "models"))


def packaged_storylines_toml() -> str:
    """The [[storylines]] tables of the packaged default config, to embed in another config (the
    tests', the benchmark's): verbatim but for their ``model`` paths, made absolute, as a model
    file is found relative to the config that names it."""
    import json

    path = packaged_default_path()
    folder = path.resolve().parent
    text = path.read_text(encoding="utf-8")
    tables = text[text.index("[[storylines]]"):]
    end = tables.find("\n[[alerts]]")
    tables = tables if end < 0 else tables[:end]
    return re.sub(r'^model = "([^"]+)"$', lambda m: m.group(0) if m.group(1).startswith(BUILTIN)
                  else f"model = {json.dumps(str(folder / m.group(1)))}", tables, flags=re.M)
