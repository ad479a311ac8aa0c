"""Write output files atomically, with an error that names the path and the fix.

A results file that CI reads must never be half written (a crash, a full disk or a second job
writing the same path). So text goes to a temporary file in the destination's own directory and
replaces the destination with :func:`os.replace`, which is atomic on POSIX and Windows when both
are on one file system.

>>> import pathlib, tempfile
>>> target = pathlib.Path(tempfile.mkdtemp()) / "out" / "run.json"
>>> write_atomic(target, "{}") == target
True
>>> target.read_text()
'{}'
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pytest_voicelatency.errors import VoiceLatencyError

__all__ = ["write_atomic", "append_text", "same_file"]


def _unwritable(path: Path, exc: OSError) -> VoiceLatencyError:
    reason = exc.strerror or type(exc).__name__
    return VoiceLatencyError(
        f"cannot write {str(path)!r}: {reason}; choose a path in a writable directory "
        f"(the directory is created if it does not exist)")


def _mode(target: Path) -> int:
    """Keep an existing file's permissions; a new file gets the usual 0o666 minus the umask
    (a temporary file is created 0o600, too strict for a baseline others read)."""
    try:
        return target.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, creating missing parent directories.

    A symlink is followed (its target is replaced, the link stays); a path that exists but is
    not a regular file (a FIFO, a device, a directory) is refused rather than replaced.
    """
    target = Path(path)
    try:
        if target.is_symlink():
            target = target.resolve(strict=False)
        is_other = target.exists() and not target.is_file()
    except (OSError, RuntimeError) as exc:  # a symlink loop, a path too long, no permission
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise VoiceLatencyError(f"cannot write {str(path)!r}: {reason}; choose a plain file "
                                "path") from None
    if is_other:
        raise VoiceLatencyError(
            f"cannot write {str(path)!r}: it exists and is not a regular file (a directory, "
            f"FIFO or device); choose a file path")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise _unwritable(target, exc) from exc
    try:
        os.chmod(temp, _mode(target))
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except OSError as exc:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise _unwritable(target, exc) from exc
    return target


def append_text(path: str | os.PathLike[str], text: str) -> Path:
    """Append ``text`` to ``path`` (how ``$GITHUB_STEP_SUMMARY`` expects to be written)."""
    target = Path(path)
    try:
        with open(target, "a", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
    except OSError as exc:
        raise _unwritable(target, exc) from exc
    return target


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one file: ``os.path.samefile`` when both exist (hard links,
    symlinks), else the same absolute path once symlinks are resolved (``./a.json``, ``a.json``).
    Never raises: a path that cannot be inspected is compared by its resolved spelling."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except (OSError, ValueError):
        pass
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except (OSError, ValueError, RuntimeError):
        return os.path.abspath(a) == os.path.abspath(b)
