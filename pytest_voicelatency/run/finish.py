"""What happens when a run ends: judge the gates, compare with the baseline, build the run's
:class:`~pytest_voicelatency.results.model.Results`, write the outputs, decide the exit code.
Plain data in, a :class:`Finish` out; the plugin only calls it.

Order matters for the promise that nothing is lost: the results are built from everything the
run measured and judged before any file is touched, and every step (judging, loading a baseline,
rendering and writing each output) runs on its own: an exception of *any* type in one is that
step's error line, and the others still run. A bad input is :attr:`ExitCode.BAD_INPUT`; an
output not written (or a bug) is :attr:`ExitCode.OUTPUT_ERROR`.

A run that measured less than its suite (:mod:`pytest_voicelatency.run.facts`) is marked
``partial`` in every output, never replaces an existing baseline unless
``--voice-latency-save-partial`` says so, and a partial baseline is not compared with unless
``--voice-latency-allow-partial`` says so. Neither does a run narrower than the baseline it
would replace (given narrower test paths): the results record the tests their samples came
from, and the save compares them with the existing file's
(:func:`~pytest_voicelatency.run.facts.narrower`).

>>> done = finish(None, 0, Settings())
>>> done.exit_code, len(done.results.distributions)
(<ExitCode.OK: 0>, 0)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

from pytest_voicelatency._version import __version__
from pytest_voicelatency.errors import VoiceLatencyError
from pytest_voicelatency.files import append_text, write_atomic
from pytest_voicelatency.gate.compare import Comparison, compare
from pytest_voicelatency.gate.crosscheck import spans_lie
from pytest_voicelatency.gate.evaluate import GateReport, evaluate
from pytest_voicelatency.report.html import report as html_report
from pytest_voicelatency.report.markdown import render
from pytest_voicelatency.results.codec import dumps
from pytest_voicelatency.results.environment import fingerprint
from pytest_voicelatency.results.model import Results, assertion_checks, clock_kind
from pytest_voicelatency.results.validate import MAX_BYTES, document, load, parse_json
from pytest_voicelatency.run.exitcodes import ExitCode, exit_code
from pytest_voicelatency.run.facts import (
    Coverage,
    RunFacts,
    incomplete,
    narrower,
    save_decision,
)
from pytest_voicelatency.run.settings import Settings
from pytest_voicelatency.spans.rows import SpanTable
from pytest_voicelatency.spans.samples import SampleSet, derive
from pytest_voicelatency.stats.distribution import Distributions

__all__ = ["Finish", "baseline_problem", "finish"]

T = TypeVar("T")


@dataclass(frozen=True)
class Finish:
    """What the end of a run produced: its results (for the terminal summary) and exit code."""

    results: Results
    exit_code: ExitCode


def _guard(what: str, step: Callable[[], T], default: T, sink: list[str]) -> T:
    """Run one step of the end of the run; any exception is its error line, not everyone's."""
    try:
        return step()
    except Exception as exc:  # noqa: BLE001  each step fails alone (issue #10)
        sink.append(f"{what} failed: {type(exc).__name__}: {str(exc)[:300]}; "
                    "the other outputs were still made (please report it if this is a bug)")
        return default


def _load_baseline(path: str) -> tuple[Results | None, str]:
    """The baseline at ``path``, or why it cannot be compared with."""
    try:
        return load(path), ""
    except VoiceLatencyError as exc:
        return None, f"baseline not compared: {exc}"
    except Exception as exc:  # noqa: BLE001  an odd file is bad input, never a traceback
        return None, (f"baseline not compared: {path!r} cannot be read "
                      f"({type(exc).__name__}: {str(exc)[:200]})")


def baseline_problem(settings: Settings) -> str:
    """Said when the run starts: why the baseline it will compare with cannot be read ("" when
    it can, or when there is none). The run goes on: its own results are still written."""
    if not (settings.compare_path and settings.judge):
        return ""
    base, problem = _load_baseline(settings.compare_path)
    if base is not None:
        problem = _partial_problem(base, settings)
    return f"{problem} (the tests run anyway; unless one fails, the run ends with exit code " \
           f"{int(ExitCode.BAD_INPUT)})" if problem else ""


def _partial_problem(base: Results, settings: Settings) -> str:
    """Why a partial baseline is not compared with ("" when it is complete or allowed)."""
    if not base.partial or settings.allow_partial:
        return ""
    return (f"baseline not compared: {base.name!r} is marked partial "
            f"({'; '.join(base.partial)}): it measured less than the suite; save a complete "
            "run as the baseline, or pass --voice-latency-allow-partial")


def _compare(head: Distributions, gates: GateReport | None, environment: dict[str, object],
             clock: str, settings: Settings) -> tuple[Comparison | None, list[str]]:
    """The comparison with the baseline, or the error that prevented it."""
    if not (settings.compare_path and settings.judge):
        return None, []
    base, problem = _load_baseline(settings.compare_path)
    if base is None:
        return None, [problem]
    partial = _partial_problem(base, settings)
    if partial:
        return None, [partial]
    return compare(base.distributions, head, settings.compare_policy,
                   extra=gates.keys() if gates is not None else (),
                   base_environment=base.compared_environment,
                   head_environment={**environment, "clock": clock_kind(clock)},
                   base_name=base.name), []


def finish(table: SpanTable | None, tests: int, settings: Settings,
           errors: Sequence[str] = (), facts: RunFacts | None = None, *,
           checks: Sequence[Sequence[object]] = ()) -> Finish:
    """Judge, compare, build the results once, write them (see the module docstring).

    ``facts`` are what the hooks saw of the run (None: a complete run); ``checks`` what the
    tests' own assertions decided, as ``(test, stage, metric, rule, outcome, value_ms, n)``.
    """
    table = table if table is not None else SpanTable()
    internal: list[str] = []
    samples = _guard("computing the samples", lambda: derive(table), None, internal)
    distributions = Distributions() if samples is None else _guard(
        "computing the distributions", lambda: Distributions.of(samples), Distributions(),
        internal)
    gates = None
    if settings.thresholds and settings.judge and samples is not None:
        gates = _guard("judging the gates",
                       lambda: evaluate(samples, settings.thresholds, settings.policy),
                       None, internal)
    environment: dict[str, object] = {}
    if settings.needs_environment:
        environment = _guard("reading the environment", lambda: fingerprint(settings.root),
                             environment, internal)
    clock = _clock(*table.caller_clocks())
    no_comparison: tuple[Comparison | None, list[str]] = (None, [])
    comparison, baseline_errors = _guard(
        "comparing with the baseline",
        lambda: _compare(distributions, gates, environment, clock, settings), no_comparison,
        internal)
    no_lines: list[str] = []
    lie = _guard("checking the agent's spans", lambda: spans_lie(
        table, margin_ms=settings.spans_lie_margin_ms), no_lines, internal)
    partial = incomplete(facts) if facts is not None else ()
    warnings = [*(gates.warnings if gates is not None else ()), *lie,
                *(comparison.warnings if comparison is not None else ())]
    results = Results(
        distributions, tests=tests, spans=len(table),
        samples=tuple(samples) if settings.json_path and samples is not None else None,
        environment=environment, plugin_version=__version__,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        settings=settings.record(), gates=gates, comparison=comparison,
        problems=tuple(table.problems), problem_count=table.problem_count,
        warnings=tuple(warnings), errors=(*errors, *baseline_errors), partial=partial,
        output_errors=tuple(internal), clock=clock,
        assertions=assertion_checks(checks),
        test_ids=None if samples is None else tuple(sorted({s.test_id for s in samples
                                                            if s.test_id})))
    results = _write(results, settings, table, samples,
                     facts.reported if facts is not None else ())
    return Finish(results, exit_code(results))


def _clock(virtual: int, real: int) -> str:
    """The caller's time base for the whole run, from its calls' spans."""
    if virtual and real:
        return f"mixed ({virtual} calls virtual, {real} real)"
    return "virtual" if virtual else "real" if real else ""


Job = Callable[[str], object]


def _run_jobs(results: Results, jobs: list[tuple[str, Job]]) -> Results:
    """Run each output on its own; the results gain a note per file written and an output
    error per failure, of whatever type (a symlink loop, a RecursionError in a renderer ...)."""
    notes, errors = [], []
    for path, job in jobs:
        try:
            job(path)
            notes.append(f"wrote {path}")
        except VoiceLatencyError as exc:
            errors.append(str(exc))
        except Exception as exc:  # noqa: BLE001  one output never takes the others down
            errors.append(f"cannot write {path!r}: {type(exc).__name__}: {str(exc)[:300]}")
    return replace(results, notes=(*results.notes, *notes),
                   output_errors=(*results.output_errors, *errors))


def _exists(path: str) -> bool:
    try:
        return os.path.lexists(path)
    except (OSError, ValueError):
        return True  # cannot tell: never risk replacing it


def _saved_coverage(path: str) -> Coverage | None:
    """What the results file at ``path`` measured; None when it cannot be read as one (then
    replacing it loses no known measurement)."""
    try:
        if os.stat(path).st_size > MAX_BYTES:
            return None
        with open(path, encoding="utf-8") as f:
            doc = parse_json(f.read(), path)
        saved = document(doc, path)
    except Exception:  # noqa: BLE001  unreadable: nothing known to lose; the save decides
        return None
    ids = doc.get("test_ids")
    if isinstance(ids, list) and all(isinstance(i, str) for i in ids):
        test_ids: tuple[str, ...] | None = tuple(ids)
    elif saved.samples is not None:  # a --voice-latency-json file: each sample names its test
        test_ids = tuple(sorted({s.test_id for s in saved.samples if s.test_id}))
    else:
        test_ids = None
    return Coverage(test_ids, tuple(saved.distributions), saved.tests)


def _narrower(results: Results, settings: Settings, collected: Sequence[str]
              ) -> tuple[str, ...]:
    """Why this run covers less than the file it would save over (see
    :func:`~pytest_voicelatency.run.facts.narrower`); node ids are relative to the rootdir."""
    assert settings.save_path is not None
    base = _saved_coverage(settings.save_path)
    if base is None:
        return ()
    root = settings.root

    def gone(file: str) -> bool:
        return root is not None and not _exists(os.path.join(root, file))

    return narrower(base, Coverage(results.test_ids, tuple(results.distributions),
                                   results.tests), collected=collected, gone=gone)


def _write(results: Results, settings: Settings, table: SpanTable,
           samples: SampleSet | None, collected: Sequence[str] = ()) -> Results:
    """Write the JSON results and the baseline, then the Markdown and the HTML report (which
    report the errors of the first two); returns the results with the notes and errors of every
    write."""
    jobs: list[tuple[str, Job]] = []
    if settings.json_path:
        jobs.append((settings.json_path,
                     lambda p: write_atomic(p, dumps(results, with_samples=True))))
    if settings.save_path:
        exists = _exists(settings.save_path)
        less = _narrower(results, settings, collected) if exists else ()
        decision = save_decision(settings.save_path, results.partial, exists=exists,
                                 save_partial=settings.save_partial, narrower=less)
        if decision.message:
            results = replace(results, warnings=(*results.warnings, decision.message))
        if decision.write:
            base = replace(results, comparison=None, partial=(*results.partial, *less))
            jobs.append((settings.save_path,
                         lambda p: write_atomic(p, dumps(base, with_samples=False))))
    results = _run_jobs(results, jobs)
    if not (settings.markdown_path or settings.step_summary or settings.html_path):
        return results
    done = results
    jobs = []
    if settings.html_path:
        jobs.append((settings.html_path, lambda p: write_atomic(p, html_report(
            done, table, turns=settings.html_turns, samples=samples,
            margin_ms=settings.spans_lie_margin_ms))))
    if settings.markdown_path:
        jobs.append((settings.markdown_path, lambda p: write_atomic(p, render(done))))
    if settings.step_summary:
        jobs.append((settings.step_summary, lambda p: append_text(p, render(done) + "\n")))
    return _run_jobs(results, jobs)
