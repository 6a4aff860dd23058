"""The drift report as one self-contained HTML page: a summary table and an inline SVG plot
of the reference and current distributions per column. No scripts, no external files; about
4 KB per column."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from jinja2 import Environment
from markupsafe import Markup, escape

from ferryml.monitoring._stats import OTHER

if TYPE_CHECKING:
    from ferryml.monitoring.drift import ColumnDrift, DriftReport

WIDTH, HEIGHT, PAD = 420, 130, 4
LABEL_ROOM = 56  # below categorical bars, for the slanted labels
REF_COLOR, CUR_COLOR = "#4c78a8", "#f58518"

_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 8px}
.verdict{padding:10px 14px;border-radius:6px;margin:8px 0 16px;display:inline-block}
.drift{background:#fde2e1;color:#8a1c14}.ok{background:#e3f4e1;color:#1d5c19}
table{border-collapse:collapse;margin-bottom:24px}
th,td{padding:4px 8px;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
th:first-child,td:first-child,td.l{text-align:left}
tr.d td:first-child{font-weight:600;color:#8a1c14}
.cards{display:flex;flex-wrap:wrap;gap:16px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 10px;width:{{ width }}px}
.card h3{font-size:14px;margin:0 0 2px}.card p{margin:2px 0;font-size:12px;color:#555}
.key span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
</style></head><body>
<h1>{{ title }}</h1>
<div class="verdict {{ 'drift' if report.dataset_drift else 'ok' }}">
Dataset drift {{ 'detected' if report.dataset_drift else 'not detected' }}:
{{ report.drifted_columns|length }} of {{ report.columns|length }} columns drifted
({{ '%.1f'|format(100 * report.drift_share) }}%; threshold
{{ '%.0f'|format(100 * report.share_threshold) }}%).
{% if report.prediction_drift is not none %}Prediction drift
{{ 'detected' if report.prediction_drift else 'not detected' }}.{% endif %}
</div>
<p>Reference: {{ '{:,}'.format(report.reference_rows) }} rows. Current:
{{ '{:,}'.format(report.current_rows) }} rows.
<span class="key"><span style="background:{{ ref_color }}"></span>reference
<span style="background:{{ cur_color }}"></span>current</span></p>
{% for heading, rows in sections %}{% if rows %}
<h2>{{ heading }}</h2>
<table><tr><th>column</th><th>kind</th><th>test</th><th>statistic</th><th>p-value</th>
<th>threshold</th><th>drift</th><th>missing (ref → cur)</th><th>out of range</th>
<th>new categories</th></tr>
{% for c in rows %}<tr class="{{ 'd' if c.drift_detected }}">
<td><a href="#c-{{ loop.index }}-{{ heading }}">{{ c.column }}</a></td>
<td class="l">{{ c.kind }}</td>
<td class="l">{{ c.test or '—' }}{% if c.test and not c.exact %} (binned){% endif %}</td>
<td>{{ num(c.statistic) }}</td><td>{{ num(c.p_value) }}</td><td>{{ num(c.threshold) }}</td>
<td>{{ 'yes' if c.drift_detected else 'no' }}</td>
<td>{{ pct(c.reference_missing_rate) }} → {{ pct(c.current_missing_rate) }}</td>
<td>{{ pct(c.out_of_range_share) }}</td>
<td class="l">{{ news(c) }}</td></tr>
{% endfor %}</table>
<div class="cards">{% for c in rows %}
<div class="card" id="c-{{ loop.index }}-{{ heading }}"><h3>{{ c.column }}</h3>
<p>{{ c.test or 'no test' }} {{ num(c.statistic) }}{% if c.p_value is not none %}, p =
{{ num(c.p_value) }}{% endif %} — {{ 'drift' if c.drift_detected else 'no drift' }}</p>
{{ plot(c) }}{% if c.note %}<p>{{ c.note }}</p>{% endif %}</div>{% endfor %}
</div>{% endif %}{% endfor %}
</body></html>
"""


def render(report: DriftReport, title: str) -> str:
    """The page for ``report``."""
    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(_TEMPLATE)
    sections = [
        ("Features", list(report.columns.values())),
        ("Predictions", list(report.prediction.values())),
    ]
    return template.render(
        title=title,
        report=report,
        sections=sections,
        width=WIDTH,
        ref_color=REF_COLOR,
        cur_color=CUR_COLOR,
        num=_num,
        pct=_pct,
        news=_news,
        plot=_plot,
    )


def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.4g}"


def _pct(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{100 * value:.1f}%" if value >= 0.001 or value == 0 else f"{100 * value:.2g}%"


def _news(c: ColumnDrift) -> str:
    if c.kind != "categorical":
        return "—"
    if c.new_category_share is None:
        return "unknown"
    if not c.new_categories:
        return "none"
    shown = ", ".join(c.new_categories[:3]) + (" …" if len(c.new_categories) > 3 else "")
    return f"{_pct(c.new_category_share)}: {shown}"


def _plot(c: ColumnDrift) -> Markup:
    if c.edges:
        return _numeric_plot(c)
    if c.categories:
        return _categorical_plot(c)
    return Markup("")


def _svg(height: int, body: list[str]) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-size="10" font-family="sans-serif">'
    )
    return Markup(head + "".join(body) + "</svg>")


def _numeric_plot(c: ColumnDrift) -> Markup:
    """Densities over the reference's bins (true x scale); out-of-range shares as text."""
    edges = c.edges[1:-1]
    ref, cur = c.reference_shares[1:-1], c.current_shares[1:-1]
    low, high = edges[0], edges[-1]
    span = high - low if high > low else 1.0
    if high <= low:
        low, high = low - 0.5, low + 0.5
    minimum = span / 100  # a zero-width bin (a repeated value) is drawn this wide
    widths = [max(b - a, minimum) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    dens = [(r / w, k / w) for r, k, w in zip(ref, cur, widths, strict=True)]
    top = max((max(pair) for pair in dens), default=0.0) or 1.0
    plot_h = HEIGHT - 16
    scale_x = (WIDTH - 2 * PAD) / (high - low + minimum)
    body = []
    for (a, w), (r, k) in zip(zip(edges[:-1], widths, strict=True), dens, strict=True):
        x, bar = PAD + (a - low) * scale_x, max(w * scale_x, 0.8)
        for value, color, opacity in ((r, REF_COLOR, "0.55"), (k, CUR_COLOR, "0.45")):
            h = value / top * plot_h
            if h > 0:
                body.append(
                    f'<rect x="{x:.1f}" y="{plot_h - h:.1f}" width="{bar:.1f}" '
                    f'height="{h:.1f}" fill="{color}" fill-opacity="{opacity}"/>'
                )
    body.append(f'<line x1="0" y1="{plot_h}" x2="{WIDTH}" y2="{plot_h}" stroke="#999"/>')
    body.append(f'<text x="{PAD}" y="{HEIGHT - 3}">{escape(_num(edges[0]))}</text>')
    body.append(
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 3}" text-anchor="end">'
        f"{escape(_num(edges[-1]))}</text>"
    )
    below, above = c.current_shares[0], c.current_shares[-1]
    if below or above:
        note = f"current below min {_pct(below)}, above max {_pct(above)}"
        body.append(
            f'<text x="{WIDTH / 2:.0f}" y="{HEIGHT - 3}" text-anchor="middle" '
            f'fill="#8a1c14">{escape(note)}</text>'
        )
    return _svg(HEIGHT, body)


def _categorical_plot(c: ColumnDrift) -> Markup:
    """Side-by-side bars of each category's share, labels slanted below. The y scale fits
    the named categories; a taller bar (the summed rest, usually) is cut and labelled."""
    n = len(c.categories)
    plot_h = HEIGHT - 8
    slot = (WIDTH - 2 * PAD) / n
    bar = max(slot * 0.4, 0.8)
    pairs = list(zip(c.categories, c.reference_shares, c.current_shares, strict=True))
    named = [max(r, k) for label, r, k in pairs if label != OTHER]
    top = max(named or [max(r, k) for _, r, k in pairs]) or 1.0
    body = []
    for i, (label, r, k) in enumerate(pairs):
        x = PAD + i * slot + slot * 0.1
        for j, (value, color) in enumerate(((r, REF_COLOR), (k, CUR_COLOR))):
            h = min(value / top, 1.0) * plot_h
            if h > 0:
                body.append(
                    f'<rect x="{x + j * bar:.1f}" y="{plot_h - h:.1f}" width="{bar:.1f}" '
                    f'height="{h:.1f}" fill="{color}"/>'
                )
            if value > top:
                body.append(
                    f'<text x="{x + j * bar:.1f}" y="{10 + 10 * j}" text-anchor="end" '
                    f'fill="{color}">{escape(_pct(value))}</text>'
                )
        short = label if len(label) <= 14 else label[:13] + "…"
        body.append(
            f'<text transform="translate({x + bar:.1f},{plot_h + 10}) rotate(35)">'
            f"{escape(short)}<title>{escape(label)}</title></text>"
        )
    body.append(f'<line x1="0" y1="{plot_h}" x2="{WIDTH}" y2="{plot_h}" stroke="#999"/>')
    return _svg(HEIGHT + LABEL_ROOM, body)
