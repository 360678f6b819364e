"""Mutation testing of the modules that decide what users see: would the tests notice?

A small AST mutator (``mutmut`` does not fit this layout well: it mutates in place, and the
tests start the CLI as subprocesses and fork workers). Each mutant is one change to one
module, of one of these kinds:

* ``compare``: a comparison operator flipped (``<`` / ``<=``, ``>`` / ``>=``, ``==`` / ``!=``,
  ``in`` / ``not in``, ``is`` / ``is not``);
* ``constant``: a number one more (``5`` -> ``6``, ``0.5`` -> ``1.5``, ``0`` -> ``1``);
* ``boolean``: one operand of ``and`` / ``or`` dropped, or a ``not`` removed;
* ``statement``: a statement (an assignment, a call, ``+=``, ``continue``...) replaced by
  ``pass``: the reset that is forgotten, the guard that is lost.

Docstrings, ``log.debug`` calls, annotations and ``__all__`` are left alone. Each mutant is
written into a copy of the repository (``monitor/``, ``tests/`` and the files the tests read),
never into the working tree, and that module's tests run against it (``pytest -x -q``, with a
timeout of a few times the unmutated run). A mutant is *killed* when the tests fail, *survived*
when they pass, *timeout* when they hang (counted as noticed: a hang is a failure users see).

    python bench/mutation.py                      # every mutant of every module (hours)
    python bench/mutation.py --per-module 40 --seed 1   # a sample: ~30-40 minutes on 2 cores
    python bench/mutation.py --module store --list      # the mutants, without running them
    python bench/mutation.py --module dedup --show 12   # the diff of one mutant

Not in CI: too slow. The figures and the survivors judged equivalent are in the README
(development section).
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# module -> the test files (and pytest options) that speak for it, fastest first.
MODULES: dict[str, list[str]] = {
    "normalise": ["tests/test_normalise.py", "tests/test_parse.py"],
    "match": ["tests/test_match.py"],
    "dedup": ["tests/test_dedup.py", "tests/test_minhash.py", "tests/test_store.py"],  # store: keys used
    "store": ["tests/test_store.py"],
    "alert": ["tests/test_alert.py"],
    "fetch": ["tests/test_fetch.py"],
    "stories": ["tests/test_stories.py"],
    "policy": ["tests/test_digests.py"],
    "pipeline": ["tests/test_pipeline_pool.py", "tests/test_end_to_end.py", "tests/test_faults.py",
                 "tests/test_learn.py", "-k", "not sigkill and not bounded_and_gives_up and not write_lock"],
}

_FLIP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}
_SYMBOL = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
           ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}


@dataclass(frozen=True)
class Mutant:
    module: str
    number: int
    kind: str
    line: int
    description: str
    start: tuple[int, int]  # (line, column) of the replaced source, 1-based line
    end: tuple[int, int]
    replacement: str

    def apply(self, source: str) -> str:
        lines = source.splitlines(keepends=True)
        offsets = [0]
        for line in lines:
            offsets.append(offsets[-1] + len(line.encode("utf-8")))
        data = source.encode("utf-8")
        begin = offsets[self.start[0] - 1] + self.start[1]
        finish = offsets[self.end[0] - 1] + self.end[1]
        return (data[:begin] + self.replacement.encode("utf-8") + data[finish:]).decode("utf-8")


def _skipped_nodes(tree: ast.Module) -> set[int]:
    """ids of nodes never mutated: docstrings, annotations, ``__all__``, ``log.debug(...)``."""
    skipped: set[int] = set()

    def skip(node: ast.AST | None) -> None:
        if node is not None:
            skipped.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(
                body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            skip(body[0])
        if isinstance(node, ast.AnnAssign):
            skip(node.annotation)
        if isinstance(node, ast.arg):
            skip(node.annotation)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            skip(node.returns)
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            skip(node)
        call = node.value if isinstance(node, ast.Expr) else node
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and isinstance(
                call.func.value, ast.Name) and call.func.value.id == "log" and call.func.attr == "debug":
            skip(node)  # the statement too: removing a debug line changes nothing users see
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            skip(node)
    return skipped


def _position(node: ast.AST) -> tuple[tuple[int, int], tuple[int, int]]:
    return (node.lineno, node.col_offset), (node.end_lineno or node.lineno,  # type: ignore[attr-defined]
                                            node.end_col_offset or 0)  # type: ignore[attr-defined]


def mutants(module: str) -> list[Mutant]:
    source = (ROOT / "monitor" / f"{module}.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    skipped = _skipped_nodes(tree)
    # Statements at module or class level build constants and tables: removing one breaks the
    # import, which any test notices; only statements inside functions are removed.
    in_functions = {id(child) for node in ast.walk(tree)
                    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                    for child in ast.walk(node)}
    found: list[Mutant] = []

    def add(kind: str, node: ast.AST, description: str, replacement: str) -> None:
        start, end = _position(node)
        found.append(Mutant(module, len(found), kind, start[0], description, start, end, replacement))

    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                flipped = _FLIP[type(op)]
                changed = ast.Compare(node.left, [*node.ops[:i], flipped(), *node.ops[i + 1:]],
                                      node.comparators)
                add("compare", node, f"{_SYMBOL[type(op)]} -> {_SYMBOL[flipped]}",
                    f"({ast.unparse(changed)})")
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
            add("constant", node, f"{node.value!r} -> {node.value + 1!r}", repr(node.value + 1))
        elif isinstance(node, ast.BoolOp) and len(node.values) > 1:
            word = "and" if isinstance(node.op, ast.And) else "or"
            for i, value in enumerate(node.values):
                rest = node.values[:i] + node.values[i + 1:]
                kept = rest[0] if len(rest) == 1 else ast.BoolOp(node.op, rest)
                add("boolean", node, f"drop `{word} {ast.unparse(value)[:40]}`",
                    f"({ast.unparse(kept)})")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            add("boolean", node, f"drop `not` of {ast.unparse(node.operand)[:40]}",
                f"({ast.unparse(node.operand)})")
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Expr, ast.Continue, ast.Break,
                               ast.Delete)) and id(node) in in_functions:
            text = ast.unparse(node).splitlines()[0]
            add("statement", node, f"remove `{text[:60]}`", "pass")
    return found


# --------------------------------------------------------------------------- running

def _copy_repository(into: Path) -> Path:
    copy = into / "repo"
    ignore = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.so", ".pytest_cache",
                                    ".mypy_cache", ".ruff_cache", "build", "*.egg-info")
    shutil.copytree(ROOT, copy, ignore=ignore)
    return copy


def _run_tests(copy: Path, arguments: list[str], timeout: float) -> tuple[str, float]:
    env = {**os.environ, "PYTHONPATH": str(copy), "CEASEFIRE_MONITOR_PURE": "1",
           "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
               "-o", "addopts=", *arguments]
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=copy, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the tests and the daemons they started
        process.wait()
        return "timeout", time.monotonic() - started
    except BaseException:  # Ctrl-C or SIGTERM: leave no tests running behind us
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    return ("survived" if code == 0 else "killed"), time.monotonic() - started


def _sample(found: list[Mutant], limit: int | None, rng: random.Random) -> list[Mutant]:
    if limit is None or len(found) <= limit:
        return found
    return sorted(rng.sample(found, limit), key=lambda m: m.number)


def run(modules: list[str], *, limit: int | None, seed: int, report: Path | None) -> int:
    results: dict[str, list[dict[str, object]]] = {}
    with tempfile.TemporaryDirectory(prefix="mutation-") as scratch:
        copy = _copy_repository(Path(scratch))
        for module in modules:
            target = copy / "monitor" / f"{module}.py"
            original = target.read_text(encoding="utf-8")
            status, baseline = _run_tests(copy, MODULES[module], timeout=900)
            if status != "survived":
                print(f"{module}: the tests fail without any mutant; skipped", flush=True)
                continue
            timeout = 3 * baseline + 15
            found = mutants(module)
            # a sample of its own per module: the same mutants whichever modules are run
            chosen = _sample(found, limit, random.Random(f"{seed}:{module}"))
            print(f"{module}: {len(chosen)} of {len(found)} mutants, tests {baseline:.1f} s",
                  flush=True)
            rows = results.setdefault(module, [])
            for mutant in chosen:
                mutated = mutant.apply(original)
                try:
                    compile(mutated, str(target), "exec")
                except SyntaxError:
                    continue  # never: every replacement is a whole expression or statement
                target.write_text(mutated, encoding="utf-8")
                try:
                    status, seconds = _run_tests(copy, MODULES[module], timeout)
                finally:
                    target.write_text(original, encoding="utf-8")
                rows.append({"module": module, "number": mutant.number, "kind": mutant.kind,
                             "line": mutant.line, "change": mutant.description, "status": status,
                             "seconds": round(seconds, 1)})
                if status != "killed":
                    print(f"  {status:8} #{mutant.number} line {mutant.line}: {mutant.kind} "
                          f"{mutant.description}", flush=True)
    print()
    print(f"{'module':10} {'mutants':>7} {'killed':>7} {'survived':>8} {'timeout':>7} {'noticed':>8}")
    totals = [0, 0, 0, 0]
    for module, rows in results.items():
        counts = [len(rows)] + [sum(r["status"] == s for r in rows)
                                for s in ("killed", "survived", "timeout")]
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
        print(_line(module, counts))
    print(_line("all", totals))
    if report:
        report.write_text(json.dumps([r for rows in results.values() for r in rows], indent=1))
    return 0


def _line(name: str, counts: list[int]) -> str:
    total, killed, survived, timeout = counts
    noticed = f"{100 * (killed + timeout) / total:.0f} %" if total else "-"
    return f"{name:10} {total:7} {killed:7} {survived:8} {timeout:7} {noticed:>8}"


def _show(module: str, number: int) -> Iterator[str]:
    mutant = mutants(module)[number]
    path = ROOT / "monitor" / f"{module}.py"
    source = path.read_text(encoding="utf-8")
    return difflib.unified_diff(source.splitlines(keepends=True),
                                mutant.apply(source).splitlines(keepends=True),
                                f"a/monitor/{module}.py", f"b/monitor/{module}.py", n=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--module", action="append", choices=sorted(MODULES),
                        help="only this module (repeatable); default: all of them")
    parser.add_argument("--per-module", type=int, default=None, metavar="N",
                        help="a random sample of N mutants per module (default: all)")
    parser.add_argument("--seed", type=int, default=1, help="of the sample (default 1)")
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument("--show", type=int, metavar="NUMBER", help="print one mutant's diff")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every result there")
    args = parser.parse_args(argv)
    # SIGTERM ends the run as Ctrl-C does: the running tests are killed, the copy removed
    signal.signal(signal.SIGTERM, lambda _signal, _frame: sys.exit(143))
    modules = args.module or list(MODULES)
    if args.show is not None:
        sys.stdout.writelines(_show(modules[0], args.show))
        return 0
    if args.list:
        for module in modules:
            for m in mutants(module):
                print(f"{module:10} #{m.number:<4} line {m.line:<5} {m.kind:9} {m.description}")
        return 0
    return run(modules, limit=args.per_module, seed=args.seed, report=args.json)


if __name__ == "__main__":
    sys.exit(main())
