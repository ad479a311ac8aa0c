"""A fingerprint of what calls and VAD runs produce, to prove an optimisation changed nothing.

Every speed-up of the harness, the virtual loop, the shipped agents or the VAD must leave the
samples bit for bit the same. This script runs a fixed set of calls on virtual time and of VAD
runs, and writes their JSON; run it before and after a change and compare:

* **calls**: the reference agent in five configurations (healthy, no flush, racy flush,
  backchannel-tolerant, cold ASR pool) on the benchmark's conversations, staggered and aligned,
  over a line with delay and jitter; extra scripts with backchannels, coughs, a barge-in at a
  state, pauses and a background bed switched on and off; the oracle agent (paced, burst, comfort
  noise, stop jitter). For each call: every log entry (agent audio as a digest of its PCM), the
  inbound PCM the agent received (a digest per call), the metrics, and every span the caller
  and the agent emitted (name, parent, start, end, attributes);
* **VAD**: :class:`~pytest_voicelatency.audio.vad.EnergyVAD` over every bundled clip, clean and
  with pink noise, with and without voicing, two hangovers and three frame sizes: every
  decision that is not plain silence, and a digest of all of them.

    python benchmarks/fingerprint.py --out /tmp/before.json
    python benchmarks/fingerprint.py --out /tmp/after.json --compare /tmp/before.json
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

sys.path.insert(0, str(Path(__file__).parent))

from virtual_time import LINE, ORACLE, conversation  # noqa: E402

from pytest_voicelatency.agents.oracle import OracleAgent, OracleConfig, tone_clip  # noqa: E402
from pytest_voicelatency.agents.reference import (  # noqa: E402
    BACKCHANNEL_TOLERANT,
    COLD_ASR_POOL,
    NO_FLUSH,
    RACY_FLUSH,
    ReferenceConfig,
    ReferenceServer,
)
from pytest_voicelatency.audio.clips import (  # noqa: E402
    add_noise,
    frames,
    from_pcm16,
    list_clips,
    load_clip,
)
from pytest_voicelatency.audio.vad import EnergyVAD  # noqa: E402
from pytest_voicelatency.call.caller import Caller  # noqa: E402
from pytest_voicelatency.call.playout import PlayoutConfig  # noqa: E402
from pytest_voicelatency.call.protocol import AgentAudio, AgentSession  # noqa: E402
from pytest_voicelatency.call.script import (  # noqa: E402
    Step,
    answer,
    background,
    barge_in,
    pause,
    say,
)
from pytest_voicelatency.errors import VoiceLatencyWarning  # noqa: E402


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _plain(value: Any) -> Any:
    """JSON-ready: dataclasses as dicts, bytes as digests, tuples as lists."""
    if isinstance(value, AgentAudio):
        return {"AgentAudio": _digest(value.pcm), "bytes": len(value.pcm),
                "rate": value.sample_rate}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {type(value).__name__: {f.name: _plain(getattr(value, f.name))
                                       for f in dataclasses.fields(value)}}
    if isinstance(value, bytes):
        return _digest(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


class Tap:
    """Wraps an agent; keeps a digest of every inbound frame it is given."""

    honours_clock = True

    def __init__(self, inner: Any, digests: dict[int, Any]) -> None:
        self.inner = inner
        self.sha = hashlib.sha256()
        self.frames = 0
        digests[id(self)] = self
        self._digests = digests

    async def start(self, session: AgentSession) -> None:
        self.session_id = session.session_id
        await self.inner.start(session)

    async def receive(self, pcm: bytes) -> None:
        self.sha.update(pcm)
        self.frames += 1
        await self.inner.receive(pcm)

    async def close(self) -> None:
        await self.inner.close()


def _run(name: str, factory: Any, scripts: list[list[Step]], *, stagger: bool = True,
         line: PlayoutConfig = LINE) -> dict[str, Any]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("fingerprint")
    taps: dict[int, Tap] = {}
    caller = Caller(clock="virtual", playout=line, tracer=tracer, session_prefix=name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VoiceLatencyWarning)
        if len(scripts) == 1:
            results = [caller.run(Tap(factory(), taps), scripts[0])]
        else:
            results = caller.run_calls(lambda: Tap(factory(), taps), scripts, stagger=stagger)
    inbound = {t.session_id: [t.frames, t.sha.hexdigest()[:16]] for t in taps.values()}
    by_id = {s.context.span_id: s.name for s in exporter.get_finished_spans()}
    spans = [{"name": s.name, "parent": by_id.get(s.parent.span_id) if s.parent else None,
              "start": s.start_time, "end": s.end_time,
              "attributes": {k: _plain(v) for k, v in sorted((s.attributes or {}).items())}}
             for s in exporter.get_finished_spans()]
    spans.sort(key=lambda s: json.dumps(s, sort_keys=True))
    return {"calls": [{"session": r.session_id, "log": _plain(list(r.log.entries)),
                       "late_events": r.log.late_events, "metrics": _plain(r.metrics),
                       "inbound": inbound[r.session_id]} for r in results],
            "spans": spans}


def _extra_scripts() -> list[list[Step]]:
    return [
        [say("hello"), answer(), say("book_table"), barge_in("mm_hm", after_ms=400), answer(),
         say("late_pizza"), barge_in("cough", after_ms=200), answer(until="audible")],
        [background("babble", gain_db=-30), say("confirm_order"), pause(700), answer(),
         background(None), say("open_tomorrow"), barge_in("wait_stop", at_state="thinking",
                                                          after_ms=50), answer()],
        [pause(300), say("change_address"), barge_in("uh_huh", after_ms=1200),
         barge_in("meant_tuesday", after_ms=100), answer(), background("room_tone", gain_db=-20),
         say("cancel_order"), answer(), barge_in("dog_bark", after_ms=0)],
    ]


def calls() -> dict[str, Any]:
    out: dict[str, Any] = {}
    configs: dict[str, dict[str, Any]] = {
        "healthy": {}, "no_flush": NO_FLUSH, "racy": RACY_FLUSH,
        "tolerant": BACKCHANNEL_TOLERANT,
        "cold": {"asr_pool": COLD_ASR_POOL, "seed": 3},
    }
    for name, changes in configs.items():
        for stagger in (True, False):
            server = ReferenceServer(ReferenceConfig(), **changes)
            out[f"ref-{name}-{'staggered' if stagger else 'aligned'}"] = _run(
                f"ref-{name}", server, [conversation(k) for k in range(4)], stagger=stagger)
        server = ReferenceServer(ReferenceConfig(), **changes)
        out[f"ref-{name}-extra"] = _run(f"ref-{name}-x", server, _extra_scripts(),
                                        line=PlayoutConfig(buffer_ms=80, delay_ms=35,
                                                           jitter_ms=25, seed=7))
    oracles = {
        "bench": ORACLE,
        "burst": OracleConfig(mode="burst"),
        "noise": OracleConfig(comfort_noise_dbfs=-60, send_jitter_ms=3, stop_jitter_ms=10,
                              seed=5),
        "noclear": OracleConfig(honours_clear=False, leading_silence_ms=120),
    }
    tone = tone_clip()
    for name, config in oracles.items():
        out[f"oracle-{name}"] = _run(
            f"oracle-{name}", lambda config=config: OracleAgent(config),
            [conversation(0), conversation(1),
             [say(tone), answer(until="audible"), say(tone), barge_in(tone, after_ms=200),
              pause(400), say(tone), answer()]])
    out["oracle-single"] = _run("oracle-1", lambda: OracleAgent(ORACLE), [conversation(2)],
                                line=PlayoutConfig())
    return out


def vad() -> dict[str, Any]:
    out: dict[str, Any] = {}
    noise = load_clip("pink_noise")
    for name in list_clips():
        clean = load_clip(name)
        for noisy in (False, True):
            clip = add_noise(clean, noise, snr_db=15, seed=1) if noisy else clean
            for frame_ms in (10, 20, 30):
                pcm = [from_pcm16(f) for f in frames(clip, frame_ms=frame_ms)]
                for voicing in (True, False):
                    for hangover in (40, 300):
                        v = EnergyVAD(frame_ms=frame_ms, voicing=voicing, hangover_ms=hangover)
                        decisions = [v.process(f) for f in pcm if f.size == v._size]
                        sha = hashlib.sha256()
                        events = []
                        for i, d in enumerate(decisions):
                            row = [d.speech, d.onset_sample, d.offset_sample]
                            sha.update(repr(row).encode())
                            if d.speech or d.onset_sample is not None \
                                    or d.offset_sample is not None:
                                events.append([i, *row])
                        key = f"{name} noisy={noisy} {frame_ms}ms voicing={voicing} " \
                              f"hangover={hangover}"
                        out[key] = {"digest": sha.hexdigest()[:16], "events": events,
                                    "floor": v._floor_db}
    return out


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    if type(a) is not type(b):
        return f"{path}: {a!r:.200} != {b!r:.200}"
    if isinstance(a, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{path}/{key}: only in {'after' if key not in a else 'before'}"
            found = _first_difference(a[key], b[key], f"{path}/{key}")
            if found:
                return found
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items != {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{path}: {a!r:.200} != {b!r:.200}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="write the JSON here")
    parser.add_argument("--compare", type=Path, help="a previous --out to compare with")
    parser.add_argument("--skip-vad", action="store_true", help="calls only")
    args = parser.parse_args()
    started = time.perf_counter()
    data = {"calls": calls(), "vad": {} if args.skip_vad else vad()}
    args.out.write_text(json.dumps(data, sort_keys=True))
    n_calls = sum(len(v["calls"]) for v in data["calls"].values())
    print(f"{n_calls} calls, {len(data['vad'])} VAD runs -> {args.out} "
          f"({time.perf_counter() - started:.1f} s)")
    if args.compare:
        before = json.loads(args.compare.read_text())
        if args.skip_vad:
            before["vad"] = {}
        difference = _first_difference(before, json.loads(args.out.read_text()))
        if difference:
            print(f"DIFFERENT from {args.compare}: first difference at {difference}")
            sys.exit(1)
        print(f"identical to {args.compare}")


if __name__ == "__main__":
    main()
