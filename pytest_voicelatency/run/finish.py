"""What happens when a run ends: judge the gates, compare with the baseline, build the run's
:class:`~pytest_voicelatency.results.model.Results`, write the outputs, decide the exit code.
Plain data in, a :class:`Finish` out; the plugin only calls it.

Order matters for the promise that nothing is lost: the results are built from everything the
run measured and judged before any file is touched, and every later step (loading a baseline,
writing a file) that fails adds an error line and :attr:`ExitCode.BAD_INPUT` but never prevents
the others or the table.

>>> done = finish(None, 0, Settings())
>>> done.exit_code, len(done.results.distributions)
(<ExitCode.OK: 0>, 0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from pytest_voicelatency._version import __version__
from pytest_voicelatency.errors import VoiceLatencyError
from pytest_voicelatency.gate.compare import Comparison, compare
from pytest_voicelatency.gate.crosscheck import spans_lie
from pytest_voicelatency.gate.evaluate import GateReport, evaluate
from pytest_voicelatency.report.markdown import render
from pytest_voicelatency.results.codec import dumps
from pytest_voicelatency.results.environment import fingerprint
from pytest_voicelatency.results.files import append_text, write_atomic
from pytest_voicelatency.results.model import Results
from pytest_voicelatency.results.validate import load
from pytest_voicelatency.run.exitcodes import ExitCode, exit_code
from pytest_voicelatency.run.settings import Settings
from pytest_voicelatency.spans.rows import SpanTable
from pytest_voicelatency.spans.samples import derive
from pytest_voicelatency.stats.distribution import Distributions

__all__ = ["Finish", "finish"]


@dataclass(frozen=True)
class Finish:
    """What the end of a run produced: its results (for the terminal summary) and exit code."""

    results: Results
    exit_code: ExitCode


def _compare(head: Distributions, gates: GateReport | None, environment: dict[str, object],
             settings: Settings) -> tuple[Comparison | None, list[str]]:
    """The comparison with the baseline, or the error that prevented it."""
    if not (settings.compare_path and settings.judge):
        return None, []
    try:
        base = load(settings.compare_path)
    except VoiceLatencyError as exc:
        return None, [f"baseline not compared: {exc}"]
    return compare(base.distributions, head, settings.compare_policy,
                   extra=gates.keys() if gates is not None else (),
                   base_environment=base.environment, head_environment=environment,
                   base_name=base.name), []


def finish(table: SpanTable | None, tests: int, settings: Settings,
           errors: Sequence[str] = ()) -> Finish:
    """Judge, compare, build the results once, write them (see the module docstring)."""
    table = table if table is not None else SpanTable()
    samples = derive(table)
    distributions = Distributions.of(samples)
    gates = evaluate(samples, settings.thresholds, settings.policy) \
        if settings.thresholds and settings.judge else None
    environment = fingerprint(settings.root) if settings.needs_environment else {}
    comparison, baseline_errors = _compare(distributions, gates, environment, settings)
    warnings = [*(gates.warnings if gates is not None else ()),
                *spans_lie(table, margin_ms=settings.spans_lie_margin_ms),
                *(comparison.warnings if comparison is not None else ())]
    results = Results(
        distributions, tests=tests, spans=len(table),
        samples=tuple(samples) if settings.json_path else None, environment=environment,
        plugin_version=__version__,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        settings=settings.record(), gates=gates, comparison=comparison,
        problems=tuple(table.problems), problem_count=table.problem_count,
        warnings=tuple(warnings), errors=(*errors, *baseline_errors))
    results = _write(results, settings)
    return Finish(results, exit_code(results))


Job = Callable[[str], Path]


def _run_jobs(results: Results, jobs: list[tuple[str, Job]]) -> Results:
    """Run each write; the results gain a note per file written and an error per failure."""
    notes, errors = [], []
    for path, job in jobs:
        try:
            job(path)
            notes.append(f"wrote {path}")
        except VoiceLatencyError as exc:
            errors.append(str(exc))
    return replace(results, notes=(*results.notes, *notes), errors=(*results.errors, *errors))


def _write(results: Results, settings: Settings) -> Results:
    """Write the JSON results and the baseline, then the Markdown (which reports the errors of
    the first two); returns the results with the notes and errors of every write."""
    jobs: list[tuple[str, Job]] = []
    if settings.json_path:
        text = dumps(results, with_samples=True)
        jobs.append((settings.json_path, lambda p: write_atomic(p, text)))
    if settings.save_path:
        baseline = dumps(replace(results, comparison=None), with_samples=False)
        jobs.append((settings.save_path, lambda p: write_atomic(p, baseline)))
    results = _run_jobs(results, jobs)
    if not (settings.markdown_path or settings.step_summary):
        return results
    markdown = render(results)
    jobs = []
    if settings.markdown_path:
        jobs.append((settings.markdown_path, lambda p: write_atomic(p, markdown)))
    if settings.step_summary:
        jobs.append((settings.step_summary, lambda p: append_text(p, markdown + "\n")))
    return _run_jobs(results, jobs)
