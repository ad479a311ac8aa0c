"""The run's results as one model, and its file: build, validate, save, load and merge the
versioned JSON document (baselines, ``--voice-latency-json``, CI shards); atomic writes.

May import: ``gate``, ``stats``, ``spans``, ``errors``.

Public names (``docs/api.md``): none: the file format is documented in ``docs/ci.md``; the code is
the plugin's own.
"""

from __future__ import annotations

__all__: list[str] = []
