"""Whole-process measurements: wall time (start-up included) and, when asked, the peak memory of
the process tree, sampled from /proc every 10 ms. Memory is the sum of PSS (proportional set
size) over the tree, so that pages a forked worker shares with its parent are counted once; the
peak RSS of the largest single process is kept too.

Timed runs are not sampled: reading ``smaps_rollup`` of every process of the tree every 10 ms
costs the kernel a good part of a core (measured: the monitor's cold cycle took 10.3 s sampled,
8.6 s not, on two cores), which would be charged to a tool that uses both cores. Memory is
measured on runs of its own."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Run:
    wall: float
    peak_pss_mb: float
    peak_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            found += [int(c) for c in text.split()]
    except OSError:
        pass
    return found


def _memory(pid: int) -> tuple[float, float]:
    """(PSS of the tree, largest RSS) in kB."""
    pss_total, rss_max = 0.0, 0.0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            for line in Path(f"/proc/{current}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss_total += float(line.split()[1])
                elif line.startswith("Rss:"):
                    rss_max = max(rss_max, float(line.split()[1]))
        except OSError:
            continue
        stack += _children(current)
    return pss_total, rss_max


def run(cmd: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | None = None,
        timeout: float = 1800, memory: bool = False) -> Run:
    """Run ``cmd`` to its end: wall time, and with ``memory`` the peak memory of its tree."""
    started = time.perf_counter()
    process = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env, cwd=cwd, text=True)
    peak = [0.0, 0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            pss, rss = _memory(process.pid)
            peak[0], peak[1] = max(peak[0], pss), max(peak[1], rss)
            done.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    if memory:
        sampler.start()
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    done.set()
    if memory:
        sampler.join()
    if not memory:
        peak = [float("nan"), float("nan")]
    return Run(wall, peak[0] / 1024, peak[1] / 1024, process.returncode, stdout, stderr)


def stop(process: subprocess.Popen, timeout: float) -> int:
    """SIGTERM, as a service manager stops the daemon; SIGKILL if it has not exited in time."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def median(values: Sequence[float]) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")
