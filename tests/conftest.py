"""Fixtures for the plugin's own tests."""

from __future__ import annotations

import numpy  # noqa: F401  (imported once here: in-process pytester runs cannot re-import numpy)
import pytest
from otlp_receiver import serve

import pytest_voicelatency.gate.assertions  # noqa: F401
import pytest_voicelatency.gate.compare  # noqa: F401
import pytest_voicelatency.gate.evaluate  # noqa: F401
import pytest_voicelatency.report.markdown  # noqa: F401
import pytest_voicelatency.report.table  # noqa: F401
import pytest_voicelatency.report.terminal  # noqa: F401
import pytest_voicelatency.results.model  # noqa: F401
import pytest_voicelatency.results.validate  # noqa: F401
import pytest_voicelatency.run.finish  # noqa: F401
import pytest_voicelatency.run.settings  # noqa: F401
import pytest_voicelatency.stats.summary  # noqa: F401


@pytest.fixture(autouse=True)
def _no_github_step_summary(monkeypatch):
    """Inner pytest runs must not append to the real CI job's step summary."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture(scope="session")
def _raw_exporter():
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from pytest_voicelatency.spans.capture import attach

    exporter = InMemorySpanExporter()
    attach().add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def raw_spans(_raw_exporter):
    """The real SDK spans finished during the test, from the global provider."""
    _raw_exporter.clear()
    yield _raw_exporter
    _raw_exporter.clear()


@pytest.fixture
def receiver(monkeypatch):
    """A real OTLP/HTTP receiver (otelsink) on 127.0.0.1, a free port (tests/otlp_receiver.py)."""
    with serve(monkeypatch) as received:
        yield received
