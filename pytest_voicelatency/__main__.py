"""Command line: compare two results files, or merge CI shards into one.

::

    python -m pytest_voicelatency compare BASE.json HEAD.json [--markdown]
    python -m pytest_voicelatency merge A.json B.json ... -o ALL.json [--missing fail|warn]

``compare`` prints the same report as the pytest plugin (HEAD's gates, judged over its
distributions with the gate lines and policies it recorded, the way the plugin judges them, and
the comparison with BASE), or with ``--markdown`` the PR-comment form. Its policy (confidence,
minimum effect) is the one HEAD was run with, unless given here. ``merge`` joins shards of one
run, re-judges the gates they were configured with over the merged samples, writes ``-o``
atomically and prints the table. A gate whose stage no shard produced is *missing*, and fails
the merge unless ``--missing warn``: shards usually relax ``voice_latency_missing`` to ``warn``
(each sees only its own stages), but the merged run sees them all, so its default is ``fail``.
``merge`` refuses a file given twice and shards that share measurements (the same test in two
files' samples; without samples, the same run in two files).

Exit codes (:mod:`pytest_voicelatency.run.exitcodes`): 0 no regression and no failed gate; 1 a
regression or a failed gate (also a missing one, and an inconclusive one under
``--inconclusive fail``); 3 the ``-o`` file could not be written; 4 a file is missing, corrupt,
too large or too deeply nested, of a newer format, from another plugin version, marked partial
(``compare`` refuses a partial baseline unless ``--allow-partial``), given twice (``compare
a.json ./a.json`` too) or overlapping another, or the command line is wrong. Every error is one
line on stderr, never a traceback. Warnings
(environment differences, stages only on one side) go to stderr. Output into a closed pipe
(``| head -1``) is dropped quietly; the exit code is still the verdict's.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from pytest_voicelatency.errors import VoiceLatencyError, VoiceLatencyUsageError
from pytest_voicelatency.gate.policy import ComparePolicy, parse_body
from pytest_voicelatency.report.terminal import terminal_lines
from pytest_voicelatency.run.exitcodes import ExitCode, exit_code
from pytest_voicelatency.run.settings import build
from pytest_voicelatency.stats.levels import parse_fraction, quantile_label

if TYPE_CHECKING:
    from pytest_voicelatency.gate.evaluate import GateReport
    from pytest_voicelatency.results.model import Results

__all__ = ["main", "EPILOG"]

EPILOG = """exit codes:
  0  no regression and no failed gate (warnings may be printed on stderr)
  1  a regression, or a failed gate (also inconclusive ones under --inconclusive fail,
     and in merge a gate whose stage no shard produced, unless --missing warn)
  3  an output error: the -o file could not be written (or a bug: please report it)
  4  bad input: a file missing, corrupt, too large or too deeply nested, of a newer
     format or from another plugin version, a baseline marked partial (without
     --allow-partial), one file given as both BASE and HEAD, a shard given twice or
     sharing tests with another, or a bad command line"""


@dataclass
class _Outcome:
    """What a command prints and returns, decided before anything is printed."""

    code: ExitCode
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a bad command line; we use the one documented code for bad input."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(int(ExitCode.BAD_INPUT), f"{self.prog}: error: {message}\n")


def _fraction(text: str) -> float:
    value = parse_fraction(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number strictly between 0 and 1")
    return value


def _body(text: str) -> tuple[float, ...]:
    try:
        return parse_body(text)
    except VoiceLatencyUsageError as exc:
        message = str(exc).replace("voice_latency_compare_body = ", "")
        raise argparse.ArgumentTypeError(message) from None


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number >= 0")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m pytest_voicelatency",
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Compare pytest-voicelatency results with a baseline, or merge "
                                 "CI shards.", epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    cmp = sub.add_parser("compare", help="compare HEAD with the baseline BASE, stage by stage",
                         formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    cmp.add_argument("base", metavar="BASE.json", help="the baseline (--voice-latency-save)")
    cmp.add_argument("head", metavar="HEAD.json", help="this run (--voice-latency-json or -save)")
    cmp.add_argument("--markdown", action="store_true",
                     help="print the Markdown (PR comment) form instead of the table")
    cmp.add_argument("--confidence", type=_fraction, metavar="C", default=None,
                     help="confidence, Holm-corrected over all compared stages "
                          "(default: HEAD's voice_latency_compare_confidence, else 0.99)")
    cmp.add_argument("--min-effect-pct", type=_non_negative, metavar="PCT", default=None,
                     help="smallest growth in %% of p95 (or the middle growth of p75, p90, "
                          "p95) that is a regression (default: HEAD's, else 10)")
    cmp.add_argument("--min-effect-ms", type=_non_negative, metavar="MS", default=None,
                     help="smallest growth in ms of p95 (or the middle growth of p75, p90, "
                          "p95) that is a regression (default: HEAD's, else 10)")
    cmp.add_argument("--body", type=_body, metavar="QUANTILES", default=None,
                     help="baseline quantiles tested beside p95, e.g. 'p50 p75 p90', or 'none' "
                          "for the p95 test alone (default: HEAD's, else 'p50 p75 p90')")
    cmp.add_argument("--allow-partial", action="store_true",
                     help="compare with a baseline marked partial (an interrupted or subset "
                          "run; default: refuse it)")
    cmp.add_argument("--inconclusive", choices=("warn", "fail"), default=None,
                     help="what an inconclusive comparison does (default: HEAD's, else warn)")
    mrg = sub.add_parser("merge", help="merge the results files of CI shards into one",
                         formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    mrg.add_argument("inputs", metavar="SHARD.json", nargs="+", help="results files to merge")
    mrg.add_argument("-o", "--output", metavar="ALL.json", required=True,
                     help="where to write the merged results (atomically)")
    mrg.add_argument("--missing", choices=("fail", "warn"), default="fail",
                     help="what a gate whose stage no shard produced does in the merged run, "
                          "whatever voice_latency_missing the shards used (default: fail)")
    return parser


def _policy(head: Results, args: argparse.Namespace) -> ComparePolicy:
    """The comparison policy HEAD ran with, overridden by the command line."""
    recorded = head.settings.get("compare", {})
    recorded = recorded if isinstance(recorded, Mapping) else {}
    base = ComparePolicy()

    def pick(given: Any, key: str, default: Any) -> Any:
        return given if given is not None else recorded.get(key, default)
    try:
        return ComparePolicy(
            confidence=float(pick(args.confidence, "confidence", base.confidence)),
            min_relative=float(args.min_effect_pct / 100 if args.min_effect_pct is not None
                               else recorded.get("min_relative", base.min_relative)),
            min_ms=float(pick(args.min_effect_ms, "min_ms", base.min_ms)),
            inconclusive=args.inconclusive or head.settings.get("inconclusive", "warn"),
            body=args.body if args.body is not None else _recorded_body(recorded, base.body),
            tail_share=float(recorded.get("tail_share", base.tail_share)))
    except (VoiceLatencyUsageError, TypeError, ValueError) as exc:
        raise VoiceLatencyUsageError(
            f"{args.head}: its recorded comparison settings cannot be used ({exc}); pass "
            "--confidence, --min-effect-pct, --min-effect-ms and --body to choose them") from None


def _recorded_body(recorded: Mapping[str, Any], default: tuple[float, ...]) -> tuple[float, ...]:
    """The body quantiles HEAD ran with; files from before the body tests have none: default."""
    body = recorded.get("body")
    if body is None:
        return default
    if not isinstance(body, list) or not all(isinstance(x, (int, float)) for x in body):
        raise VoiceLatencyUsageError(f"settings.compare.body = {body!r} is not a list of "
                                     "quantiles below 0.95")
    return parse_body(" ".join(quantile_label(x) for x in body) or "none")


def _gates(results: Results, missing: str | None = None) -> GateReport | None:
    """The gates recorded in ``results``' settings, judged over its distributions as a live run
    judges them (``missing`` overrides the recorded policy for a missing stage)."""
    from pytest_voicelatency.gate.evaluate import evaluate  # lazy: CLI start-up

    s = results.settings
    lines = s.get("thresholds")
    if not lines:
        return None
    try:
        if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
            raise VoiceLatencyUsageError(f"settings.thresholds = {lines!r} is not a list of lines")
        settings = build(thresholds=lines, confidence=str(s.get("confidence") or ""),
                         inconclusive=str(s.get("inconclusive", "warn")),
                         missing=missing or str(s.get("missing", "fail")),
                         unreliable=str(s.get("unreliable", "warn")))
    except VoiceLatencyUsageError as exc:
        raise VoiceLatencyError(f"{results.name}: its recorded gate settings cannot be used "
                                f"({exc}); re-create the file with this plugin version") from None
    return evaluate(results.distributions, settings.thresholds, settings.policy)


def _compare(args: argparse.Namespace) -> _Outcome:
    from pytest_voicelatency.files import same_file  # lazy: CLI start-up
    from pytest_voicelatency.gate.compare import compare  # lazy: CLI start-up
    from pytest_voicelatency.report.markdown import render  # lazy: CLI start-up
    from pytest_voicelatency.results.validate import load  # lazy: CLI start-up

    if same_file(args.base, args.head):
        raise VoiceLatencyError(
            f"{args.base!r} and {args.head!r} are the same file: comparing a run with itself "
            "says nothing; give the baseline and this run's results")
    base, head = load(args.base), load(args.head)
    if base.partial and not args.allow_partial:
        raise VoiceLatencyError(
            f"{base.name!r} is marked partial ({'; '.join(base.partial)}): it measured less "
            "than the suite, so it is no baseline; save a complete run, or pass --allow-partial")
    gates = _gates(head)
    comparison = compare(base.distributions, head.distributions, _policy(head, args),
                         extra=gates.keys() if gates is not None else (),
                         base_environment=base.compared_environment,
                         head_environment=head.compared_environment,
                         base_name=base.name)
    judged = replace(head, gates=gates, comparison=comparison)
    warnings = (*(gates.warnings if gates is not None else ()), *comparison.warnings)
    out = [render(replace(judged, warnings=warnings))] if args.markdown else terminal_lines(judged)
    return _Outcome(exit_code(judged), out, [f"warning: {w}" for w in warnings])


def _given_twice(paths: Sequence[str]) -> None:
    """Refuse one file named twice (``a.json ./a.json``, or a glob and an explicit name)."""
    seen: dict[Path, str] = {}
    for given in paths:
        key = Path(given).resolve()
        if key in seen:
            raise VoiceLatencyError(
                f"{seen[key]!r} and {given!r} are the same file: merging it with itself would "
                "count its samples twice; give each shard's file once")
        seen[key] = given


def _merge(args: argparse.Namespace) -> _Outcome:
    from pytest_voicelatency.results.codec import save  # lazy: CLI start-up
    from pytest_voicelatency.results.merge import merge  # lazy: CLI start-up
    from pytest_voicelatency.results.validate import load  # lazy: CLI start-up

    _given_twice(args.inputs)
    merged, warnings = merge([load(p) for p in args.inputs])
    # Shards relax `missing` (each sees only its own stages); the merged run sees all of
    # them, so --missing, not the shards' setting, decides what a missing stage does.
    gates = _gates(merged, missing=args.missing)
    if gates is not None:
        merged = replace(merged, gates=gates, settings={**merged.settings, "missing": args.missing})
        warnings += gates.warnings
    save(merged, args.output, with_samples=True)
    shown = replace(merged, notes=(f"wrote {args.output}",))
    return _Outcome(exit_code(shown), terminal_lines(shown), [f"warning: {w}" for w in warnings])


def _flush_stdout() -> None:
    """Flush stdout; if its reader has gone (``| head -1``), drop the rest quietly.

    Python's documented recipe: point the stdout descriptor at devnull so the flush at exit
    cannot raise again (https://docs.python.org/3/library/signal.html#note-on-sigpipe).
    """
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):  # no real descriptor (captured stdout)
            sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115


def _emit(outcome: _Outcome) -> int:
    try:
        for line in outcome.out:
            print(line)
    except BrokenPipeError:
        pass
    _flush_stdout()
    for line in outcome.err:
        print(line, file=sys.stderr)
    return int(outcome.code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit:  # --help or a bad command line: argparse has printed its text
        _flush_stdout()
        raise
    from pytest_voicelatency.report.escape import terminal  # lazy: CLI start-up

    try:
        outcome = _compare(args) if args.command == "compare" else _merge(args)
    except VoiceLatencyError as exc:
        print(terminal(f"error: {exc}"), file=sys.stderr)
        return int(_code_of(exc))
    except Exception as exc:  # noqa: BLE001  never a traceback for an odd file
        print(terminal(f"error: {args.command} failed: {type(exc).__name__}: {str(exc)[:300]} "
                       "(an input it could not use, or a bug: please report it)"),
              file=sys.stderr)
        return int(ExitCode.INTERNAL_ERROR)
    outcome.err = [terminal(line) for line in outcome.err]
    return _emit(outcome)


def _code_of(exc: VoiceLatencyError) -> ExitCode:
    """An output not written is an output error; anything else is bad input."""
    return ExitCode.OUTPUT_ERROR if str(exc).startswith("cannot write") else ExitCode.BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
