"""The HTML report: one self-contained file a CI artifact viewer opens offline.

It reads the run's :class:`~pytest_voicelatency.results.model.Results` (distributions, gates,
comparison, messages) plus what results do not keep because it needs spans: the worst turns'
timelines (:func:`~pytest_voicelatency.spans.timelines.worst_turns_by_key`) and the spans-vs-heard
pairs (:func:`heard_views`, the pairing of :mod:`~pytest_voicelatency.gate.crosscheck`). The page:

* a summary table (the terminal's rows and cells) and every verdict, coloured as the terminal
  colours them, each linking to its samples, its worst turns and the baseline it was compared with;
* per stage, a histogram of the run's samples with p50/p95/p99, each gate's limit and the
  baseline's quantile;
* the worst turns as waterfalls: a row per span, gaps painted across the bars, first-byte marks,
  and what the caller heard on the same axis — including the audio heard after the agent's
  cancel (the buffered audio of the seed's barge-in incident);
* the spans-vs-heard table: the agent's own account beside the caller's, and the turns where
  they disagree most.

No network, no external file: inline CSS and SVG, a few lines of JavaScript (copy buttons), and a
Content-Security-Policy that allows only those inline blocks (by hash). Every text that comes from
spans, results or settings is escaped by :func:`~pytest_voicelatency.report.svg.esc`.

>>> from pytest_voicelatency.results.model import Results
>>> page = render(Results())
>>> page.startswith("<!DOCTYPE html>"), "no voice spans" in page
(True, True)
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pytest_voicelatency.gate.compare import Change
from pytest_voicelatency.gate.crosscheck import (
    RESPONSE_CHECK,
    Check,
    Disagreement,
    disagreements,
)
from pytest_voicelatency.gate.evaluate import GateResult
from pytest_voicelatency.report.cells import ms, table_rows
from pytest_voicelatency.report.svg import Line, barge_in_window, esc, histogram, waterfall
from pytest_voicelatency.results.model import Results
from pytest_voicelatency.spans.rows import SpanTable
from pytest_voicelatency.spans.samples import SampleSet
from pytest_voicelatency.spans.timelines import DEFAULT_TURNS, TurnTimeline, worst_turns_by_key
from pytest_voicelatency.stats.distribution import Distribution, Key
from pytest_voicelatency.stats.levels import quantile_label
from pytest_voicelatency.stats.summary import order_key

__all__ = ["render", "report", "heard_views", "waterfall_keys", "HeardView", "HEARD_CHECKS"]

NO_SPANS = ("no voice spans were captured: instrument the agent with stage_span() and check that "
            "its spans reach the global OpenTelemetry tracer provider")

#: The agent's own account and the caller's, paired per turn: barge-in (agent ``barge_in``
#: ``silence_ms`` vs ``caller.barge_in``) and response (a ``turn`` span's ``latency_ms``, as
#: Pipecat and LiveKit Agents record it, vs ``caller.response``).
HEARD_CHECKS: tuple[Check, ...] = (Check(), RESPONSE_CHECK)
#: Stages never drawn as worst turns when no verdict names them: per-call caller spans,
#: decisions, turn parents and speech windows (gaps show inside every waterfall anyway).
_PER_CALL = re.compile(r"^caller\.(playout|pacing|discarded)$")
_NOT_WATERFALLS = re.compile(r"^(caller\.(playout|pacing|discarded)|barge_in\.(missed|false)|"
                             r"turn|speaking\..*|gap\..*)$")


@dataclass(frozen=True, slots=True)
class HeardView:
    """One check of the agent's spans against the caller: how many turns paired, and the pairs
    where the caller heard most beyond the agent's claim (largest excess first)."""

    check: Check
    paired: int
    disagreeing: int  # pairs where the caller heard more than ``margin_ms`` beyond the agent
    margin_ms: float
    worst: tuple[Disagreement, ...]


def heard_views(table: SpanTable, *, checks: Sequence[Check] = HEARD_CHECKS,
                margin_ms: float = 50.0, top: int = DEFAULT_TURNS) -> tuple[HeardView, ...]:
    """The spans-vs-heard pairs of ``table`` per check (crosscheck's pairing, every pair kept)."""
    found, paired = disagreements(table, margin_ms=-math.inf, checks=checks)
    views = []
    for check in checks:
        mine = sorted((d for d in found if d.check == check), key=lambda d: -d.excess_ms)
        views.append(HeardView(check, paired.get(check, 0),
                               sum(d.excess_ms > margin_ms for d in mine), margin_ms,
                               tuple(mine[:top])))
    return tuple(views)


def waterfall_keys(results: Results) -> list[Key]:
    """The (stage, metric) keys whose worst turns the page draws: every gated key and every
    compared key that changed or may have (regression, improvement, inconclusive), with samples;
    without any of these, the agent's stages, handoffs and the caller's response and barge-in.
    Per-call caller stages (playout, pacing) have no turns. In pipeline order."""
    keys: list[Key] = [(a.stage, a.metric) for a in results.assertions
                       if a.outcome not in ("missing", "invalid")]
    if results.gates is not None:
        keys += [(r.stage, r.metric) for r in results.gates.results if r.outcome != "missing"]
    if results.comparison is not None:
        keys += [(c.stage, c.metric) for c in results.comparison.changes
                 if c.outcome in ("regression", "improvement", "inconclusive")]
    if not keys:
        keys = [k for k in results.distributions.default_keys()
                if not _NOT_WATERFALLS.match(k[0])]
    keys = [k for k in dict.fromkeys(keys)
            if results.distributions.select(*k).n and not _PER_CALL.match(k[0])]
    return sorted(keys, key=lambda k: (order_key(k[0]), k[1]))


def report(results: Results, table: SpanTable | None, *, turns: int = DEFAULT_TURNS,
           samples: SampleSet | None = None, margin_ms: float = 50.0,
           checks: Sequence[Check] = HEARD_CHECKS) -> str:
    """The page for a live run: :func:`render` with the worst ``turns`` turns of every
    :func:`waterfall_keys` key and the spans-vs-heard pairs, both read from ``table``
    (``samples``: its derivation, when the caller has it). ``table=None``: distributions only."""
    if table is None or turns <= 0:
        return render(results)
    timelines = worst_turns_by_key(table, waterfall_keys(results), turns, samples=samples)
    return render(results, timelines, heard_views(table, checks=checks, margin_ms=margin_ms,
                                                  top=turns))


# -- page ------------------------------------------------------------------------------------

CSS = """
:root{--pass:#1a7f37;--fail:#cf222e;--warn:#9a6700;--muted:#57606a;--line:#d0d7de}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328;margin:0;
background:#fff}
main{max-width:1180px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:18px;margin:28px 0 8px;padding-top:8px;
border-top:1px solid var(--line)}h3{font-size:15px;margin:18px 0 6px}
a{color:#0969da;text-decoration:none}a:hover{text-decoration:underline}
.meta{color:var(--muted)}nav a{margin-right:14px}
.status{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600}
.status.fail{background:var(--fail)}.status.pass{background:var(--pass)}
.status.none{background:var(--muted)}
table{border-collapse:collapse;margin:6px 0;font-variant-numeric:tabular-nums}
th,td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
td.n{text-align:right;white-space:nowrap}td.links{white-space:nowrap}
.links a+a::before{content:"· ";color:var(--muted)}th{font-weight:600;background:#f6f8fa}
.v-pass{color:var(--pass)}.v-fail{color:var(--fail);font-weight:600}.v-warn{color:var(--warn)}
.v-none{color:var(--muted)}
.verdict{margin:6px 0;padding:6px 10px;border-left:4px solid var(--line);background:#f6f8fa}
.verdict.v-fail{border-color:var(--fail)}.verdict.v-pass{border-color:var(--pass)}
.verdict.v-warn{border-color:var(--warn)}.verdict .links a{margin-right:4px;font-size:13px}
pre{margin:4px 0;white-space:pre-wrap;font-size:12px;color:#1f2328}
code,.id{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
.id{user-select:all;background:#f6f8fa;border:1px solid var(--line);border-radius:4px;
padding:0 4px;word-break:break-all}
button.copy{font-size:11px;padding:0 6px;margin:0 10px 0 2px;cursor:pointer}
.idg{display:inline-block;white-space:nowrap}
.turn{margin:14px 0 22px}.turn header{margin-bottom:4px}.turn .rank{font-weight:600}
.ids{font-size:12px;color:var(--muted);line-height:2}
.hists{display:flex;flex-wrap:wrap;gap:4px 28px}.hists figure{margin:0;width:560px}
.side{display:flex;gap:16px;flex-wrap:wrap}.side figure{margin:0}
figcaption{font-size:12px;color:var(--muted)}
svg{display:block;max-width:100%;height:auto;overflow:visible}
svg text{font:11px system-ui,sans-serif;fill:#1f2328}svg .tick{fill:var(--muted);font-size:10px}
svg .grid{stroke:#eaeef2}.axis{stroke:#8c959f}
.bins{fill:#8fb3e8}.bins2{fill:#7cc4a4}.missed{fill:var(--fail)}
line.q{stroke:#1f2328;stroke-dasharray:3 3}text.q{fill:#1f2328}
line.limit{stroke:var(--fail);stroke-width:2}text.limit{fill:var(--fail);font-weight:600}
line.base{stroke:#8250df;stroke-width:2;stroke-dasharray:6 3}text.base{fill:#8250df}
.w-bar{fill:#4a7fd4}.w-handoff{fill:#8250df}.w-turn{fill:none;stroke:#8c959f}
.w-span{fill:#afb8c1}.flagged{stroke:var(--fail);stroke-width:1.5}
.w-mark{stroke:#111;stroke-width:2}
.w-gap{fill:#f08c00}.w-gapband{fill:#f08c00;opacity:.16}
.w-heard{fill:#2da44e}.w-heard.missed,.w-heard.censored{fill:var(--fail);opacity:.6}
.w-decision{fill:#1f2328}.w-tail{fill:var(--fail)}
.w-tailtext{font-weight:600;fill:var(--fail)!important}.w-tailtext.in{fill:#fff!important}
.w-cancel{stroke:var(--fail);stroke-dasharray:2 2}
.w-event{stroke:#1a7f37;stroke-dasharray:4 3;opacity:.8}
.w-sep{stroke:#8c959f}.w-septext{fill:var(--muted)!important;font-size:10px!important}
.w-label.heard{fill:#1a7f37}.w-cut{fill:var(--muted)}
details summary{cursor:pointer;font-size:12px;color:var(--muted);margin:2px 0}
.w-value{fill:var(--muted)}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.sw{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle}
.sw.bar{background:#4a7fd4}.sw.handoff{background:#8250df}.sw.gap{background:#f08c00}
.sw.heard{background:#2da44e}.sw.tail{background:#cf222e}
.sw.mark{background:#111;width:3px}.sw.event{border-left:2px dashed #1a7f37;width:0}
"""

JS = """(function(){document.addEventListener('click',function(e){
var b=e.target.closest&&e.target.closest('button.copy');if(!b)return;
var el=b.previousElementSibling;var text=el.textContent;
function select(){var r=document.createRange();r.selectNodeContents(el);
var s=window.getSelection();s.removeAllRanges();s.addRange(r);b.textContent='selected';}
if(navigator.clipboard&&navigator.clipboard.writeText){navigator.clipboard.writeText(text)
.then(function(){b.textContent='copied';},select);}else{select();}});
document.documentElement.setAttribute('data-js-ok','1');})();"""


def _hash(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


CSP = (f"default-src 'none'; style-src {_hash(CSS)}; script-src {_hash(JS)}; "
       "img-src data:; base-uri 'none'; form-action 'none'")


def anchor(prefix: str, stage: str, metric: str = "") -> str:
    """A stable in-page id for a (stage, metric): readable, made only of safe characters."""
    digest = hashlib.sha1(f"{stage}\0{metric}".encode("utf-8", "replace")).hexdigest()[:8]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{stage}.{metric}".strip("."))[:48]
    return f"{prefix}-{slug}-{digest}"


def _tone(outcome: str, failed: bool) -> str:
    """The verdict's colour class, as the terminal colours it: red when it fails the run."""
    if failed:
        return "v-fail"
    if outcome in ("pass", "improvement"):
        return "v-pass"
    if outcome in ("inconclusive", "missing", "unreliable", "regression", "fail"):
        return "v-warn"
    return "v-none"


_BARGE_IN = frozenset({"barge_in", "caller.barge_in", "barge_in.missed", "barge_in.false"})


def _traces(tl: TurnTimeline) -> dict[str, list[str]]:
    """Each trace id of the turn with the stages whose spans are in it (for lookup)."""
    out: dict[str, list[str]] = {}
    for stage, trace in [*((r.stage, r.trace_id) for r in tl.rows),
                         *((h.stage, h.trace_id) for h in tl.heard)]:
        if trace and stage not in out.setdefault(trace, []):
            out[trace].append(stage)
    return out


def _copyable(label: str, value: str) -> str:
    if not value:
        return ""
    return (f'<span class="idg">{esc(label)} <span class="id">{esc(value)}</span>'
            f'<button type="button" class="copy" title="copy">copy</button></span>')


class _Page:
    """Builds the sections; holds the anchors every link needs."""

    def __init__(self, results: Results, timelines: Mapping[Key, Sequence[TurnTimeline]],
                 heard: Sequence[HeardView]) -> None:
        self.results, self.timelines, self.heard = results, timelines, heard
        self.rows = table_rows(results)
        self.keys: list[Key] = list(dict.fromkeys([*((r.stage, r.metric) for r in self.rows),
                                                   *timelines]))
        self.gates: dict[Key, list[GateResult]] = {}
        for g in results.gates.results if results.gates is not None else ():
            self.gates.setdefault((g.stage, g.metric), []).append(g)
        self.changes: dict[Key, Change] = {(c.stage, c.metric): c for c in
                                           (results.comparison.changes
                                            if results.comparison is not None else ())}
        self.turn_anchor: dict[tuple[str, str, str, str], str] = {}
        for own in (True, False):  # a caller stage's own waterfalls first, then any other
            for key, tls in timelines.items():
                for i, tl in enumerate(tls):
                    for h in tl.heard:
                        if (h.stage == key[0]) == own:
                            self.turn_anchor.setdefault(
                                (tl.test_id, tl.session_id, h.turn_id, h.stage),
                                f"{anchor('worst', *key)}-{i + 1}")

    def links(self, key: Key) -> str:
        """Where a verdict rests: its samples, its worst turns, its baseline (when there)."""
        parts = [f'<a href="#{anchor("dist", *key)}">samples</a>']
        if self.timelines.get(key):
            parts.append(f'<a href="#{anchor("worst", *key)}">worst turns</a>')
        if key in self.changes:
            parts.append(f'<a href="#{anchor("base", *key)}">baseline</a>')
        return " ".join(parts)

    # -- sections

    def header(self) -> str:
        r = self.results
        status = ("fail", "FAILED") if r.failed else ("pass", "passed") if (
            r.gates is not None or r.comparison is not None) else ("none", "no run-wide verdicts")
        meta = " · ".join(esc(x) for x in (
            r.name, r.created, f"pytest-voicelatency {r.plugin_version}" if r.plugin_version
            else "", f"{r.tests} tests, {r.spans} voice spans") if x)
        nav = [("summary", "Summary"), ("verdicts", "Verdicts"), ("distributions", "Distributions"),
               ("worst", "Worst turns"), ("heard", "Spans vs heard"), ("messages", "Messages")]
        partial = (f'<p class="v-warn">partial run: {"; ".join(esc(p) for p in r.partial)}</p>'
                   if r.partial else "")
        return (f'<header><h1>Voice latency <span class="status {status[0]}">{status[1]}</span>'
                f'</h1><div class="meta">{meta}</div>{partial}<nav>'
                + "".join(f'<a href="#{a}">{t}</a>' for a, t in nav) + "</nav></header>")

    def summary(self) -> str:
        if not self.rows:
            return f'<section id="summary"><h2>Summary</h2><p>{esc(NO_SPANS)}</p></section>'
        compared = self.results.comparison is not None
        head = ("<tr><th>stage</th><th>metric</th><th>n</th><th>nothing</th><th>p50</th>"
                "<th>p95</th><th>p99</th><th>max</th><th>gate</th>"
                + ("<th>vs baseline</th>" if compared else "") + "<th></th></tr>")
        body = []
        for row in self.rows:
            key = (row.stage, row.metric)
            gates = self.gates.get(key, [])
            gate = "; ".join(f'<span class="{_tone(g.outcome, g.failed)}">{esc(g.cell)}</span>'
                             for g in gates)
            change = self.changes.get(key)
            vs = (f'<td class="{_tone(change.outcome, change.failed)}">{esc(change.cell)}</td>'
                  if change is not None else "<td></td>") if compared else ""
            body.append(
                f'<tr><td><a href="#{anchor("dist", *key)}">{esc(row.stage)}</a></td>'
                f"<td>{esc(row.metric)}</td><td class=n>{row.n}</td><td class=n>{row.nothing}"
                f"</td>" + "".join(f"<td class=n>{esc(ms(v))}</td>" for v in
                                   (row.p50, row.p95, row.p99, row.max))
                + f'<td>{gate}</td>{vs}<td class="links">{self.links(key)}</td></tr>')
        return (f'<section id="summary"><h2>Summary</h2><table>{head}{"".join(body)}</table>'
                '<p class="meta">milliseconds; nearest-rank quantiles; "nothing" = first_byte_ms '
                "−1, excluded; missed = +∞</p></section>")

    def verdicts(self) -> str:
        out = ['<section id="verdicts"><h2>Verdicts</h2><p class="meta">What fails the run first, '
               "then warnings, passes and unchanged stages.</p>"]
        r = self.results
        rank = {"v-fail": 0, "v-warn": 1, "v-pass": 2, "v-none": 3}
        gates = sorted(r.gates.results if r.gates is not None else (),
                       key=lambda g: rank[_tone(g.outcome, g.failed)])
        for g in gates:
            key = (g.stage, g.metric)
            lines = "\n".join(esc(line) for line in g.detail.splitlines())
            detail = f"<pre>{lines}</pre>" if g.detail else ""
            out.append(f'<div class="verdict {_tone(g.outcome, g.failed)}">'
                       f'<div>gate: {esc(g.headline())}</div>'
                       f'{detail}<div class="links">{self.links(key)}</div></div>')
        if r.comparison is not None:
            q = r.comparison.policy.q
            for c in sorted(r.comparison.changes, key=lambda c: rank[_tone(c.outcome, c.failed)]):
                key = (c.stage, c.metric)
                out.append(f'<div class="verdict {_tone(c.outcome, c.failed)}">'
                           f'<div>vs baseline: {esc(c.headline(q))}</div>'
                           f'<div class="links">{self.links(key)}</div></div>')
        for a in sorted(r.assertions, key=lambda a: (not a.failed, a.test)):
            key = (a.stage, a.metric)
            times = f" ({a.times} times, worst shown)" if a.times > 1 else ""
            tone = "v-pass" if not a.failed else "v-fail"
            out.append(f'<div class="verdict {tone}"><div>assertion in <code>{esc(a.test)}</code>: '
                       f"{esc(a.stage)} {esc(a.metric)} {esc(a.rule)} → {esc(a.outcome)}, "
                       f"{esc(ms(a.value_ms))} ms over n={a.n}{esc(times)}</div>"
                       + (f'<div class="links">{self.links(key)}</div>'
                          if key in r.distributions else "") + "</div>")
        if not gates and r.comparison is None and not r.assertions:
            out.pop()
            out.append("<p>No run-wide gates or baseline comparison in this run (set "
                       "<code>voice_latency_thresholds</code> or "
                       "<code>--voice-latency-compare</code>). Assertions inside tests "
                       "(<code>assert_p95</code>) fail their own tests; "
                       "the worst turns below are drawn for every stage.</p>")
        out.append("</section>")
        return "".join(out)

    def baseline(self) -> str:
        c = self.results.comparison
        if c is None:
            return ""
        label = quantile_label(c.policy.q)
        rows = "".join(
            f'<tr id="{anchor("base", ch.stage, ch.metric)}"><td>{esc(ch.stage)}</td>'
            f"<td>{esc(ch.metric)}</td><td class=n>{ch.base_n}</td><td class=n>"
            f"{esc(ms(ch.base_value))}</td><td class=n>{ch.head_n}</td><td class=n>"
            f"{esc(ms(ch.head_value))}</td><td class={_tone(ch.outcome, ch.failed)}>"
            f"{esc(ch.cell)}</td><td>{esc(ch.body_text())}</td></tr>" for ch in c.changes)
        env = "".join(f"<li>{esc(e)}</li>" for e in c.environment)
        return (f'<section id="baseline"><h2>Baseline</h2><p>compared with <code>'
                f'{esc(c.base_source or "the baseline")}</code></p>'
                + (f"<p>environments differ:</p><ul>{env}</ul>" if env else "")
                + f"<table><tr><th>stage</th><th>metric</th><th>n base</th><th>{label} base</th>"
                f"<th>n run</th><th>{label} run</th><th>verdict</th><th>tested quantiles</th>"
                f"</tr>{rows}</table></section>")

    def _lines(self, key: Key, d: Distribution) -> list[Line]:
        lines = [Line(f"p{q} {ms(d.quantile(q / 100))}", d.quantile(q / 100), "q")
                 for q in (50, 95, 99) if d.n]
        lines += [Line(f"limit {g.threshold.label}", g.threshold.limit.value, "limit")
                  for g in self.gates.get(key, [])]
        change = self.changes.get(key)
        if change is not None and math.isfinite(change.base_value) and self.results.comparison:
            label = quantile_label(self.results.comparison.policy.q)
            lines.append(Line(f"baseline {label} {ms(change.base_value)}", change.base_value,
                              "base"))
        return lines

    def distributions(self) -> str:
        out = ['<section id="distributions"><h2>Distributions</h2><div class="hists">']
        for key in self.keys:
            d = self.results.distributions.select(*key)
            missed = int(np.count_nonzero(~np.isfinite(d.values)))
            counts = f"n={d.n}" + (f", {d.nothing} produced nothing" if d.nothing else "") + (
                f", {missed} missed or censored" if missed else "") + (
                f", {d.unreliable} unreliable" if d.unreliable else "")
            chart = histogram(d.values, self._lines(key, d), missed=missed, width=560,
                              label=f"{key[0]} {key[1]}") if d.n else "<p>no samples</p>"
            out.append(f'<figure id="{anchor("dist", *key)}"><h3>{esc(key[0])} '
                       f'<span class="meta">{esc(key[1])}</span></h3>{chart}<figcaption>'
                       f'{esc(counts)} <span class="links">{self.links(key)}</span>'
                       "</figcaption></figure>")
        out.append("</div></section>")
        return "".join(out)

    def worst(self) -> str:
        out = ['<section id="worst"><h2>Worst turns</h2><div class="legend">'
               '<span><i class="sw bar"></i>stage bar</span><span><i class="sw handoff"></i>'
               'handoff span</span><span><i class="sw gap"></i>gap between bars</span>'
               '<span><i class="sw mark"></i>first byte</span><span><i class="sw heard"></i>'
               'caller: measured window</span><span><i class="sw event"></i>caller: heard '
               'event</span><span><i class="sw tail"></i>heard after the agent\'s cancel</span>'
               '</div>']
        if not any(self.timelines.values()):
            out.append("<p>No turns to draw: results read from a file keep distributions, not "
                       "spans.</p>")
        for key, tls in sorted(self.timelines.items(),
                               key=lambda kv: (order_key(kv[0][0]), kv[0][1])):
            out.append(f'<h3 id="{anchor("worst", *key)}">{esc(key[0])} <span class="meta">'
                       f"{esc(key[1])}: the {len(tls)} worst turns</span> · "
                       f'<a href="#{anchor("dist", *key)}">samples</a></h3>')
            for i, tl in enumerate(tls):
                value = ms(tl.value) if tl.outcome == "ok" else \
                    f"{tl.outcome} (bound {ms(tl.value)})"
                ids = "".join(_copyable(label, v) for label, v in (
                    ("test", tl.test_id), ("session", tl.session_id), ("turn", tl.turn_id)))
                traces = "".join(_copyable(f"trace ({', '.join(stages)})", t)
                                 for t, stages in _traces(tl).items())
                until = barge_in_window(tl) if key[0] in _BARGE_IN else None
                chart = waterfall(tl) if until is None else (
                    f"{waterfall(tl, until_ms=until)}<details><summary>the whole turn "
                    f"({tl.end_ms:.0f} ms)</summary>{waterfall(tl)}</details>")
                tail = max((t.duration_ms for t in tl.tails), default=0.0)
                note = (f'<p class="meta">Red: {tail:.0f} ms of agent audio the caller heard '
                        "after the agent's cancel — already shipped toward the client and never "
                        "cleared; the agent's own span ends at the cancel.</p>") if tail else ""
                out.append(f'<article class="turn" id="{anchor("worst", *key)}-{i + 1}"><header>'
                           f'<span class="rank">#{i + 1}</span> {esc(key[0])} {esc(key[1])} = '
                           f"<b>{esc(value)}</b> ms<div class=ids>{ids}<br>{traces}</div>"
                           f"</header>{chart}{note}</article>")
        out.append("</section>")
        return "".join(out)

    def spans_vs_heard(self) -> str:
        out = ['<section id="heard"><h2>Spans vs heard</h2><p class="meta">The agent\'s own '
               "spans beside what the simulated caller heard, paired per turn by time.</p>"]
        shown = 0
        for view in self.heard:
            c = view.check
            agent = self.results.distributions.select(c.agent_stage, c.agent_metric)
            caller = self.results.distributions.select(c.caller_stage, c.caller_metric)
            if not (agent.n or caller.n):
                continue
            shown += 1
            out.append(f"<h3>{esc(c.agent_stage)} {esc(c.agent_metric)} (agent) vs "
                       f"{esc(c.caller_stage)} {esc(c.caller_metric)} (heard)</h3>")
            finite = [v for d in (agent, caller) for v in d.values[np.isfinite(d.values)][-1:]]
            domain = (0.0, max([1.0, *finite]))
            figures = []
            for d, css, who in ((agent, "bins", "agent's spans"), (caller, "bins2", "caller")):
                missed = int(np.count_nonzero(~np.isfinite(d.values)))
                chart = histogram(d.values, [Line(f"p95 {ms(d.quantile(0.95))}",
                                                  d.quantile(0.95), "q")] if d.n else [],
                                  missed=missed, width=460, height=150, domain=domain, css=css,
                                  label=f"{who}: {d.stage}") if d.n else "<p>no samples</p>"
                name = f"{esc(d.stage)} {esc(d.metric)}"
                if d.key in self.keys:
                    name = f'<a href="#{anchor("dist", *d.key)}">{name}</a>'
                figures.append(f"<figure>{chart}<figcaption>{esc(who)}: "
                               f"{name}, n={d.n}, p50 {esc(ms(d.quantile(0.5)))}, "
                               f"p95 {esc(ms(d.quantile(0.95)))}, p99 {esc(ms(d.quantile(0.99)))}"
                               "</figcaption></figure>")
            out.append(f'<div class="side">{"".join(figures)}</div>')
            out.append(f"<p>{view.paired} turns paired; in {view.disagreeing} the caller heard "
                       f"the agent more than {view.margin_ms:g} ms longer than its span says.</p>")
            if not view.paired and not agent.n:
                out.append(f"<p class=meta>The agent's spans carry no {esc(c.agent_stage)} "
                           f"{esc(c.agent_metric)}.</p>")
            if view.worst:
                rows = []
                for pair in view.worst:
                    target = self.turn_anchor.get((pair.test, pair.session_id, pair.turn_id,
                                                   c.caller_stage))
                    link = f'<a href="#{target}">waterfall</a>' if target else ""
                    rows.append(f'<tr><td><span class="id">{esc(pair.session_id)}</span></td>'
                                f'<td><span class="id">{esc(pair.turn_id)}</span></td>'
                                f"<td class=n>{pair.agent_ms:.1f}</td><td class=n>"
                                f"{esc(pair.caller_text())}</td>"
                                f"<td class=n>{pair.excess_ms:+.1f}</td>"
                                f"<td>{esc(pair.test)}</td><td>{link}</td></tr>")
                out.append("<table><tr><th>session</th><th>turn (caller)</th><th>agent ms</th>"
                           "<th>heard</th><th>heard − agent</th><th>test</th><th></th></tr>"
                           + "".join(rows) + "</table>")
        if not shown:
            out.append("<p>No stage was measured both ways (run the agent with the simulated "
                       "caller: <code>voice_caller</code>).</p>")
        out.append("</section>")
        return "".join(out)

    def messages(self) -> str:
        r = self.results
        parts = []
        for title, items in (("Errors", r.errors), ("Output errors", r.output_errors),
                             ("Partial run", r.partial), ("Warnings", r.warnings),
                             (f"Span problems ({r.problem_count})", r.problems),
                             ("Notes", r.notes)):
            if items:
                tone = ' class="v-fail"' if "rrors" in title else ""
                parts.append(f"<h3{tone}>{esc(title)}</h3><ul>"
                             + "".join(f"<li>{esc(m)}</li>" for m in items) + "</ul>")
        return (f'<section id="messages"><h2>Messages</h2>'
                f'{"".join(parts) or "<p>none</p>"}</section>')


def render(results: Results, timelines: Mapping[Key, Sequence[TurnTimeline]] | None = None,
           heard: Sequence[HeardView] = (), *, title: str = "Voice latency report") -> str:
    """The whole page as one string (see the module docstring). Pure: plain data in, text out."""
    page = _Page(results, timelines or {}, heard)
    body = "".join((page.header(), page.summary(), page.verdicts(), page.baseline(),
                    page.distributions(), page.worst(), page.spans_vs_heard(), page.messages()))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{esc(title)} · {esc(results.name)}</title><style>{CSS}</style></head>"
            f"<body><main>{body}</main><script>{JS}</script></body></html>\n")
