"""One pytest run as plain data: settings parsed at configure time, the run's state, the end of the
run (judge, compare, write, exit code). The plugin's hooks call into it and hold no logic.

May import everything below: ``report``, ``results``, ``gate``, ``agents``, ``call``, ``stats``,
``spans``, ``audio``, ``clock``, ``errors``.

Public names (``docs/api.md``): none: the plugin's own.
"""

from __future__ import annotations

__all__: list[str] = []
