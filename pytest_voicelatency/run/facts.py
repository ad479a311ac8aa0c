"""Was this run complete? The facts pytest's hooks collect, and the pure decisions made from them.

A baseline is worth what the run that wrote it measured. A run that was interrupted, only
collected, ran a subset (``-k``, ``-m``, ``--lf``, ``--sw``: anything reported deselected), had
failing tests or lost a pytest-xdist worker (its samples died with it) measured less than the
suite, so it must never replace a complete baseline. The hooks record plain facts
(:class:`RunFacts`); :func:`incomplete` says why a run is partial, and :func:`save_decision` what
``--voice-latency-save`` may do with it. Pure: no pytest, no file system.

A run given narrower test paths (``pytest tests/test_a.py``, ``tests/test_a.py::test_x``)
deselects nothing, so it looks complete by itself; it is narrower only *than the baseline it
would replace*. Each results file records the node ids of the tests its samples came from
(``test_ids``), and :func:`narrower` compares them with what this run collected: a test of the
old baseline this run did not collect (or that recorded no samples this time, e.g. skipped)
blocks the save, unless its file is gone (the suite really lost it). The common CI pattern
``pytest tests/latency/ --voice-latency-save=b.json`` collects every test of its own earlier
baseline, and one saved from the whole suite, so it keeps saving. A file of an older version
(no ``test_ids``) is judged by what it does hold: its stages and test count.

>>> narrower(Coverage(("t.py::a", "t.py::b"), (), 2), Coverage(("t.py::a",), (), 1),
...          collected=("t.py::a",), gone=lambda file: False)
('1 test of the baseline not collected by this run (t.py::b)',)

>>> incomplete(RunFacts(tests_run=3))
()
>>> incomplete(RunFacts(tests_run=3, deselected=2, failed=1))
('2 tests deselected (-k, -m, --lf, --sw or similar): a subset of the suite', '1 test failed')
>>> save_decision("b.json", ("interrupted",), exists=True).write
False
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

__all__ = ["RunFacts", "SaveDecision", "Coverage", "incomplete", "save_decision", "lost_samples",
           "narrower"]


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
    * ``tests_run``: tests whose call phase ran;
    * ``reported``: node ids of every test that reported (ran, failed or was skipped): what the
      run collected, less what it deselected;
    * ``replay``: ``--voice-latency-replay``: saved calls ran instead of the suite (which the
      plugin reports deselected).
    """

    interrupted: bool = False
    collect_only: bool = False
    deselected: int = 0
    lastfailed: bool = False
    failed: int = 0
    crashed: tuple[str, ...] = ()
    tests_run: int = 0
    reported: tuple[str, ...] = ()
    replay: bool = False


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
    if facts.replay:
        out.append("--voice-latency-replay: saved calls ran instead of the suite")
    elif facts.deselected:
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
class Coverage:
    """What a results file (or this run) measured: the node ids of the tests its samples came
    from (None: not recorded, an older file or a merge), its (stage, metric) keys, and its
    count of tests with samples."""

    test_ids: tuple[str, ...] | None
    keys: Collection[tuple[str, str]]
    tests: int


def _some(items: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def narrower(base: Coverage, run: Coverage, *, collected: Collection[str],
             gone: Callable[[str], bool]) -> tuple[str, ...]:
    """Why this run (``run``, which collected the node ids ``collected``) measured less than
    the baseline it would replace (``base``); empty when it covers it.

    With the baseline's ``test_ids``: each of them this run did not collect, or collected but
    took no samples from (skipped, say), unless ``gone(file)`` says its file no longer exists.
    Without them (an older file): the stages the baseline holds that this run has none of, and
    fewer tests with samples.
    """
    if base.test_ids is not None:
        took = set(run.test_ids or ())
        have = set(collected) | took
        missing = [t for t in base.test_ids if t not in took and not gone(t.split("::", 1)[0])]
        absent = [t for t in missing if t not in have]
        silent = [t for t in missing if t in have]
        out = []
        if absent:
            out.append(f"{_tests(len(absent))} of the baseline not collected by this run "
                       f"({_some(absent)})")
        if silent:
            out.append(f"{_tests(len(silent))} of the baseline ran but recorded no samples "
                       f"this time, skipped? ({_some(silent)})")
        return tuple(out)
    out = []
    lost = sorted(set(base.keys) - set(run.keys))
    if lost:
        out.append(f"{len(lost)} stage/metric{'s' if len(lost) > 1 else ''} of the baseline "
                   f"with no samples in this run ({_some([f'{s} {m}' for s, m in lost])})")
    if base.tests > run.tests:
        out.append(f"the baseline has samples of {_tests(base.tests)}, this run of "
                   f"{run.tests}")
    return tuple(out)


@dataclass(frozen=True)
class SaveDecision:
    """What ``--voice-latency-save`` does: write or not, marked partial or not, and why."""

    write: bool
    partial: bool
    message: str = ""


def save_decision(path: str, reasons: Sequence[str], *, exists: bool,
                  save_partial: bool = False, narrower: Sequence[str] = ()) -> SaveDecision:
    """Whether a run with these incompleteness ``reasons`` may be saved to ``path``.

    A complete run is saved. An incomplete one never replaces an existing file (whatever it
    holds: the old file is at worst as good) unless ``save_partial`` (``--voice-latency-save-
    partial``) asks for it; where no file exists yet it is saved, marked partial. A run that
    ran nothing (collect-only, no test) is never saved: it has no numbers to keep. A run that is
    complete by itself but ``narrower`` than the existing file (see :func:`narrower`) is
    treated like an incomplete one: kept unless ``save_partial``, then saved marked partial.

    >>> print(save_decision("b.json", (), exists=True, narrower=("1 test of ...",)).message)
    ... # doctest: +NORMALIZE_WHITESPACE
    baseline 'b.json' not saved: this run covers less than it (1 test of ...); the existing
    file is kept (run the whole suite, or pass --voice-latency-save-partial to save it marked
    partial; if those tests were removed for good, delete 'b.json' first)
    """
    if narrower and not reasons:  # (an incomplete run is refused for that, said first)
        why = "; ".join(narrower)
        if exists and not save_partial:
            return SaveDecision(False, True, (
                f"baseline {path!r} not saved: this run covers less than it ({why}); the "
                "existing file is kept (run the whole suite, or pass "
                "--voice-latency-save-partial to save it marked partial; if those tests were "
                f"removed for good, delete {path!r} first)"))
        return SaveDecision(True, True, f"baseline {path!r} saved marked partial: {why}")
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
