"""Spans: instrument an agent (``stage_span`` …), capture finished spans in memory, keep them as
compact rows, and turn rows into samples (including the gaps between the bars).

``otel`` is the only module that touches OpenTelemetry objects; everything after it sees plain
records. May import: ``audio``, ``clock``, ``errors``.
"""
