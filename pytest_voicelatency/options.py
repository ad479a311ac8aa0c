"""Every name a user types to configure the plugin: command-line options, ini keys, markers, the
environment variable. One definition each; ``plugin.py`` registers them, ``fixtures.py`` and the
run's settings read them, tests import them from here (or from ``plugin``, which re-exports them).

Plain strings only: imported at pytest start-up.
"""

from __future__ import annotations

__all__ = ["OPTION", "INI", "JSON_OPTION", "SAVE_OPTION", "COMPARE_OPTION", "MARKDOWN_OPTION",
           "THRESHOLDS_INI", "CONFIDENCE_INI", "INCONCLUSIVE_INI", "MISSING_INI", "UNRELIABLE_INI",
           "UNRELIABLE_CHOICES", "COMPARE_CONFIDENCE_INI", "COMPARE_BODY_INI",
           "MIN_EFFECT_PCT_INI", "MIN_EFFECT_MS_INI", "SPANS_LIE_INI", "STEP_SUMMARY_ENV",
           "MARKER", "CALLER_MARKER", "SPANS_MARKER", "SAVE_PARTIAL_OPTION", "SAVE_PARTIAL_INI",
           "ALLOW_PARTIAL_OPTION", "ALLOW_PARTIAL_INI", "PATH_OPTIONS", "OTLP_OPTION", "OTLP_INI",
           "SPANS_JSON_OPTION", "SPANS_JSON_INI", "HTML_OPTION", "HTML_INI", "HTML_TURNS_INI",
           "CONVENTIONS_INI", "CLOCK_INI", "CLOCK_CHOICES", "REPLAY_OPTION"]

# command line (each also has an ini twin or implies --voice-latency)
OPTION = "--voice-latency"
JSON_OPTION = "--voice-latency-json"
SAVE_OPTION = "--voice-latency-save"
COMPARE_OPTION = "--voice-latency-compare"
MARKDOWN_OPTION = "--voice-latency-markdown"
SAVE_PARTIAL_OPTION = "--voice-latency-save-partial"
ALLOW_PARTIAL_OPTION = "--voice-latency-allow-partial"
OTLP_OPTION = "--voice-latency-otlp"
SPANS_JSON_OPTION = "--voice-latency-spans-json"
HTML_OPTION = "--voice-latency-html"
REPLAY_OPTION = "--voice-latency-replay"
PATH_OPTIONS = (JSON_OPTION, SAVE_OPTION, COMPARE_OPTION, MARKDOWN_OPTION, SPANS_JSON_OPTION,
                HTML_OPTION)

# ini keys
INI = "voice_latency"
THRESHOLDS_INI = "voice_latency_thresholds"
CONFIDENCE_INI = "voice_latency_confidence"
INCONCLUSIVE_INI = "voice_latency_inconclusive"
MISSING_INI = "voice_latency_missing"
UNRELIABLE_INI = "voice_latency_unreliable"
UNRELIABLE_CHOICES = ("warn", "fail", "retry")
COMPARE_CONFIDENCE_INI = "voice_latency_compare_confidence"
COMPARE_BODY_INI = "voice_latency_compare_body"
MIN_EFFECT_PCT_INI = "voice_latency_min_effect_pct"
MIN_EFFECT_MS_INI = "voice_latency_min_effect_ms"
SPANS_LIE_INI = "voice_latency_spans_lie_margin_ms"
SAVE_PARTIAL_INI = "voice_latency_save_partial"
ALLOW_PARTIAL_INI = "voice_latency_allow_partial"
OTLP_INI = "voice_latency_otlp"
SPANS_JSON_INI = "voice_latency_spans_json"
HTML_INI = "voice_latency_html"
HTML_TURNS_INI = "voice_latency_html_turns"
CONVENTIONS_INI = "voice_latency_conventions"
CLOCK_INI = "voice_latency_clock"
CLOCK_CHOICES = ("real", "virtual")

# environment
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"

# markers: a voice latency test, and each fixture's keyword arguments (the fixture's name)
MARKER = "voice_latency"
CALLER_MARKER = "voice_caller"
SPANS_MARKER = "voice_spans"
