"""The package's public surface is pinned: changing it is a decision, not an accident."""

import subprocess
import sys

import monitor


def test_all_is_pinned():
    assert monitor.__all__ == [
        "ChannelConfig", "ConfigError", "DeliveryError", "DispatchReport", "FeedConfig", "FeedError",
        "FeedReport", "FetchError", "Fetcher", "Matcher", "Monitor", "MonitorConfig", "MonitorError",
        "ParseError", "Store", "StoreError", "StorylineConfig", "find_config", "fingerprint",
        "load_config", "make_channel", "normalise_entry", "parse_feed",
    ]


def test_every_export_resolves():
    for name in monitor.__all__:
        assert getattr(monitor, name) is not None


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
