"""The peers and the floors, set up to poll the farm: rss2email, newsboat, a bare httpx loop and
a bare feedparser parse. Each ``*_cmd`` returns the command line of one whole-process cycle;
the state (caches, seen entries) lives in ``work`` so that a second run is a warm cycle.

rss2email is installed from PyPI into the benchmark's own venv (``<out>/peers-venv``), never
into the monitor's environment; newsboat and nginx come from Debian (apt-get).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent


def ensure_debian(packages: dict[str, str]) -> None:
    """apt-get install the packages whose binary is missing: {binary: package}."""
    missing = [pkg for binary, pkg in packages.items()
               if not shutil.which(binary) and not Path("/usr/sbin", binary).exists()]
    if not missing:
        return
    print(f"installing from Debian: {' '.join(missing)}", file=sys.stderr)
    quiet = {"stdout": subprocess.DEVNULL}
    if subprocess.run(["apt-get", "install", "-y", "-q", *missing], **quiet).returncode:
        subprocess.run(["apt-get", "update", "-q"], check=True, **quiet)
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True, **quiet)


def ensure_peers_venv(out: Path) -> Path:
    """The benchmark's own venv with rss2email; returns its bin folder."""
    venv = out / "peers-venv"
    r2e = venv / "bin" / "r2e"
    if not r2e.exists():
        print("installing rss2email into the benchmark's own venv", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "rss2email"], check=True)
    return venv / "bin"


def versions(peer_bin: Path) -> dict[str, str]:
    def first_line(cmd: Sequence[str]) -> str:
        try:
            text = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            return (text.stdout or text.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    return {
        "rss2email": first_line([str(peer_bin / "r2e"), "--version"]),
        "newsboat": first_line(["newsboat", "--version"]),
        "nginx": first_line(["nginx", "-v"]),
    }


# --------------------------------------------------------------------------- rss2email

def rss2email_setup(work: Path, urls: Sequence[str], peer_bin: Path) -> None:
    """A fresh rss2email config and data file holding every farm feed."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    cfg, data = work / "r2e.cfg", work / "r2e.json"
    subprocess.run([str(peer_bin / "r2e"), "-c", str(cfg), "-d", str(data), "new",
                    "bench@example.org"], check=True, capture_output=True)
    sections = [f"\n[feed.f{i:04d}]\nurl = {url}\n" for i, url in enumerate(urls)]
    with cfg.open("a", encoding="utf-8") as handle:
        handle.write("".join(sections))
    data.write_text(json.dumps({"version": 2, "feeds": [
        {"name": f"f{i:04d}", "etag": None, "modified": None, "seen": {}}
        for i in range(len(urls))]}))


def rss2email_cmd(work: Path, peer_bin: Path) -> list[str]:
    return [str(peer_bin / "r2e"), "-c", str(work / "r2e.cfg"), "-d", str(work / "r2e.json"),
            "run", "--no-send"]


# --------------------------------------------------------------------------- newsboat

def newsboat_setup(work: Path, urls: Sequence[str], threads: int) -> None:
    if work.exists():
        shutil.rmtree(work)
    (work / "home").mkdir(parents=True)
    (work / "urls").write_text("\n".join(urls) + "\n")
    (work / "config").write_text(f"reload-threads {threads}\nshow-read-feeds yes\n")


def newsboat_cmd(work: Path) -> list[str]:
    return ["newsboat", "-x", "reload", "-u", str(work / "urls"), "-c", str(work / "cache.db"),
            "-C", str(work / "config")]


def newsboat_env(work: Path) -> dict[str, str]:
    return {"HOME": str(work / "home"), "LANG": "C.UTF-8", "TERM": "dumb"}


# --------------------------------------------------------------------------- floors

def floor_cmd(kind: str, work: Path, urls_file: Path) -> list[str]:
    """``kind``: "httpx" (sequential conditional GETs) or "feedparser" (the same, plus a
    feedparser parse of every body, on one core)."""
    return [sys.executable, str(HERE / "floors.py"), kind, str(urls_file), str(work / "state.json")]
