"""What happens when a run ends: judge the gates, compare with the baseline, write the outputs,
decide the exit code. Plain data in, a :class:`Finish` out; the plugin only calls it.

Order matters for the promise that nothing is lost: the run's own results are built first, and
every later step (loading a baseline, writing a file) that fails adds an error line and
:attr:`ExitCode.BAD_INPUT` but never prevents the others or the table.

>>> done = finish(None, 0, Settings())
>>> done.exit_code, done.run.distributions
(<ExitCode.OK: 0>, {})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_voicelatency.errors import VoiceLatencyError
from pytest_voicelatency.run.exitcodes import ExitCode
from pytest_voicelatency.run.settings import Settings

if TYPE_CHECKING:
    from pytest_voicelatency.results.model import RunResult
    from pytest_voicelatency.gate.compare import Comparison
    from pytest_voicelatency.gate.evaluate import GateReport
    from pytest_voicelatency.spans.rows import SpanTable

__all__ = ["Finish", "finish"]


@dataclass
class Finish:
    """Everything the end of a run produced, for the terminal summary and the exit status."""

    run: RunResult
    gates: GateReport | None = None
    comparison: Comparison | None = None
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    exit_code: ExitCode = ExitCode.OK


def finish(table: SpanTable | None, tests: int, settings: Settings,
           errors: list[str] | None = None) -> Finish:
    """Judge, compare and write (see the module docstring)."""
    from pytest_voicelatency.results.model import fingerprint, from_samples
    from pytest_voicelatency.gate.crosscheck import spans_lie
    from pytest_voicelatency.gate.evaluate import evaluate, records
    from pytest_voicelatency.spans.samples import derive
    from pytest_voicelatency.spans.rows import SpanTable

    table = table if table is not None else SpanTable()
    samples = derive(table)
    gates = evaluate(samples, settings.thresholds, settings.policy) \
        if settings.thresholds and settings.judge else None
    run = from_samples(samples, tests=tests, spans=len(table),
                       environment=fingerprint(settings.root) if settings.needs_environment else {},
                       with_samples=bool(settings.json_path), problems=table.problems,
                       problem_count=table.problem_count)
    run.settings = settings.record()
    run.gates = records(gates) if gates is not None else []
    done = Finish(run, gates, errors=list(errors or ()))
    if gates is not None:
        done.warnings += gates.warnings
    done.warnings += spans_lie(table, margin_ms=settings.spans_lie_margin_ms)
    if settings.compare_path and settings.judge:
        _compare(done, settings)
    _write(done, settings)
    failed = (gates is not None and gates.failed) or \
        (done.comparison is not None and done.comparison.failed)
    done.exit_code = ExitCode.worst([ExitCode.FAILED if failed else ExitCode.OK,
                                     ExitCode.BAD_INPUT if done.errors else ExitCode.OK])
    return done


def _compare(done: Finish, settings: Settings) -> None:
    from pytest_voicelatency.results.model import load
    from pytest_voicelatency.gate.compare import compare, to_record

    assert settings.compare_path is not None
    try:
        base = load(settings.compare_path)
    except VoiceLatencyError as exc:
        done.errors.append(f"baseline not compared: {exc}")
        return
    done.comparison = compare(base, done.run, settings.compare_policy)
    done.run.comparison = to_record(done.comparison)
    done.warnings += done.comparison.warnings


def _write(done: Finish, settings: Settings) -> None:
    from dataclasses import replace

    from pytest_voicelatency.results.model import save
    from pytest_voicelatency.results.files import append_text, write_atomic
    from pytest_voicelatency.report.markdown import render

    jobs: list[tuple[str, Any]] = []
    if settings.json_path:
        jobs.append((settings.json_path, lambda p: save(done.run, p, with_samples=True)))
    if settings.save_path:
        baseline = replace(done.run, comparison=None, samples=None)
        jobs.append((settings.save_path, lambda p: save(baseline, p, with_samples=False)))
    _run_jobs(done, jobs)
    if settings.markdown_path or settings.step_summary:
        text = render(done.run, done.comparison, errors=done.errors, warnings=done.warnings)
        jobs = []
        if settings.markdown_path:
            jobs.append((settings.markdown_path, lambda p: write_atomic(p, text)))
        if settings.step_summary:
            jobs.append((settings.step_summary, lambda p: append_text(p, text + "\n")))
        _run_jobs(done, jobs)


def _run_jobs(done: Finish, jobs: list[tuple[str, Any]]) -> None:
    for path, job in jobs:
        try:
            job(path)
            done.notes.append(f"wrote {path}")
        except VoiceLatencyError as exc:
            done.errors.append(str(exc))
