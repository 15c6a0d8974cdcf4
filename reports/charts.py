"""Inline SVG line charts for the HTML report: no dependency, no script, no external file.

    svg = line_chart({"requests/s": [(0, 0), (1, 250.0), ...]}, {"p95 ms": [(1, 42.0), ...]},
                     title="...", left_label="requests/s", right_label="p95 (ms)",
                     markers={"load start": 1.0, "load stop": 11.0})

A series is a list of (x, y) points; y None leaves a gap. The left and right sets each get
their own y axis from 0. Every text is escaped: the SVG goes into the report as is.
"""

from __future__ import annotations

import math
from html import escape

LEFT_COLOURS = ("#1f77b4", "#2ca02c", "#17becf")
RIGHT_COLOURS = ("#d62728", "#9467bd", "#ff7f0e")
Series = dict[str, list[tuple[float, float | None]]]


def nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^k at or above `value` (an axis' top)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(power * m for m in (1, 2, 2.5, 5, 10) if power * m >= value)


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 10 or v == int(v) else f"{v:.1f}"


def line_chart(left: Series, right: Series | None = None, *, title: str = "", x_label: str = "time (s)",
               left_label: str = "", right_label: str = "", markers: dict[str, float] | None = None,
               width: int = 720, height: int = 260) -> str:
    right = right or {}
    markers = markers or {}
    ml, mr, mt, mb = 58, (58 if right else 16), 40, 40
    pw, ph = width - ml - mr, height - mt - mb
    xs = [x for s in (*left.values(), *right.values()) for x, _ in s] + list(markers.values())
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    x1 = x1 if x1 > x0 else x0 + 1

    def top(series: Series) -> float:
        return nice_max(max((y for s in series.values() for _, y in s if y is not None), default=0))

    ly, ry = top(left), top(right)

    def px(x: float) -> float:
        return ml + (x - x0) / (x1 - x0) * pw

    def py(y: float, ymax: float) -> float:
        return mt + ph - y / ymax * ph

    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11" role="img">'),
           f"<title>{escape(title)}</title>",
           f'<text x="{ml}" y="14" font-size="13" font-weight="bold">{escape(title)}</text>',
           f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for i in range(6):  # grid and y ticks: 0, 20, ..., 100 % of each axis
        y = mt + ph - i * ph / 5
        out.append(f'<line x1="{ml}" y1="{y:.1f}" x2="{ml + pw}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{ml - 4}" y="{y + 4:.1f}" text-anchor="end">{_fmt(ly * i / 5)}</text>')
        if right:
            out.append(f'<text x="{ml + pw + 4}" y="{y + 4:.1f}">{_fmt(ry * i / 5)}</text>')
    step = nice_max((x1 - x0) / 6)  # x ticks at round numbers
    for i in range(math.ceil(x0 / step), math.floor(x1 / step) + 1):
        out.append(f'<text x="{px(i * step):.1f}" y="{mt + ph + 14}" text-anchor="middle">{_fmt(i * step)}</text>')
    out.append(f'<text x="{ml + pw / 2}" y="{height - 6}" text-anchor="middle">{escape(x_label)}</text>')
    out.append(f'<text transform="translate(12 {mt + ph / 2}) rotate(-90)" text-anchor="middle" '
               f'fill="{LEFT_COLOURS[0]}">{escape(left_label)}</text>')
    if right:
        out.append(f'<text transform="translate({width - 8} {mt + ph / 2}) rotate(90)" text-anchor="middle" '
                   f'fill="{RIGHT_COLOURS[0]}">{escape(right_label)}</text>')
    for label, x in markers.items():
        out.append(f'<line x1="{px(x):.1f}" y1="{mt}" x2="{px(x):.1f}" y2="{mt + ph}" stroke="#555" '
                   f'stroke-dasharray="4 3"/>')
        near_right = px(x) > ml + 0.8 * pw  # the label goes left of the line there, inside the plot
        out.append(f'<text x="{px(x) + (-3 if near_right else 3):.1f}" y="{mt + 10}" fill="#555" '
                   f'text-anchor="{"end" if near_right else "start"}">{escape(label)}</text>')
    legend_x = ml
    for series, colours, ymax in ((left, LEFT_COLOURS, ly), (right, RIGHT_COLOURS, ry)):
        for (name, points), colour in zip(series.items(), colours * 3):
            for segment in _segments(points):
                coords = " ".join(f"{px(x):.1f},{py(y, ymax):.1f}" for x, y in segment)
                out.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.8"/>')
            out.append(f'<line x1="{legend_x}" y1="28" x2="{legend_x + 18}" y2="28" stroke="{colour}" '
                       f'stroke-width="2.5"/><text x="{legend_x + 22}" y="32">{escape(name)}</text>')
            legend_x += 30 + 7 * len(name)
    out.append("</svg>")
    return "".join(out)


def _segments(points: list[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    """Runs of points without a None y; a single point still shows as a dot-sized line."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in sorted(points, key=lambda p: p[0]):
        if y is None:
            runs.append([])
        else:
            runs[-1].append((x, y))
    return [r if len(r) > 1 else r * 2 for r in runs if r]


def load_chart(result, replicas: list[tuple[float, float]] | None = None) -> str:
    """Requests/s and p95 over a load run (a `load.harness.LoadResult`), load start/stop marked.

    With `replicas` ((t, count) on the same time axis), a second chart below: requests/s and replicas.
    """
    start, stop = result.load_window
    markers = {"load start": start, "load stop": stop}
    rps = {"requests/s": [(s.t_s, s.rps) for s in result.timeline]}
    chart = line_chart(rps, {"p95 latency (ms)": [(s.t_s, s.p95_ms) for s in result.timeline]},
                       title=f"Load: {result.shape}, {result.users} users, {result.duration_s} s",
                       left_label="requests/s", right_label="p95 (ms, last 2 s)", markers=markers)
    if replicas:
        chart += line_chart(rps, {"replicas": list(replicas)}, title="Replicas under load",
                            left_label="requests/s", right_label="replicas", markers=markers)
    return chart
