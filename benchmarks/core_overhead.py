"""Core overhead, measured side by side in one run (ratios; these machines are noisy).

1. capture cost per span: the plugin's capture vs the bare SDK's SimpleSpanProcessor +
   InMemorySpanExporter, both on their own TracerProvider, same workload (turns of one
   voice.turn parent and four stage spans, as an instrumented agent emits them);
2. retained bytes per span and per sample (tracemalloc): compact rows vs raw ReadableSpans;
3. p50/p95/p99 + 95 % bounds over 1 M samples, beside numpy.percentile on the same data;
4. start-up of `pytest --voice-latency` vs plain pytest on an empty suite (subprocesses).

Run:  python benchmarks/core_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pytest_voicelatency import stage_span, turn_span, voice_spans
from pytest_voicelatency.spans.capture import attach
from pytest_voicelatency.stats.quantiles import estimate, nearest_rank

STAGES = ("asr", "llm", "tts", "barge_in")


def workload(tracer, n: int) -> None:
    """n spans in turns of five: a voice.turn parent and four stages sharing its trace."""
    for turn in range(n // 5):
        with turn_span("sess_8f21c0", turn, tracer=tracer):
            for stage in STAGES:
                with stage_span(stage, "sess_8f21c0", turn, tracer=tracer,
                                attributes={"max_chunk_gap_ms": 12.5}) as first_byte:
                    first_byte()


def capture_cost(n: int, rounds: int) -> tuple[float, float, float]:
    sdk_provider, ours_provider = TracerProvider(), TracerProvider()
    sdk_exporter = InMemorySpanExporter()
    sdk_provider.add_span_processor(SimpleSpanProcessor(sdk_exporter))
    attach(ours_provider)
    sdk_tracer, ours_tracer = sdk_provider.get_tracer("b"), ours_provider.get_tracer("b")
    sdk_times, ours_times = [], []
    for _ in range(rounds):  # interleaved so drift hits both alike
        sdk_exporter.clear()
        t = time.perf_counter()
        workload(sdk_tracer, n)
        sdk_times.append(time.perf_counter() - t)
        with voice_spans():
            t = time.perf_counter()
            workload(ours_tracer, n)
            ours_times.append(time.perf_counter() - t)
    sdk, ours = statistics.median(sdk_times), statistics.median(ours_times)
    return sdk / n * 1e6, ours / n * 1e6, ours / sdk


def retained_bytes(n: int) -> tuple[float, float, float]:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    attach(provider)
    tracer = provider.get_tracer("m")
    exporter.clear()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    with voice_spans() as cap:
        workload(tracer, n)
    raw_and_ours = tracemalloc.get_traced_memory()[0] - before
    exporter.clear()
    gc.collect()
    ours = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    samples = len(cap.sample_set())
    del cap
    return (raw_and_ours - ours) / n, ours / n, ours / samples


def quantile_time(size: int, rounds: int) -> tuple[float, float]:
    x = np.random.default_rng(0).lognormal(5, 0.5, size)
    ours, ref = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        estimate(x, 0.95, 0.95)
        nearest_rank(x, 0.5)
        nearest_rank(x, 0.99)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        np.percentile(x, [50, 95, 99], method="inverted_cdf")
        ref.append(time.perf_counter() - t)
    return statistics.median(ours) * 1e3, statistics.median(ref) * 1e3


def startup(rounds: int) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as empty:
        open(os.path.join(empty, "conftest.py"), "w").close()
        runs: dict[str, list[float]] = {"off": [], "plain": [], "flag": []}
        args = {"off": ["-p", "no:voicelatency"], "plain": [], "flag": ["--voice-latency"]}
        for _ in range(rounds):
            for key, extra in args.items():
                t = time.perf_counter()
                subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                *extra, empty], capture_output=True, check=False)
                runs[key].append(time.perf_counter() - t)
    med = {k: statistics.median(v) * 1e3 for k, v in runs.items()}
    return med["off"], med["plain"], med["flag"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--startup-rounds", type=int, default=None, metavar="N",
                        help="interleaved subprocess rounds for item 4 (default: 7, quick: 3)")
    args = parser.parse_args()
    quick = args.quick
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} CPUs")

    sdk_us, ours_us, ratio = capture_cost(2_000 if quick else 10_000, 3 if quick else 9)
    print(f"1. capture cost per span: bare SDK {sdk_us:.1f} µs, plugin {ours_us:.1f} µs "
          f"-> ratio {ratio:.2f}x (target <= 1.10x)")

    raw, ours, per_sample = retained_bytes(5_000 if quick else 50_000)
    print(f"2. retained bytes: raw ReadableSpan {raw:.0f} B/span; plugin {ours:.0f} B/span = "
          f"{per_sample:.0f} B/sample (target <= 300 B/sample) -> {raw / ours:.0f}x smaller")

    ms, ref_ms = quantile_time(1_000_000, 3 if quick else 9)
    print(f"3. p50/p95/p99 + 95% bounds over 1M samples: {ms:.1f} ms (target <= 50 ms); "
          f"numpy.percentile of the three alone: {ref_ms:.1f} ms -> ratio {ms / ref_ms:.2f}x")

    off, plain, flag = startup(args.startup_rounds or (3 if quick else 7))
    print(f"4. start-up on an empty suite: plugin disabled (-p no:voicelatency) {off:.0f} ms, "
          f"plain pytest {plain:.0f} ms, pytest --voice-latency {flag:.0f} ms -> "
          f"+{flag - plain:.0f} ms over plain, +{flag - off:.0f} ms over no plugin "
          f"(target <= 150 ms)")


if __name__ == "__main__":
    main()
