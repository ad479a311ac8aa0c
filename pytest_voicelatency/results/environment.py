"""Where a run's numbers were measured: the environment fingerprint stored in results files.

Latency depends on the machine as much as on the code, so every results file says where it was
measured; a comparison or a merge across different machines warns (see
:func:`pytest_voicelatency.gate.compare.environment_differences`).

>>> sorted(fingerprint())  # doctest: +NORMALIZE_WHITESPACE
['cpu_count', 'git_commit', 'implementation', 'machine', 'platform', 'plugin_version',
 'python', 'system']
"""

from __future__ import annotations

import os
import platform
import subprocess
from typing import Any

from pytest_voicelatency._version import __version__

__all__ = ["fingerprint", "git_commit"]


def fingerprint(root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Python, platform, CPU count, plugin version and the git commit checked out at ``root``."""
    return {"python": platform.python_version(), "implementation": platform.python_implementation(),
            "system": platform.system(), "machine": platform.machine(),
            "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "plugin_version": __version__, "git_commit": git_commit(root)}


def git_commit(root: str | os.PathLike[str] | None = None, timeout: float = 3.0) -> str | None:
    """The checked-out commit, or None (no git, not a repository, too slow): never fatal."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None
