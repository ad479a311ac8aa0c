"""Start-up of ``pytest --voice-latency`` at this checkout vs an earlier revision, in one run.

The layered package must not cost more at start-up than the flat one did. Absolute start-up
times on these shared VMs drift by tens of milliseconds between runs, so both versions are
measured here side by side: the earlier revision is checked out into a temporary git worktree
and installed into its own virtualenv (same Python, same dependency versions as this one), then
the two ``pytest`` commands run interleaved on the same empty suite.

Run:  python benchmarks/startup_compare.py [--against 70b5424] [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _venv(folder: Path, project: Path) -> Path:
    """A virtualenv in ``folder`` that sees this interpreter's packages, with ``project`` on top."""
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(folder)],
                   check=True)
    python = folder / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "-e",
                    str(project)], check=True)
    return python


def _time(python: Path, suite: Path, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                   cwd=suite, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="70b5424", help="earlier revision (default 70b5424, "
                        "the last flat-layout commit)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        old_tree = base / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old_tree),
                        options.against], check=True, stdout=subprocess.DEVNULL)
        try:
            versions = {"earlier": _venv(base / "venv-old", old_tree),
                        "this checkout": _venv(base / "venv-new", ROOT)}
            suite = base / "suite"
            suite.mkdir()
            (suite / "test_empty.py").write_text("def test_nothing():\n    pass\n")
            times: dict[tuple[str, str], list[float]] = {}
            for _ in range(options.rounds):
                for name, python in versions.items():
                    for mode, args in (("off", ()), ("on", ("--voice-latency",))):
                        times.setdefault((name, mode), []).append(_time(python, suite, *args))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(old_tree)], check=False)
    print(f"python {sys.version.split()[0]}; {options.rounds} interleaved rounds; median ms")
    for name in versions:
        off = statistics.median(times[(name, "off")])
        on = statistics.median(times[(name, "on")])
        print(f"{name:>14} ({options.against if name == 'earlier' else 'HEAD'}): plugin "
              f"installed but off {off:.0f} ms, pytest --voice-latency {on:.0f} ms "
              f"-> +{on - off:.0f} ms")
    delta = statistics.median(times[("this checkout", "on")]) - statistics.median(
        times[("earlier", "on")])
    print(f"pytest --voice-latency, this checkout minus earlier: {delta:+.0f} ms")


if __name__ == "__main__":
    main()
