"""ceasefire-monitor: watch news feeds for storylines of the Gaza ceasefire talks and alert.

The pipeline, one module per stage: fetch → parse → normalise → match → dedup → store → alert,
run by ``pipeline`` (the orchestrator); ``daemon`` and ``cli`` are thin shells over it.
"""

__version__ = "0.1.0"
