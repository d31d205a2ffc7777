"""``report.json`` and ``report.html`` from :mod:`analytics.metrics` (the same numbers in both).

The HTML page is self-contained: its charts are matplotlib PNGs embedded as base64 (Agg
backend, no display needed), its tables plain HTML, every text escaped.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from analytics.metrics import Window, report_data

_SINCE = re.compile(r"^(\d+(?:\.\d+)?)([dhm])$")
_UNITS = {"d": 86_400, "h": 3_600, "m": 60}


def parse_since(value: str, now: float) -> float:
    """``7d`` / ``12h`` / ``30m`` before ``now``, or an ISO date (``2026-01-01``, UTC).

    Raises:
        ValueError: neither form.
    """
    match = _SINCE.match(value.strip())
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as e:
        raise ValueError(f"--since takes 7d, 12h, 30m or an ISO date, not {value!r}") from e
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def build(engine: Engine, since: float, until: float) -> dict[str, Any]:
    """The report's numbers for conversations started in ``[since, until)``."""
    with engine.connect() as conn:
        data = report_data(conn, Window(since, until))
    data["generated_at"] = time.time()
    return data


def _iso(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _num(value: Any) -> str:
    return "—" if value is None else html.escape(str(value))


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def charts(data: dict[str, Any]) -> dict[str, str]:
    """Base64 PNGs: task completion per flow, handoff reasons, CSAT, per-language rates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    out: dict[str, str] = {}
    tasks = {f: t for f, t in data["tasks"].items() if t["started"]}
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    flows = list(tasks)
    ax.bar(flows, [t["started"] for t in tasks.values()], color="#d0d7de", label="started")
    ax.bar(flows, [t["completed"] for t in tasks.values()], color="#2da44e", label="completed")
    ax.set_title("Tasks per flow")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(frameon=False)
    ax.tick_params(axis="x", rotation=30)
    out["tasks"] = _png(fig)
    plt.close(fig)

    reasons = {k: v for k, v in data["handoffs"]["reasons"].items() if v}
    fig, ax = plt.subplots(figsize=(4.8, 3.2))
    ax.barh(list(reasons) or ["none"], list(reasons.values()) or [0], color="#cf222e")
    ax.set_title("Handoff reasons")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    out["handoffs"] = _png(fig)
    plt.close(fig)

    dist = data["csat"]["distribution"]
    fig, ax = plt.subplots(figsize=(4.8, 3.2))
    ax.bar([int(k) for k in dist], list(dist.values()), color="#0969da")
    ax.set_title("Satisfaction (1-5)")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("rating")
    out["csat"] = _png(fig)
    plt.close(fig)

    languages = data["languages"]
    fig, ax = plt.subplots(figsize=(4.8, 3.2))
    names = list(languages)
    width = 0.38
    xs = range(len(names))
    containment = [(languages[n]["containment"]["rate"] or 0) * 100 for n in names]
    fallback = [(languages[n]["fallbacks"]["rate"] or 0) * 100 for n in names]
    ax.bar([x - width / 2 for x in xs], containment, width, label="containment %", color="#2da44e")
    ax.bar([x + width / 2 for x in xs], fallback, width, label="fallback %", color="#bf8700")
    ax.set_xticks(list(xs), names)
    ax.set_ylim(0, 100)
    ax.set_title("By language")
    ax.legend(frameon=False)
    out["languages"] = _png(fig)
    plt.close(fig)
    return out


def _headline(label: str, value: str, detail: str) -> str:
    return (
        f'<div class="card"><div class="label">{html.escape(label)}</div>'
        f'<div class="value">{value}</div><div class="detail">{detail}</div></div>'
    )


def render_html(data: dict[str, Any], images: dict[str, str]) -> str:
    """The report page."""
    c, h, f = data["containment"], data["handoffs"], data["fallbacks"]
    s, w = data["csat"], data["agent_wait"]
    cards = "".join(
        [
            _headline("Containment", _pct(c["rate"]), f"{c['contained']} of {c['conversations']}"),
            _headline(
                "Resolved without a person",
                _pct(c["resolved_rate"]),
                f"{c['resolved']} of {c['conversations']}",
            ),
            _headline("Handoff rate", _pct(h["rate"]), f"{h['handoffs']} handoffs"),
            _headline(
                "Fallback rate", _pct(f["rate"]), f"{f['fallbacks']} of {f['user_messages']}"
            ),
            _headline(
                "CSAT",
                _num(s["mean"]),
                f"{_pct(s['satisfied_share'])} rated 4-5, {s['answers']} answers",
            ),
            _headline(
                "Median wait for an agent",
                "—" if w["median_s"] is None else f"{w['median_s']:.0f} s",
                f"{w['answered']} answered",
            ),
        ]
    )
    task_rows = "".join(
        f"<tr><td>{html.escape(flow)}</td><td>{t['started']}</td><td>{t['completed']}</td>"
        f"<td>{_pct(t['rate'])}</td><td>{html.escape(json.dumps(t['outcomes']))}</td></tr>"
        for flow, t in data["tasks"].items()
        if t["started"]
    )
    lang_rows = "".join(
        f"<tr><td>{html.escape(lang)}</td><td>{d['containment']['conversations']}</td>"
        f"<td>{_pct(d['containment']['rate'])}</td><td>{_pct(d['handoffs']['rate'])}</td>"
        f"<td>{_pct(d['fallbacks']['rate'])}</td><td>{_num(d['csat']['mean'])}</td>"
        f"<td>{_num(d['agent_wait']['median_s'])}</td></tr>"
        for lang, d in data["languages"].items()
    )
    intent_rows = (
        "".join(
            f"<tr><td>{html.escape(r['intent'])}</td><td>{r['messages']}</td><td>{r['fallbacks']}</td>"
            f"<td>{r['rephrased']}</td><td>{r['handed_off']}</td><td>{_pct(r['rate'])}</td></tr>"
            for r in data["intents_needing_data"]
        )
        or '<tr><td colspan="6">No intent was rephrased, fell back or ended in a handoff.</td></tr>'
    )
    agent_rows = (
        "".join(
            f"<tr><td>{html.escape(a['agent'])}</td><td>{a['conversations']}</td>"
            f"<td>{_num(a['csat_mean'])}</td><td>{a['csat_answers']}</td>"
            f"<td>{_num(a['median_wait_s'])}</td></tr>"
            for a in data.get("agents", [])
        )
        or '<tr><td colspan="5">No agent took part.</td></tr>'
    )
    figures = "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{png}"></figure>'
        for name, png in images.items()
    )
    window = data["window"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Kefu service report</title>
<style>
body {{ font-family: system-ui, "Noto Sans CJK SC", sans-serif; margin: 24px; color: #1f2328; }}
h1 {{ margin: 0 0 4px; }} .muted {{ color: #656d76; }}
.cards {{ display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }}
.card {{ border: 1px solid #d0d7de; border-radius: 8px; padding: 12px 16px; min-width: 150px; }}
.label {{ color: #656d76; font-size: 13px; }} .value {{ font-size: 28px; font-weight: 600; }}
.detail {{ font-size: 12px; color: #656d76; }}
table {{ border-collapse: collapse; margin: 8px 0 20px; }}
td, th {{ border: 1px solid #d0d7de; padding: 4px 10px; text-align: left; }}
figure {{ display: inline-block; margin: 0 12px 12px 0; }} img {{ max-width: 100%; }}
</style></head><body>
<h1>Kefu service report</h1>
<div class="muted">Conversations started {_iso(window["since"])} – {_iso(window["until"])}</div>
<div class="cards">{cards}</div>
<div>{figures}</div>
<h2>Task completion per flow</h2>
<table><tr><th>flow</th><th>started</th><th>completed</th><th>rate</th><th>outcomes</th></tr>
{task_rows}</table>
<h2>By language</h2>
<table><tr><th>language</th><th>conversations</th><th>containment</th><th>handoff rate</th>
<th>fallback rate</th><th>CSAT</th><th>median agent wait (s)</th></tr>{lang_rows}</table>
<h2>By agent</h2>
<table><tr><th>agent</th><th>conversations</th><th>CSAT</th><th>answers</th>
<th>median wait for the first reply (s)</th></tr>{agent_rows}</table>
<h2>Intents needing training data</h2>
<p class="muted">Customer messages that fell to a fallback, were rephrased or ended in a handoff,
by intent (a fallback under its nearest intent).</p>
<table><tr><th>intent</th><th>messages</th><th>fallbacks</th><th>rephrased</th>
<th>handed off</th><th>share</th></tr>{intent_rows}</table>
</body></html>
"""


def write_report(engine: Engine, out_dir: Path, since: float, until: float) -> dict[str, Any]:
    """Write ``report.json`` and ``report.html`` into ``out_dir``; returns the numbers."""
    data = build(engine, since, until)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(
        json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (out_dir / "report.html").write_text(render_html(data, charts(data)), encoding="utf-8")
    return data
