"""Mutation testing of the modules that decide what users see: would the tests notice?

A small AST mutator (``mutmut`` does not fit this layout well: it mutates in place, and the
tests start the CLI as subprocesses and fork workers). A module is ``monitor/<module>.py`` or a
package ``monitor/<module>/``, whose mutants are drawn from every ``.py`` file in it (files in
the order of their paths, so that the same sources give the same numbers; a module of one file
keeps the numbers it had before packages were handled). Each mutant is one change to one file,
of one of these kinds:

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
    python bench/mutation.py --per-module 40 --seed 1   # a sample: 1-2 hours on 2 cores
    python bench/mutation.py --module store --list      # the mutants, without running them
    python bench/mutation.py --module dedup --show 12   # the diff of one mutant
    python bench/mutation.py --module alert --show 300  # in a package: the diff names its file

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

# module -> the test files (and pytest options) that speak for it, fastest first. A module is
# monitor/<module>.py or a package monitor/<module>/ (all its files mutated: module_files).
# In the table: the modules that decide what users see (which items are stored, match, make one
# story, alert, and what an alert says, when and through which channel).
MODULES: dict[str, list[str]] = {
    "normalise": ["tests/test_normalise.py", "tests/test_parse.py"],
    "match": ["tests/test_match.py"],
    "dedup": ["tests/test_dedup.py", "tests/test_minhash.py", "tests/test_store.py"],  # store: keys used
    # a package. test_postgres.py and the PostgreSQL half of test_store.py skip without a server
    # (conftest.py: $MONITOR_TEST_POSTGRES), and then postgres.py's and pg_schema.py's mutants
    # survive; test_migrate.py: copy.py (monitor migrate)
    "store": ["tests/test_postgres.py", "tests/test_migrate.py", "tests/test_store.py"],
    # a package: the channels and render.py (what people read of an alert and of a digest,
    # test_digests.py); without the real-clock digest test (a daemon SIGKILLed, 30-60 s alone)
    "alert": ["tests/test_alert.py", "tests/test_digests.py", "-k", "not real_clock"],
    "fetch": ["tests/test_fetch.py"],
    "stories": ["tests/test_stories.py"],
    "policy": ["tests/test_policy.py", "tests/test_digests.py"],  # the rules alone, then in use
    # the orchestrator; its worker side, model loading, review() and log wording moved out
    "pipeline": ["tests/test_pipeline_pool.py", "tests/test_end_to_end.py", "tests/test_faults.py",
                 "tests/test_learn.py", "-k", "not sigkill and not bounded_and_gives_up and not write_lock"],
    # which entries of a changed body are stored, matched and fingerprinted (an entry of a stored
    # URL is not matched again): the worker side of a poll, pipeline's until it was split
    "prepare": ["tests/test_pipeline_pool.py", "tests/test_end_to_end.py"],
    # which storylines a model decides, and which model: a model file whose rules changed is set
    # aside, the desk's models are trained when its verdicts change. Not test_compiled.py, which
    # decides through config_matcher on both sides of its comparison: a mutant changes both.
    "deciders": ["tests/test_config.py", "tests/test_desk.py", "tests/test_learn.py"],
}
# Not in the table: logtext (the words of the orchestrator's log lines, read by operators; no
# decision), review (the order in which the desk is asked for verdicts, not what is matched or
# alerted), the cli and web packages (they show what the modules above decided; their tests run
# the commands and the desk and are slow), and the modules never in it before the split (learn,
# config, parse...). Any of them can be added: a package works as a module does.

_FLIP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}
_SYMBOL = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
           ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}


@dataclass(frozen=True)
class Mutant:
    module: str
    number: int  # within the module: across a package's files, in the order of their paths
    file: str  # the file changed, from the repository's root: monitor/alert/render.py
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

    @property
    def name(self) -> str:
        """The file within its package (``render.py``); empty for a module of one file."""
        return _file_name(self.module, self.file)

    @property
    def place(self) -> str:
        """``line 12``, or ``render.py line 12`` in a package."""
        return f"{self.name} line {self.line}" if self.name else f"line {self.line}"


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


def module_files(module: str) -> list[Path]:
    """The files of a module: ``monitor/<module>.py``, or every ``.py`` file of the package
    ``monitor/<module>/`` (subpackages too), sorted by path. A package wins over a file of the
    same name, as in an import."""
    package = ROOT / "monitor" / module
    if (package / "__init__.py").is_file():
        return sorted(package.rglob("*.py"), key=lambda path: path.relative_to(package).as_posix())
    single = ROOT / "monitor" / f"{module}.py"
    if single.is_file():
        return [single]
    raise FileNotFoundError(f"{module}: neither monitor/{module}.py nor a package monitor/{module}/ "
                            "(MODULES in bench/mutation.py names a module that is gone)")


def mutants(module: str) -> list[Mutant]:
    """The module's mutants, numbered from 0 across its files (in ``module_files``' order)."""
    found: list[Mutant] = []
    for path in module_files(module):
        found.extend(_file_mutants(module, path, first=len(found)))
    return found


def _file_mutants(module: str, path: Path, first: int) -> list[Mutant]:
    source = path.read_text(encoding="utf-8")
    file = path.relative_to(ROOT).as_posix()
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
        found.append(Mutant(module, first + len(found), file, kind, start[0], description, start, end,
                            replacement))

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
            found = mutants(module)  # first: a module that is gone fails before its tests run
            status, baseline = _run_tests(copy, MODULES[module], timeout=900)
            if status != "survived":
                print(f"{module}: the tests fail without any mutant; skipped", flush=True)
                continue
            timeout = 3 * baseline + 15
            # a sample of its own per module: the same mutants whichever modules are run
            chosen = _sample(found, limit, random.Random(f"{seed}:{module}"))
            print(f"{module}: {len(chosen)} of {len(found)} mutants, tests {baseline:.1f} s",
                  flush=True)
            rows = results.setdefault(module, [])
            for mutant in chosen:
                target = copy / mutant.file
                original = target.read_text(encoding="utf-8")
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
                rows.append({"module": module, "number": mutant.number, "file": mutant.file,
                             "kind": mutant.kind, "line": mutant.line, "change": mutant.description,
                             "status": status, "seconds": round(seconds, 1)})
                if status != "killed":
                    print(f"  {status:8} #{mutant.number} {mutant.place}: {mutant.kind} "
                          f"{mutant.description}", flush=True)
    print()
    table: list[tuple[str, list[int]]] = []
    totals = [0, 0, 0, 0]
    for module, rows in results.items():
        counts = _counts(rows)
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
        table.append((module, counts))
        files = sorted({str(r["file"]) for r in rows})
        if any(_file_name(module, file) for file in files):  # a package: a row per file, indented
            table += [(f"  {_file_name(module, file)}", _counts([r for r in rows if r["file"] == file]))
                      for file in files]
    table.append(("all", totals))
    width = max(10, *(len(name) for name, _ in table))
    print(f"{'module':{width}} {'mutants':>7} {'killed':>7} {'survived':>8} {'timeout':>7} {'noticed':>8}")
    for name, counts in table:
        print(_line(name, counts, width))
    if report:
        report.write_text(json.dumps([r for rows in results.values() for r in rows], indent=1))
    return 0


def _counts(rows: list[dict[str, object]]) -> list[int]:
    return [len(rows)] + [sum(r["status"] == s for r in rows) for s in ("killed", "survived", "timeout")]


def _file_name(module: str, file: str) -> str:
    """A file within its package (``render.py``); empty for the file of a one-file module."""
    return "" if file == f"monitor/{module}.py" else file.removeprefix(f"monitor/{module}/")


def _line(name: str, counts: list[int], width: int = 10) -> str:
    total, killed, survived, timeout = counts
    noticed = f"{100 * (killed + timeout) / total:.0f} %" if total else "-"
    return f"{name:{width}} {total:7} {killed:7} {survived:8} {timeout:7} {noticed:>8}"


def _show(module: str, number: int) -> Iterator[str]:
    found = mutants(module)
    if not 0 <= number < len(found):
        raise SystemExit(f"{module}: no mutant #{number} (its mutants are #0 to #{len(found) - 1})")
    mutant = found[number]
    source = (ROOT / mutant.file).read_text(encoding="utf-8")
    return difflib.unified_diff(source.splitlines(keepends=True),
                                mutant.apply(source).splitlines(keepends=True),
                                f"a/{mutant.file}", f"b/{mutant.file}", n=1)


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
    if args.show is not None or args.list:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `--list | head`: end quietly, as head does
    if args.show is not None:
        sys.stdout.writelines(_show(modules[0], args.show))
        return 0
    if args.list:
        for module in modules:
            found = mutants(module)
            width = max(len(m.name) for m in found) if found else 0  # 0: a module of one file
            for m in found:
                where = f"{m.name:{width}} " if width else ""
                print(f"{module:10} #{m.number:<4} {where}line {m.line:<5} {m.kind:9} {m.description}")
        return 0
    return run(modules, limit=args.per_module, seed=args.seed, report=args.json)


if __name__ == "__main__":
    sys.exit(main())
