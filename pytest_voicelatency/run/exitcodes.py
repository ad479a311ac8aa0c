"""The exit codes of a gated pytest run and of ``python -m pytest_voicelatency``, in one place.

They reuse pytest's own numbers, so a CI step reads the same code whichever tool produced it:

* **0 OK**: every gate passed and no stage regressed (warnings may be printed).
* **1 FAILED**: a gate failed or a stage regressed against the baseline; also an inconclusive,
  missing or unreliable gate (or comparison) whose policy is ``fail``. pytest: tests failed.
* **3 INTERNAL_ERROR**: a bug in pytest-voicelatency itself (please report it).
* **4 BAD_INPUT**: an input or output could not be used: a baseline or results file missing,
  corrupt, of a newer format or from another plugin version; shards gated differently; an
  unwritable output path; a bad command line. pytest: usage error.

The pytest plugin only changes the exit status of a run that would otherwise exit 0: a run
whose tests already failed keeps pytest's own code.

>>> ExitCode.FAILED == 1 and ExitCode.worst([ExitCode.OK, ExitCode.BAD_INPUT]) == 4
True
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

__all__ = ["ExitCode"]


class ExitCode(IntEnum):
    """Process exit codes (see the module docstring for the table)."""


    OK = 0
    FAILED = 1
    INTERNAL_ERROR = 3
    BAD_INPUT = 4

    @staticmethod
    def worst(codes: Iterable[ExitCode]) -> ExitCode:
        """The most severe of ``codes``: bad input over a failure over success."""
        order = (ExitCode.OK, ExitCode.FAILED, ExitCode.BAD_INPUT, ExitCode.INTERNAL_ERROR)
        return max(codes, key=order.index, default=ExitCode.OK)
