"""The command line: a thin shell over the library. Each command loads the config, opens
the store and calls one library function; printing is all it adds.

Exit codes: 0 ok, 1 a command-level failure (e.g. nothing to retry), 2 bad config,
bad database or bad input files, 3 ``run --once`` ran but left something undone (a feed failed,
alerts left undelivered).

One module per job: ``common`` (the group, what every command shares), ``running`` (run, web,
health), ``feeds`` (feeds, instances), ``storylines`` (storylines, draft), ``matches`` (matches,
stories, check), ``learning`` (eval, review, feedback, learn, train), ``alerts`` (the outbox)
and ``admin`` (migrate, config check). Importing them registers their commands on ``cli``; each
imports its heavy libraries inside its commands, as start-up time matters for every command.
"""

# Imported for their commands, which they register on ``cli``.
from . import admin, alerts, feeds, learning, matches, running, storylines  # noqa: F401
from .common import cli, setup_logging

__all__ = ["cli", "main", "setup_logging"]


def main() -> None:
    cli(prog_name="monitor")
