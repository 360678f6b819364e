"""The build: the matcher's hot modules compiled to C extensions with mypyc, where it can be.

The compiled modules do what their Python source does (the test suite runs on whichever is
installed, and gives the same results); they run faster: a cold poll cycle of the benchmark's
reference farm costs ~12 % less CPU (bench/README.md). Without a C compiler and the Python
headers, or with ``CEASEFIRE_MONITOR_PURE=1``, the same modules install as plain Python: a
failed build of any of them leaves all of them plain. Editable installs (``pip install -e``)
stay plain Python: a compiled module in the source tree would shadow the source being edited.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED = ["monitor/match.py", "monitor/learn.py", "monitor/normalise.py"]


def warn(message: str) -> None:
    print(f"warning: {message}; the monitor is installed as plain Python", file=sys.stderr)


class AllOrNothing(build_ext):
    """Builds every compiled module or none: a module's extension needs the shared one mypyc
    makes for the group, so a partial build would not import."""

    def build_extensions(self) -> None:
        try:
            super().build_extensions()
        except Exception as error:  # no compiler, no Python headers, a compiler error
            for extension in self.extensions:
                Path(self.get_ext_fullpath(extension.name)).unlink(missing_ok=True)
            warn(f"cannot compile {', '.join(COMPILED)} ({error})")


def compiled_modules() -> list:
    if os.environ.get("CEASEFIRE_MONITOR_PURE") or any("editable" in arg for arg in sys.argv):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        warn("mypyc is not in the build environment")
        return []
    try:
        # the build environment has mypyc only: the dependencies' types are not needed (Any)
        modules = mypycify(["--ignore-missing-imports", *COMPILED], opt_level="3")
    except (Exception, SystemExit) as error:  # mypyc refused (a type error)
        warn(f"mypyc cannot compile {', '.join(COMPILED)} ({error})")
        return []
    for module in modules:  # a new compiler's new warning must not fail the build
        module.extra_compile_args = [a for a in module.extra_compile_args if a != "-Werror"]
    return modules


setup(ext_modules=compiled_modules(), cmdclass={"build_ext": AllOrNothing})
