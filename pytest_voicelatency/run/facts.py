"""Was this run complete? The facts pytest's hooks collect, and the pure decisions made from them.

A baseline is worth what the run that wrote it measured. A run that was interrupted, only
collected, ran a subset (``-k``, ``-m``, ``--lf``, ``--sw``: anything reported deselected), had
failing tests or lost a pytest-xdist worker (its samples died with it) measured less than the
suite, so it must never replace a complete baseline. The hooks record plain facts
(:class:`RunFacts`); :func:`incomplete` says why a run is partial, and :func:`save_decision` what
``--voice-latency-save`` may do with it. Pure: no pytest, no file system.

>>> incomplete(RunFacts(tests_run=3))
()
>>> incomplete(RunFacts(tests_run=3, deselected=2, failed=1))
('2 tests deselected (-k, -m, --lf, --sw or similar): a subset of the suite', '1 test failed')
>>> save_decision("b.json", ("interrupted",), exists=True).write
False
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["RunFacts", "SaveDecision", "incomplete", "save_decision", "lost_samples"]


@dataclass(frozen=True)
class RunFacts:
    """What pytest's hooks saw of the run, as plain data.

    * ``interrupted``: Ctrl-C (KeyboardInterrupt), ``pytest.exit()`` or exit status 2;
    * ``collect_only``: ``--collect-only``: nothing ran;
    * ``deselected``: items reported deselected (``-k``, ``-m``, ``--lf``, ``--sw`` ...);
    * ``lastfailed``: ``--lf`` re-ran only the last failures (whole files may have been skipped
      without being reported deselected);
    * ``failed``: tests that failed or errored (any phase);
    * ``crashed``: one line per test whose pytest-xdist worker died while running it;
    * ``tests_run``: tests whose call phase ran.
    """

    interrupted: bool = False
    collect_only: bool = False
    deselected: int = 0
    lastfailed: bool = False
    failed: int = 0
    crashed: tuple[str, ...] = ()
    tests_run: int = 0


def _tests(n: int) -> str:
    return f"{n} test" if n == 1 else f"{n} tests"


def incomplete(facts: RunFacts) -> tuple[str, ...]:
    """Why the run measured less than the whole suite (empty when it is complete)."""
    out: list[str] = []
    if facts.interrupted:
        out.append("interrupted (Ctrl-C, pytest.exit or a KeyboardInterrupt)")
    if facts.collect_only:
        out.append("--collect-only: no test ran")
    elif facts.tests_run == 0 and not facts.interrupted:
        out.append("no test ran")
    if facts.deselected:
        out.append(f"{_tests(facts.deselected)} deselected (-k, -m, --lf, --sw or similar): "
                   "a subset of the suite")
    if facts.lastfailed:
        out.append("--lf: only the last failures ran")
    if facts.failed:
        out.append(f"{_tests(facts.failed)} failed")
    out.extend(lost_samples(facts))
    return tuple(out)


def lost_samples(facts: RunFacts) -> list[str]:
    """One line per test whose samples were lost with its worker."""
    return [f"samples lost: {line}" for line in facts.crashed]


@dataclass(frozen=True)
class SaveDecision:
    """What ``--voice-latency-save`` does: write or not, marked partial or not, and why."""

    write: bool
    partial: bool
    message: str = ""


def save_decision(path: str, reasons: Sequence[str], *, exists: bool,
                  save_partial: bool = False) -> SaveDecision:
    """Whether a run with these incompleteness ``reasons`` may be saved to ``path``.

    A complete run is saved. An incomplete one never replaces an existing file (whatever it
    holds: the old file is at worst as good) unless ``save_partial`` (``--voice-latency-save-
    partial``) asks for it; where no file exists yet it is saved, marked partial. A run that
    ran nothing (collect-only, no test) is never saved: it has no numbers to keep.
    """
    if not reasons:
        return SaveDecision(True, False)
    why = "; ".join(reasons)
    nothing_ran = any(r.startswith(("--collect-only", "no test ran")) for r in reasons)
    if nothing_ran:
        return SaveDecision(False, True, f"baseline {path!r} not saved: {why}"
                            + ("; the existing file is kept" if exists else ""))
    if exists and not save_partial:
        return SaveDecision(False, True, (
            f"baseline {path!r} not saved: this run is incomplete ({why}); the existing file "
            "is kept (run the whole suite, or pass --voice-latency-save-partial to save it "
            "marked partial)"))
    return SaveDecision(True, True, f"baseline {path!r} saved marked partial: {why}")
