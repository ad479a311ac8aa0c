"""Command line: compare two results files, or merge CI shards into one.

::

    python -m pytest_voicelatency compare BASE.json HEAD.json [--markdown]
    python -m pytest_voicelatency merge A.json B.json ... -o ALL.json

``compare`` prints the same table as the pytest plugin (gate verdicts recorded in HEAD, and the
comparison with BASE), or with ``--markdown`` the PR-comment form. Its policy (confidence,
minimum effect) is the one HEAD was run with, unless given here. ``merge`` joins shards of one
run, re-judges the gates they were configured with over the merged samples, writes ``-o``
atomically and prints the table.

Exit codes (:mod:`pytest_voicelatency.exitcodes`): 0 no regression and no failed gate; 1 a
regression or a failed gate (or an inconclusive one under ``--inconclusive fail``); 4 a file is
missing, corrupt, of a newer format, from another plugin version, or the command line is wrong.
Warnings (environment differences, stages only on one side) go to stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .errors import VoiceLatencyError
from .exitcodes import ExitCode

__all__ = ["main", "EPILOG"]

EPILOG = """exit codes:
  0  no regression and no failed gate (warnings may be printed on stderr)
  1  a regression, or a failed gate (also inconclusive ones under --inconclusive fail)
  4  bad input: a file missing, corrupt, of a newer format or from another plugin
     version, an unwritable -o path, or a bad command line"""


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a bad command line; we use the one documented code for bad input."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(int(ExitCode.BAD_INPUT), f"{self.prog}: error: {message}\n")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number strictly between 0 and 1")
    return value


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
    cmp = sub.add_parser("compare", help="compare HEAD with the baseline BASE, stage by stage")
    cmp.add_argument("base", metavar="BASE.json", help="the baseline (--voice-latency-save)")
    cmp.add_argument("head", metavar="HEAD.json", help="this run (--voice-latency-json or -save)")
    cmp.add_argument("--markdown", action="store_true",
                     help="print the Markdown (PR comment) form instead of the table")
    cmp.add_argument("--confidence", type=_fraction, metavar="C", default=None,
                     help="confidence, Holm-corrected over all compared stages "
                          "(default: HEAD's voice_latency_compare_confidence, else 0.99)")
    cmp.add_argument("--min-effect-pct", type=_non_negative, metavar="PCT", default=None,
                     help="smallest p95 growth in %% that is a regression (default: HEAD's, else 10)")
    cmp.add_argument("--min-effect-ms", type=_non_negative, metavar="MS", default=None,
                     help="smallest p95 growth in ms that is a regression (default: HEAD's, else 10)")
    cmp.add_argument("--inconclusive", choices=("warn", "fail"), default=None,
                     help="what an inconclusive comparison does (default: HEAD's, else warn)")
    mrg = sub.add_parser("merge", help="merge the results files of CI shards into one")
    mrg.add_argument("inputs", metavar="SHARD.json", nargs="+", help="results files to merge")
    mrg.add_argument("-o", "--output", metavar="ALL.json", required=True,
                     help="where to write the merged results (atomically)")
    return parser


def _policy(head: Any, args: argparse.Namespace) -> Any:
    from .compare import ComparePolicy

    recorded = head.settings.get("compare", {}) if isinstance(head.settings, dict) else {}
    base = ComparePolicy()

    def pick(given: Any, key: str, default: Any) -> Any:
        return given if given is not None else recorded.get(key, default)
    return ComparePolicy(
        confidence=float(pick(args.confidence, "confidence", base.confidence)),
        min_relative=float(args.min_effect_pct / 100 if args.min_effect_pct is not None
                           else recorded.get("min_relative", base.min_relative)),
        min_ms=float(pick(args.min_effect_ms, "min_ms", base.min_ms)),
        inconclusive=args.inconclusive or head.settings.get("inconclusive", "warn"))


def _compare(args: argparse.Namespace) -> ExitCode:
    from .baseline import load
    from .compare import compare
    from .markdown import render
    from .report import terminal_lines

    base, head = load(args.base), load(args.head)
    comparison = compare(base, head, _policy(head, args))
    gate_failed = any(g.get("failed") for g in head.gates)
    if args.markdown:
        print(render(head, comparison, warnings=comparison.warnings))
    else:
        for line in terminal_lines(head, comparison=comparison) + _gate_lines(head):
            print(line)
    for w in comparison.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return ExitCode.FAILED if comparison.failed or gate_failed else ExitCode.OK


def _gate_lines(run: Any) -> list[str]:
    return [f"{str(g['outcome']).upper()}: gate {g['line']!r} on {g['stage']}"
            + (f": {g['note']}" if g.get("note") else "") for g in run.gates if g.get("failed")]


def _merge(args: argparse.Namespace) -> ExitCode:
    from .baseline import load, merge, save
    from .gates import evaluate, records
    from .report import terminal_lines
    from .settings import build

    merged, warnings = merge([load(p) for p in args.inputs])
    s = merged.settings
    report = None
    if s.get("thresholds"):
        settings = build(thresholds=s["thresholds"], confidence=str(s.get("confidence") or ""),
                         inconclusive=s.get("inconclusive", "warn"),
                         missing=s.get("missing", "fail"), unreliable=s.get("unreliable", "warn"))
        report = evaluate(merged, settings.thresholds, settings.policy)
        merged.gates = records(report)
        warnings += report.warnings
    save(merged, args.output, with_samples=True)
    for line in terminal_lines(merged, gates=report, notes=[f"wrote {args.output}"]):
        print(line)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    return ExitCode.FAILED if report is not None and report.failed else ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    args = _parser().parse_args(argv)
    try:
        return int(_compare(args) if args.command == "compare" else _merge(args))
    except VoiceLatencyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(ExitCode.BAD_INPUT)


if __name__ == "__main__":
    sys.exit(main())
