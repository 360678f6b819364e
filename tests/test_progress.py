"""Long commands show progress on a terminal, and only there: `eval --learned` run in a real
pseudo-terminal, then with its output piped, then with --json."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

from monitor.config import packaged_default_path

SAMPLE = Path(__file__).resolve().parent.parent / "labels" / "sample"
COMMAND = [sys.executable, "-m", "monitor", "--config", str(packaged_default_path()), "eval",
           str(SAMPLE / "labels.jsonl"), "--items", str(SAMPLE / "items.jsonl"), "--learned"]
LABEL = "training and testing the learned layer"


def run_in_terminal(args: list[str]) -> str:
    master, slave = pty.openpty()
    process = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=60)
    os.close(master)
    assert process.returncode == 0
    return b"".join(chunks).decode("utf-8", "replace")


def test_eval_learned_shows_progress_on_a_terminal_only():
    shown = run_in_terminal(COMMAND)
    assert LABEL in shown and "100%" in shown and "learned held-out" in shown
    piped = subprocess.run(COMMAND, capture_output=True, text=True, check=True)
    assert LABEL not in piped.stdout + piped.stderr and "learned held-out" in piped.stdout
    as_json = run_in_terminal([*COMMAND, "--json"])
    assert LABEL not in as_json and '"learned"' in as_json
