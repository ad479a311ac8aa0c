"""Writers: the terminal table, the Markdown PR comment and JUnit properties. Each only reads the
results model; none reaches into another.

May import: ``results``, ``gate``, ``stats``, ``spans``, ``errors``.

Public names (``docs/api.md``): none: reports are configured with the plugin's options.
"""

from __future__ import annotations

__all__: list[str] = []
