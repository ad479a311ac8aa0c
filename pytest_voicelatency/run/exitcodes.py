"""The exit codes of a gated pytest run and of ``python -m pytest_voicelatency``, in one place.

They reuse pytest's own numbers, so a CI step reads the same code whichever tool produced it:

* **0 OK**: every gate passed and no stage regressed (warnings may be printed).
* **1 FAILED**: a gate failed or a stage regressed against the baseline; also an inconclusive,
  missing or unreliable gate (or comparison) whose policy is ``fail``. pytest: tests failed.
* **3 INTERNAL_ERROR** (alias **OUTPUT_ERROR**): an output could not be written (an
  unwritable path, a symlink loop, a full disk: any exception while writing one output; the
  others are still written), or a bug in pytest-voicelatency itself (please report it).
  pytest: internal error.
* **4 BAD_INPUT**: an input or output could not be used: a baseline or results file missing,
  corrupt, too large or too deeply nested, partial (without ``--allow-partial``), of a newer
  format or from another plugin version; shards gated differently; a bad command line or ini
  value. pytest: usage error.

The pytest plugin only changes the exit status of a run that would otherwise exit 0: a run
whose tests already failed keeps pytest's own code.

>>> from pytest_voicelatency.results.model import Results
>>> ExitCode.FAILED == 1, exit_code(Results(errors=("'base.json' is not valid JSON",)))
(True, <ExitCode.BAD_INPUT: 4>)
>>> exit_code(Results(output_errors=("cannot write 'out.json'",)))
<ExitCode.INTERNAL_ERROR: 3>
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the command line imports this module before it knows it needs numpy
    from pytest_voicelatency.results.model import Results

__all__ = ["ExitCode", "exit_code"]


class ExitCode(IntEnum):
    """Process exit codes (see the module docstring for the table)."""

    OK = 0
    FAILED = 1
    INTERNAL_ERROR = 3
    OUTPUT_ERROR = 3  # an alias: an output not written is reported like an internal error
    BAD_INPUT = 4


def exit_code(results: Results) -> ExitCode:
    """The exit code ``results`` call for: an output error when an output could not be written,
    else bad input when an input could not be used, else a failure when a gate failed or a stage
    regressed, else OK."""
    if results.output_errors:
        return ExitCode.OUTPUT_ERROR
    if results.errors:
        return ExitCode.BAD_INPUT
    return ExitCode.FAILED if results.failed else ExitCode.OK
