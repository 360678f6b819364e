"""The package's public surface is pinned: changing it is a decision, not an accident."""

import importlib
import json
import subprocess
import sys

import pytest

import monitor


def test_all_is_pinned():
    assert monitor.__all__ == [
        "ChannelConfig", "ConfigError", "DeliveryError", "DispatchReport", "FeedConfig", "FeedError",
        "FeedReport", "FetchError", "Fetcher", "Matcher", "Monitor", "MonitorConfig", "MonitorError",
        "ParseError", "Store", "StoreError", "StorylineConfig", "find_config", "fingerprint",
        "load_config", "make_channel", "normalise_entry", "parse_feed",
    ]


def test_every_export_resolves():
    """Each name is imported lazily on first use: in a fresh interpreter, ``from monitor import
    *`` binds every name of ``__all__``, each the very class or function of the module that
    defines it; a name not exported is an AttributeError, not a None."""
    code = ("import inspect, json, monitor\n"
            "names = {}\n"
            "exec('from monitor import *', names)\n"
            "print(json.dumps({n: [v.__module__, v.__qualname__, inspect.isclass(v) or "
            "inspect.isfunction(v)] for n, v in names.items() "
            "if n != '__builtins__'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    found = json.loads(out.stdout)
    assert sorted(found) == monitor.__all__
    for name, (module, qualname, is_class_or_function) in found.items():
        assert module.startswith("monitor.") and qualname == name, (name, module, qualname)
        assert is_class_or_function, name
        assert getattr(importlib.import_module(module), name) is getattr(monitor, name)
    from monitor import errors

    for name in ("ConfigError", "StoreError", "FeedError", "FetchError", "ParseError", "DeliveryError"):
        assert issubclass(getattr(monitor, name), errors.MonitorError), name
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        monitor.Nothing  # noqa: B018


def test_error_codes_are_unique_and_stable():
    from monitor import errors

    classes = [c for c in vars(errors).values()
               if isinstance(c, type) and issubclass(c, errors.MonitorError)]
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes))
    assert errors.FeedTimeout.code == "fetch.timeout" and errors.ParseError.code == "parse.error"


def test_help_does_not_import_the_pipeline():
    code = ("import sys; from monitor.cli import cli\n"
            "try:\n    cli(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('feedparser', 'apprise', 'rapidfuzz', 'apscheduler') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
