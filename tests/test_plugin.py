"""Specification of the pytest plugin, by running real pytest sessions with pytester."""

from __future__ import annotations

import json

import pytest

from pytest_voicelatency.plugin import MARKER, OPTION, SKIP_REASON

AGENT = '''
import pytest
from pytest_voicelatency import stage_span, handoff_span, assert_p95

def run_turns(n, session="s", slow_barge_in=False):
    for turn in range(n):
        with handoff_span("vad", "asr", session, turn):
            pass
        with stage_span("asr", session, turn) as first_partial:
            first_partial()
        with stage_span("llm", session, turn) as first_token:
            first_token()
        with stage_span("tts", session, turn) as first_chunk:
            first_chunk()
        with stage_span("barge_in", session, turn) as t:
            t.set("silence_ms", 500.0 if slow_barge_in else 120.0 + turn % 7)
'''


@pytest.fixture
def suite(pytester):
    pytester.makepyfile(agent=AGENT)
    pytester.makepyfile(test_voice=f'''
import pytest
from agent import run_turns
from pytest_voicelatency import assert_p95

@pytest.mark.{MARKER}
def test_barge_in_is_fast(voice_spans):
    run_turns(60)
    assert_p95(stage="barge_in", lt=200)
    assert_p95(stage="asr", lt=150)
    assert_p95(stage="handoff.vad_to_asr", lt=250)
    assert_p95(stage="gap.asr_to_llm", lt=100)

@pytest.mark.{MARKER}
def test_second_session(voice_spans):
    run_turns(40, session="other")

def test_plain():
    pass
''')
    return pytester


def test_marked_tests_are_skipped_without_the_flag_with_a_reason_naming_it(suite):
    """Without --voice-latency, marked tests skip and say how to run them; no table."""
    result = suite.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines([f"*{SKIP_REASON}*"])
    assert "voice latency (ms)" not in result.stdout.str()
    assert "--voice-latency" in SKIP_REASON


def test_flag_runs_them_and_prints_the_table_in_pipeline_order(suite):
    """With the flag: marked tests run and one run-wide table lists every stage in order."""
    result = suite.runpytest(OPTION)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([
        "*= voice latency (ms) =*",
        "stage*metric*n*nothing*p50*p95*p99*max",
        "handoff.vad_to_asr*duration_ms*100*",
        "asr*first_byte_ms*100*0*",
        "gap.asr_to_llm*duration_ms*100*",
        "llm*first_byte_ms*100*",
        "gap.llm_to_tts*",
        "tts*first_byte_ms*100*",
        "barge_in*silence_ms*100*0*",
        "500 voice spans*from 2 tests*nearest-rank*",
    ])


def test_ini_twin_enables_the_plugin(suite):
    """voice_latency = true in the ini file works like the flag."""
    suite.makeini("[pytest]\nvoice_latency = true\n")
    result = suite.runpytest()
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*voice latency (ms)*"])


def test_failing_assertion_explains_itself_in_the_pytest_output(pytester):
    """A slow barge-in fails the test with stage, quantile, limit and the worst turns."""
    pytester.makepyfile(agent=AGENT)
    pytester.makepyfile(test_slow='''
from agent import run_turns
from pytest_voicelatency import assert_p95

def test_slow(voice_spans):
    run_turns(20, slow_barge_in=True)
    assert_p95(stage="barge_in", lt=200)
''')
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*LatencyAssertionError: barge_in silence_ms p95 = 500.0 ms, limit < 200 ms "
        "(n=20, produced nothing: 0) -> FAIL",
        "*worst: 500.0 ms (session=s turn=*",
    ])
    assert "assertions.py" not in result.stdout.str()  # helper frames hidden


def test_table_merges_every_xdist_worker(suite):
    """-n 2: both workers' samples reach the controller, which alone prints the table."""
    pytest.importorskip("xdist")
    result = suite.runpytest_subprocess(OPTION, "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    out = result.stdout.str()
    assert out.count("voice latency (ms)") == 1
    result.stdout.fnmatch_lines(["asr*first_byte_ms*100*", "500 voice spans*from 2 tests*"])


def test_attaches_to_a_provider_the_users_conftest_installed(pytester):
    """The user's SDK provider keeps its own exporter; the plugin adds itself, replacing
    nothing."""
    pytester.makeconftest('''
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(PROVIDER)
''')
    pytester.makepyfile(test_user='''
import warnings
from opentelemetry import trace
from pytest_voicelatency import stage_span
import conftest

def test_both_see_it(voice_spans):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # overriding the provider would warn
        with stage_span("asr", "s", 1) as fb:
            fb()
    assert trace.get_tracer_provider() is conftest.PROVIDER
    assert [s.name for s in conftest.EXPORTER.get_finished_spans()] == ["audio.asr"]
    assert len(voice_spans) == 1
''')
    result = pytester.runpytest_subprocess(OPTION)
    result.assert_outcomes(passed=1)


def test_installs_a_provider_once_when_none_exists(pytester):
    """With no provider, the plugin installs one SDK provider, once, without warnings."""
    pytester.makepyfile(test_none='''
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from pytest_voicelatency import stage_span

def test_one(voice_spans):
    with stage_span("asr", "s", 1):
        pass
    assert isinstance(trace.get_tracer_provider(), TracerProvider)

def test_two(voice_spans):
    first = trace.get_tracer_provider()
    with stage_span("asr", "s", 2):
        pass
    assert trace.get_tracer_provider() is first and len(voice_spans) == 1
''')
    result = pytester.runpytest_subprocess(OPTION, "-W", "error")
    result.assert_outcomes(passed=2)


def test_a_non_sdk_provider_gets_a_clear_error(pytester):
    """A no-op provider cannot be captured: the error says what to install."""
    pytester.makeconftest('''
from opentelemetry import trace
trace.set_tracer_provider(trace.NoOpTracerProvider())
''')
    pytester.makepyfile(test_noop='''
def test_x(voice_spans):
    pass
''')
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*NoOpTracerProvider, not an SDK TracerProvider*set_tracer_provider*"])


def test_spans_do_not_leak_between_tests(pytester):
    """Each test's voice_spans holds only its own spans."""
    pytester.makepyfile(test_leak='''
from pytest_voicelatency import stage_span

def test_a(voice_spans):
    with stage_span("asr", "s", 1):
        pass
    assert len(voice_spans) == 1

def test_b(voice_spans):
    assert len(voice_spans) == 0
''')
    pytester.runpytest(OPTION).assert_outcomes(passed=2)
    pytester.runpytest().assert_outcomes(passed=2)


def test_span_problems_become_warnings_and_a_table_footer(pytester):
    """A NaN attribute is dropped with a warning naming span and attribute; other samples stay."""
    pytester.makepyfile(test_bad='''
from pytest_voicelatency import stage_span

def test_bad(voice_spans):
    with stage_span("tts", "s", 1, attributes={"gap_ms": float("nan")}) as fb:
        fb()

def test_good(voice_spans):
    with stage_span("asr", "s", 1) as fb:
        fb()
''')
    result = pytester.runpytest(OPTION)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        "*VoiceLatencyWarning: span 'audio.tts': attribute audio.gap_ms is nan*",
        "asr*first_byte_ms*1*", "tts*first_byte_ms*1*", "1 span problems*"])


def test_empty_run_says_no_spans_were_captured(pytester):
    """With the flag but no voice spans, the summary says what to check."""
    pytester.makepyfile(test_empty="def test_x(): pass\n")
    result = pytester.runpytest(OPTION)
    result.stdout.fnmatch_lines(["*no voice spans were captured*"])


def test_help_lists_the_option_and_ini_in_one_group(pytester):
    """--help shows the option, its default and the ini twin."""
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["voice agent latency (pytest-voicelatency):",
                                 f"*{OPTION}*", "*default: off*", "*voice_latency (bool)*"])


def test_assert_outside_any_capture_errors_clearly(pytester):
    """Without the flag or fixture, an assertion says how to open a capture."""
    pytester.makepyfile(test_nocap='''
from pytest_voicelatency import assert_p95

def test_x():
    assert_p95(stage="asr", lt=100)
''')
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*VoiceLatencyUsageError: no span capture is active*voice_spans*"])


def test_a_run_without_voice_spans_never_imports_numpy(pytester):
    """Start-up cost: with nothing captured, judged or written, numpy stays unloaded (the OTel
    SDK does load: each test's capture must attach before any span can end)."""
    pytester.makeconftest('''
import sys

def pytest_unconfigure(config):
    heavy = sorted(m for m in ("numpy",) if m in sys.modules)
    print("HEAVY:", heavy or "none")
''')
    pytester.makepyfile(test_plain="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess(OPTION, "-s", "-p", "no:cacheprovider",
                                           "-p", "no:hypothesispytest", "-p", "no:xdist")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*no voice spans were captured*", "HEAVY: none"])


@pytest.mark.parametrize(("policy", "outcome", "line"), [
    ("warn", {"passed": 1}, "*VoiceLatencyWarning: 5 of 5 samples of caller.response latency_ms*"),
    ("fail", {"failed": 1}, "*UNRELIABLE: 5 of 5 samples of caller.response latency_ms*"),
])
def test_the_unreliable_ini_decides_what_an_assertion_does(pytester, policy, outcome, line):
    """voice_latency_unreliable reaches in-test assertions: warn by default, fail when asked."""
    pytester.makeini(f"[pytest]\nvoice_latency_unreliable = {policy}\n")
    pytester.makepyfile(test_unreliable='''
from pytest_voicelatency import assert_p95, stage_span

def test_x():
    for turn in range(5):
        with stage_span("caller.response", "s", turn,
                        attributes={"latency_ms": 100.0, "reliable": False, "source": "caller"}):
            pass
    assert_p95(stage="caller.response", lt=200)
''')
    result = pytester.runpytest(OPTION, "-p", "no:cacheprovider")
    result.assert_outcomes(**outcome)
    result.stdout.fnmatch_lines([line])


def test_the_voice_caller_marker_passes_its_keywords_to_the_fixtures_caller(pytester):
    """@pytest.mark.voice_caller(...) configures the fixture as the same keywords configure the
    twin; a class marker applies too, the closest marker winning per keyword; the ini's
    unreliable policy is the default."""
    pytester.makeini("[pytest]\nvoice_latency_unreliable = retry\n")
    pytester.makepyfile(test_marked='''
import pytest
from pytest_voicelatency.call import PlayoutConfig

@pytest.mark.voice_caller(session_prefix="class", pacing_limit_ms=9)
class TestMarked:
    @pytest.mark.voice_caller(playout=PlayoutConfig(buffer_ms=80), session_prefix="mine")
    def test_marked(self, voice_caller):
        assert voice_caller.playout.buffer_ms == 80 and voice_caller.session_prefix == "mine"
        assert voice_caller.pacing_limit_ms == 9 and voice_caller.unreliable == "retry"

    @pytest.mark.voice_caller(unreliable="warn", max_attempts=5)
    def test_overrides_the_ini(self, voice_caller):
        assert voice_caller.unreliable == "warn" and voice_caller.max_attempts == 5

def test_unmarked(voice_caller):
    assert voice_caller.session_prefix == "call" and voice_caller.unreliable == "retry"
''')
    result = pytester.runpytest("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=3)


@pytest.mark.parametrize(("marker", "message"), [
    ("voice_caller(playot=None)", "*@pytest.mark.voice_caller(playot=...): unknown keyword "
                                  "'playot'; it takes agent_timeout_ms, *, playout, *"),
    ("voice_caller(5)", "*@pytest.mark.voice_caller(5,): pass keyword arguments only*"),
    ("voice_caller(unreliable='often')", "*@pytest.mark.voice_caller: unreliable must be*"),
    ("voice_spans(unreliable='often')", "*@pytest.mark.voice_spans = 'often': use warn, fail, "
                                        "retry*"),
    ("voice_spans(test_id='x')", "*@pytest.mark.voice_spans(test_id=...): unknown keyword*"),
])
def test_a_bad_fixture_marker_is_a_usage_error_naming_the_marker_and_keyword(pytester, marker,
                                                                            message):
    pytester.makepyfile(test_bad=f'''
import pytest

@pytest.mark.{marker}
def test_x(voice_caller):
    pass
''')
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*VoiceLatencyUsageError*", message])


@pytest.mark.parametrize("enabled", [[], [OPTION]], ids=["plain", "voice-latency"])
def test_the_twins_follow_the_unreliable_ini_like_the_fixtures(pytester, enabled):
    """voice_spans() and voice_caller() read the session's voice_latency_unreliable, so a
    hypothesis test or a module-scoped fixture behaves as the fixtures do."""
    pytester.makeini("[pytest]\nvoice_latency_unreliable = fail\n")
    pytester.makepyfile(test_twins='''
import pytest
from pytest_voicelatency import voice_caller, voice_spans

@pytest.fixture(scope="module")
def shared():
    with voice_spans() as spans, voice_caller() as caller:
        yield spans, caller

def test_twins(shared, voice_spans):
    spans, caller = shared
    assert spans.unreliable == caller.unreliable == voice_spans.unreliable == "fail"

def test_explicit_keywords_win():
    with voice_spans(unreliable="warn") as spans, voice_caller(unreliable="retry") as caller:
        assert spans.unreliable == "warn" and caller.unreliable == "retry"
''')
    result = pytester.runpytest("-p", "no:cacheprovider", *enabled)
    result.assert_outcomes(passed=2)


@pytest.mark.parametrize("enabled", [[], [OPTION]], ids=["plain", "voice-latency"])
def test_the_voice_spans_marker_decides_what_assertions_do_with_unreliable_samples(pytester,
                                                                                  enabled):
    pytester.makepyfile(test_unreliable='''
import pytest
from pytest_voicelatency import assert_p95, stage_span

@pytest.mark.voice_spans(unreliable="fail")
def test_x(voice_spans):
    for turn in range(5):
        with stage_span("caller.response", "s", turn,
                        attributes={"latency_ms": 100.0, "reliable": False, "source": "caller"}):
            pass
    assert_p95(stage="caller.response", lt=200)
''')
    result = pytester.runpytest("-p", "no:cacheprovider", *enabled)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*UNRELIABLE: 5 of 5 samples of caller.response latency_ms*"])


def test_a_bad_unreliable_ini_is_a_usage_error_before_any_test(pytester):
    pytester.makeini("[pytest]\nvoice_latency_unreliable = sometimes\n")
    pytester.makepyfile(test_plain="def test_x():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini voice_latency_unreliable = 'sometimes': use warn, fail, "
                                 "retry*"])


@pytest.mark.parametrize("enabled", [[], [OPTION]], ids=["plain", "voice-latency"])
def test_the_voice_spans_marker_passes_any_capture_keyword(pytester, enabled):
    """Whatever keyword the capture takes (here ``conventions``) the marker passes on, to the
    plugin's per-test capture as to the fixture's own."""
    pytester.makepyfile(test_marker_conventions='''
import pytest
from pytest_voicelatency.spans.conventions import NATIVE_ONLY

@pytest.mark.voice_spans(conventions=NATIVE_ONLY)
def test_x(voice_spans):
    assert voice_spans.conventions is NATIVE_ONLY
''')
    result = pytester.runpytest("-p", "no:cacheprovider", *enabled)
    result.assert_outcomes(passed=1)


CLOCK_TEST = '''
from pytest_voicelatency import voice_caller
from pytest_voicelatency.agents import OracleAgent
from pytest_voicelatency.audio import tone_clip
from pytest_voicelatency.call import answer, say


def test_fixture(voice_caller):
    assert voice_caller.clock.is_virtual


def test_twin():
    with voice_caller() as caller:
        assert caller.clock.is_virtual
        caller.run(OracleAgent(), [say(tone_clip(300)), answer()])
'''


def test_the_clock_ini_puts_the_fixture_and_the_twin_on_virtual_time(pytester):
    """voice_latency_clock = virtual: both the fixture and its twin run calls on virtual time
    (the table then says so); a test can still choose with the marker or the keyword."""
    pytester.makeini("[pytest]\nvoice_latency_clock = virtual\n")
    pytester.makepyfile(test_clock_ini=CLOCK_TEST)
    result = pytester.runpytest_subprocess("--voice-latency", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["clock: virtual*"])


def test_a_bad_clock_ini_is_a_usage_error_naming_the_key(pytester):
    pytester.makeini("[pytest]\nvoice_latency_clock = fast\n")
    pytester.makepyfile(test_clock_ini="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*voice_latency_clock = 'fast': use real or virtual*"])


def _saved_call(path):
    """A replay file of one reference-agent call, as a failing property would save it."""
    from pytest_voicelatency.agents import ReferenceServer
    from pytest_voicelatency.call import answer, say
    from pytest_voicelatency.call.caller import Caller
    from pytest_voicelatency.replay import save_replay
    from pytest_voicelatency.vclock import VirtualClock

    script = [say("hello"), answer()]
    result = Caller(clock=VirtualClock(wall_clock="virtual")).run(ReferenceServer(), script)
    return save_replay(path, script=script, result=result,
                       factory="pytest_voicelatency.agents.reference:ReferenceServer")


def test_the_replay_option_reruns_a_saved_call_instead_of_the_suite(pytester):
    """--voice-latency-replay FILE: the suite is set aside, the saved call runs as the only test
    and gives the same samples; its spans fill the table like any test's."""
    replay = _saved_call(pytester.path / "call.json")
    pytester.makepyfile(test_suite="def test_not_run():\n    raise AssertionError\n")
    result = pytester.runpytest_subprocess(f"--voice-latency-replay={replay}",
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["*caller.response*", "clock: virtual*"])
    # partial (never a baseline of the suite), and saying why in its own words
    result.stdout.fnmatch_lines(["PARTIAL RUN: --voice-latency-replay: saved calls ran instead "
                                 "of the suite*"])
    assert "deselected (-k, -m" not in result.stdout.str()


def test_a_replay_run_under_xdist_is_partial_too_and_never_a_baseline_of_the_suite(pytester):
    pytest.importorskip("xdist")
    replay = _saved_call(pytester.path / "call.json")
    result = pytester.runpytest_subprocess(f"--voice-latency-replay={replay}", "-n", "2",
                                           "--voice-latency-save=b.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    saved = json.loads((pytester.path / "b.json").read_text())
    assert saved["partial"]["reasons"] == [
        "--voice-latency-replay: saved calls ran instead of the suite"]


def test_a_replay_that_measures_other_samples_fails_showing_both(pytester):
    replay = _saved_call(pytester.path / "call.json")
    data = json.loads(replay.read_text())
    data["samples"] = {key: [value + 1.0 for value in values]
                       for key, values in data["samples"].items()}
    replay.write_text(json.dumps(data))
    result = pytester.runpytest_subprocess(f"--voice-latency-replay={replay}",
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*replay*call.json measured other samples*"])


def test_an_unreadable_replay_file_is_a_usage_error_naming_it(pytester):
    """Before the suite is collected: nothing else is printed about the run."""
    (pytester.path / "bad.json").write_text("{}")
    pytester.makepyfile(test_suite="raise SystemExit('collected')\n")
    result = pytester.runpytest_subprocess("--voice-latency-replay=bad.json",
                                           "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--voice-latency-replay bad.json*not a pytest-voicelatency "
                                 "replay file*"])
    assert "collected" not in result.stdout.str() + result.stderr.str()
    assert "no voice spans" not in result.stdout.str()


def test_a_replay_whose_agent_fails_shows_the_agents_error_not_pytests_frames(pytester):
    pytester.makepyfile(broken_agents="""
        def Broken():
            raise RuntimeError("the agent broke on its first frame")
    """)
    data = json.loads(_saved_call(pytester.path / "call.json").read_text())
    data["agent"]["factory"] = "broken_agents:Broken"
    (pytester.path / "call.json").write_text(json.dumps(data))
    result = pytester.runpytest_subprocess("--voice-latency-replay=call.json",
                                           "-p", "no:cacheprovider", "-p", "pytester",
                                           "--rootdir", str(pytester.path))
    result.assert_outcomes(failed=1)
    out = result.stdout.str().partition("FAILURES")[2]
    assert "RuntimeError: the agent broke on its first frame" in out
    assert "pluggy" not in out and "_pytest" not in out, out


def test_a_replay_whose_factory_module_is_missing_says_agent_factory_in_one_line(pytester):
    data = json.loads(_saved_call(pytester.path / "call.json").read_text())
    data["agent"]["factory"] = "pipecat_service:make_agent"
    (pytester.path / "call.json").write_text(json.dumps(data))
    result = pytester.runpytest_subprocess("--voice-latency-replay=call.json",
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*replay*call.json: the replay's agent.factory "
                                 "'pipecat_service:make_agent': no module named "
                                 "'pipecat_service' here*"])
    failures = result.stdout.str().partition("FAILURES")[2]
    assert "Traceback" not in failures and "pluggy" not in failures, failures


def test_the_examples_of_a_property_never_share_a_session_in_the_tests_table(pytester):
    """A capture opened per hypothesis example (the README's recipe) inside the test's own:
    the examples' spans all reach the test's capture, and must not merge into one call's turns
    (that made up gaps such as gap.asr_to_asr across examples)."""
    pytester.makepyfile(test_prop="""
        from hypothesis import given, settings, strategies as st

        from pytest_voicelatency import voice_caller, voice_spans
        from pytest_voicelatency.agents import ReferenceServer
        from pytest_voicelatency.call import answer, barge_in, say

        SESSIONS = []

        @settings(max_examples=8, deadline=None, database=None)
        @given(st.integers(300, 900))
        def test_prop(after_ms):
            script = [say("hello"), barge_in("wait_stop", after_ms=after_ms), answer()]
            with voice_spans(), voice_caller(clock="virtual") as caller:
                SESSIONS.append(caller.run(ReferenceServer(), script).session_id)

        def test_sessions_were_distinct():
            assert len(SESSIONS) == len(set(SESSIONS)) == 8, SESSIONS
    """)
    result = pytester.runpytest_subprocess("--voice-latency", "-p", "no:cacheprovider",
                                           "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert "gap.asr" in out  # the real gaps of each call are there
    for stage in ("asr", "llm", "tts", "barge_in"):
        assert f"gap.{stage}_to_{stage}" not in out, out


def test_a_module_scoped_capture_sees_distinct_sessions_from_its_tests(pytester):
    """A capture that outlives one test (a module fixture) sees the calls of several tests: each
    capture a call's spans reach gets distinct session ids, whichever capture was opened first."""
    pytester.makepyfile(test_mod="""
        import pytest

        from pytest_voicelatency import voice_caller, voice_spans
        from pytest_voicelatency.agents import ReferenceServer
        from pytest_voicelatency.call import answer, say

        SESSIONS = []

        @pytest.fixture(scope="module")
        def module_spans():
            with voice_spans() as spans:
                yield spans

        def call():
            with voice_caller(clock="virtual") as caller:
                SESSIONS.append(caller.run(ReferenceServer(), [say("hello"), answer()]).session_id)

        def test_a(module_spans):
            call()

        def test_b(module_spans):
            call()

        def test_distinct():
            assert len(set(SESSIONS)) == 2, SESSIONS
    """)
    result = pytester.runpytest_subprocess("--voice-latency", "-p", "no:cacheprovider",
                                           "-p", "no:randomly")
    result.assert_outcomes(passed=3)
