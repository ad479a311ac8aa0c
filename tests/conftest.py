"""Fixtures for the plugin's own tests."""

from __future__ import annotations

import numpy  # noqa: F401  (imported once here: in-process pytester runs cannot re-import numpy)
import pytest

import pytest_voicelatency.assertions  # noqa: F401
import pytest_voicelatency.baseline  # noqa: F401
import pytest_voicelatency.compare  # noqa: F401
import pytest_voicelatency.finish  # noqa: F401
import pytest_voicelatency.gates  # noqa: F401
import pytest_voicelatency.markdown  # noqa: F401
import pytest_voicelatency.report  # noqa: F401
import pytest_voicelatency.settings  # noqa: F401
import pytest_voicelatency.summary  # noqa: F401
import pytest_voicelatency.table  # noqa: F401
import pytest_voicelatency.validate  # noqa: F401


@pytest.fixture(autouse=True)
def _no_github_step_summary(monkeypatch):
    """Inner pytest runs must not append to the real CI job's step summary."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture(scope="session")
def _raw_exporter():
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from pytest_voicelatency.capture import attach

    exporter = InMemorySpanExporter()
    attach().add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def raw_spans(_raw_exporter):
    """The real SDK spans finished during the test, from the global provider."""
    _raw_exporter.clear()
    yield _raw_exporter
    _raw_exporter.clear()
