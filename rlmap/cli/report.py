"""`rlmap report`: one self-contained HTML page from one or more results folders (summary.json + run.json).

The page needs no network: the figures are matplotlib PNGs embedded as base64 and the styles are inline; there
is no script.  It shows, for every run side by side: totals (with each run's EDP over the best one's of the same
network and architecture; an interrupted run is marked partial and not compared), per-layer
energy / latency / EDP, the energy breakdown per memory level and per tensor across the network, utilisation,
and search convergence (best-so-far objective vs evaluations, from the curves summary.json stores).
"""

from __future__ import annotations

import base64
import html
import io as _io
import json
import math
from pathlib import Path
from typing import Any, Optional

import typer

from rlmap.cli.results import load_results
from rlmap.cli.tables import count, eng
from rlmap.spec.errors import SpecError

COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974", "#64B5CD")
TENSOR_COLORS = {"inputs": "#4C72B0", "weights": "#DD8452", "outputs": "#55A868"}


def run_labels(runs: list[dict[str, Any]]) -> list[str]:
    """Short distinct names: the mapper (with its budget), and the folder name where two would be equal."""
    base = []
    for r in runs:
        label = str(r.get("mapper", "?"))
        if r.get("budget") is not None and label not in ("optimal", "policy"):
            label += f" ({r['budget']:,})" if isinstance(r["budget"], int) else f" ({r['budget']})"
        if label == "policy" and r.get("samples", 1) != 1:
            label += f" (best of {r['samples']})"
        base.append(label)
    return [f"{b} [{Path(r['_folder']).name}]" if base.count(b) > 1 else b for b, r in zip(base, runs)]


def _png(fig: Any) -> str:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _layer_names(runs: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for r in runs:
        for row in r["layers"]:
            if row["layer"] not in names:
                names.append(row["layer"])
    return names


def _value(run: dict[str, Any], layer: str, key: str) -> float:
    for row in run["layers"]:
        if row["layer"] == layer:
            v = row.get(key)
            return float(v) if v is not None else math.nan
    return math.nan


def per_layer_figure(runs: list[dict[str, Any]], labels: list[str]) -> str:
    """Grouped bars per layer: energy, latency (cycles), EDP and utilisation, one colour per run."""
    import matplotlib.pyplot as plt
    import numpy as np

    names = _layer_names(runs)
    unit = runs[0].get("energy_unit", "pJ")
    panels = (
        ("energy", f"energy ({unit})", True),
        ("cycles", "latency (cycles)", True),
        ("edp", f"EDP ({unit} x cycles)", True),
        ("utilization", "PE utilisation (%)", False),
    )
    width = max(8.0, 0.28 * len(names) * max(1, len(runs)) ** 0.5 + 2)
    fig, axes = plt.subplots(len(panels), 1, figsize=(width, 2.3 * len(panels)), sharex=True)
    x = np.arange(len(names))
    w = 0.8 / len(runs)
    for ax, (key, title, log) in zip(axes, panels):
        for j, (run, label) in enumerate(zip(runs, labels)):
            vals = np.array([_value(run, n, key) for n in names]) * (100 if key == "utilization" else 1)
            ax.bar(x + (j - (len(runs) - 1) / 2) * w, vals, w, label=label, color=COLORS[j % len(COLORS)])
        ax.set_ylabel(title, fontsize=8)
        if log:
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
        ax.tick_params(labelsize=7)
    handles, names_ = axes[0].get_legend_handles_labels()
    axes[-1].set_xticks(x, names, rotation=90, fontsize=6)
    fig.align_ylabels(axes)
    fig.tight_layout()
    fig.legend(handles, names_, fontsize=8, ncol=min(len(runs), 5), loc="lower left", bbox_to_anchor=(0.06, 1.0))
    return _png(fig)


def breakdown_figure(runs: list[dict[str, Any]], labels: list[str], by: str) -> str:
    """Energy per layer stacked by memory level (`by`='level', MAC included) or by tensor; one panel per run,
    plus the network totals (with repeats) side by side."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import EngFormatter

    names = _layer_names(runs)
    key = "energy_by_level" if by == "level" else "energy_by_tensor"
    parts: list[str] = []
    for r in runs:
        for row in r["layers"]:
            for p in row.get(key, {}):
                if p not in parts:
                    parts.append(p)
    colors = {p: TENSOR_COLORS.get(p, COLORS[i % len(COLORS)]) for i, p in enumerate(parts)}
    width = max(8.0, 0.22 * len(names) + 3)
    fig, axes = plt.subplots(
        len(runs),
        2,
        figsize=(width, 2.6 * len(runs)),
        squeeze=False,
        gridspec_kw={"width_ratios": [max(4, len(names) // 3), 1]},
    )
    unit = runs[0].get("energy_unit", "pJ")
    x = np.arange(len(names))
    for i, (run, label) in enumerate(zip(runs, labels)):
        ax, tot = axes[i]
        bottom = np.zeros(len(names))
        totals = []
        for p in parts:
            vals = np.array([_part(run, n, key, p) for n in names])
            ax.bar(x, vals, 0.8, bottom=bottom, label=p, color=colors[p])
            bottom += vals
            totals.append(sum(_part(run, row["layer"], key, p) * row.get("repeat", 1) for row in run["layers"]))
        ax.set_title(f"{label}: energy per layer by {by}", fontsize=9, loc="left")
        ax.set_ylabel(unit, fontsize=8)
        ax.yaxis.set_major_formatter(EngFormatter(sep=""))
        ax.tick_params(labelsize=7)
        ax.set_xticks(x, names if i == len(runs) - 1 else [""] * len(names), rotation=90, fontsize=6)
        ax.grid(axis="y", alpha=0.3)
        share = np.array(totals) / max(sum(totals), 1e-300) * 100
        tot.bar(range(len(parts)), share, color=[colors[p] for p in parts])
        tot.set_xticks(range(len(parts)), parts, rotation=45, fontsize=7, ha="right")
        tot.set_title("network total (%)", fontsize=9, loc="left")
        tot.set_ylim(0, 112)
        tot.tick_params(labelsize=7)
        for k, s in enumerate(share):
            tot.text(k, s + 2, f"{s:.0f}", ha="center", fontsize=7)
    handles, names_ = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names_, fontsize=8, ncol=len(parts), loc="lower left", bbox_to_anchor=(0.05, 1.0))
    fig.tight_layout()
    return _png(fig)


def _part(run: dict[str, Any], layer: str, key: str, part: str) -> float:
    for row in run["layers"]:
        if row["layer"] == layer:
            return float(row.get(key, {}).get(part, 0.0))
    return 0.0


def convergence_figure(runs: list[dict[str, Any]], labels: list[str]) -> str:
    """Best-so-far objective vs evaluations, per layer, divided by the best any run found for that layer
    (1 = the best known); one panel per run."""
    import matplotlib.pyplot as plt

    names = _layer_names(runs)
    best = {
        n: min(
            (p[1] for r in runs for row in r["layers"] if row["layer"] == n for p in row.get("curve", [])),
            default=math.nan,
        )
        for n in names
    }
    fig, axes = plt.subplots(1, len(runs), figsize=(max(6.0, 4.2 * len(runs)), 3.2), squeeze=False, sharey=True)
    for ax, run, label in zip(axes[0], runs, labels):
        drawn = 0
        seen: set[str] = set()
        for k, row in enumerate(run["layers"]):
            curve = row.get("curve") or []
            b = best.get(row["layer"], math.nan)
            shape = json.dumps(row.get("shape"), sort_keys=True)  # layers of one shape were searched once
            if not curve or not b > 0 or shape in seen:
                continue
            seen.add(shape)
            xs = [p[0] for p in curve]
            ys = [p[1] / b for p in curve]
            ax.step(xs, ys, where="post", lw=0.9, alpha=0.75, color=COLORS[k % len(COLORS)])
            ax.plot(xs[-1:], ys[-1:], "o", ms=2.5, color=COLORS[k % len(COLORS)])
            drawn += 1
        ax.set_title(f"{label} ({drawn} distinct layers)", fontsize=9, loc="left")
        ax.set_xlabel("cost-model evaluations", fontsize=8)
        ax.set_yscale("log")
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if drawn and max(p[0] for row in run["layers"] for p in (row.get("curve") or [[1, 1]])) > 50:
            ax.set_xscale("log")
    objective = runs[0].get("objective", "edp")
    axes[0][0].set_ylabel(f"best {objective} / best of all runs", fontsize=8)
    return _png(fig)


def _table(head: list[str], rows: list[list[str]], num_from: int = 1) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(f"<td class='{'num' if i >= num_from else 'name'}'>{html.escape(c)}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _problem(run: dict[str, Any]) -> tuple[str, str, str]:
    """What a run's numbers are numbers of: its network, architecture and modelling semantics.  Only runs of the
    same problem are compared (EDP / best); a ratio across networks or architectures means nothing."""
    return str(run.get("network")), str(run.get("arch")), str(run.get("semantics", "?"))


def _partial(run: dict[str, Any]) -> bool:
    """An interrupted run (summary.json `partial: true`): its totals cover only the layers mapped before Ctrl-C."""
    return bool(run.get("partial"))


def totals_table(runs: list[dict[str, Any]], labels: list[str]) -> str:
    """Totals per run; EDP / best compares each complete run with the best complete run of the same network,
    architecture and semantics ('-' for an interrupted run, whose totals miss layers, and for a run no other
    complete run shares its problem with)."""
    edps = [float(r["total"]["edp"]) for r in runs]
    best: dict[tuple[str, str, str], float] = {}
    complete: dict[tuple[str, str, str], int] = {}
    for r, edp in zip(runs, edps):
        if not _partial(r):
            key = _problem(r)
            complete[key] = complete.get(key, 0) + 1
            if math.isfinite(edp):
                best[key] = min(best.get(key, math.inf), edp)
    rows = []
    for r, label, edp in zip(runs, labels, edps):
        distinct = {json.dumps(row.get("shape"), sort_keys=True): row for row in r["layers"]}  # searched once
        evals = sum(int(row.get("evaluations", 0)) for row in distinct.values())
        secs = r.get("run", {}).get("seconds")
        found = sum(1 for row in r["layers"] if row.get("found", True))
        if _partial(r):
            total = r.get("layers_total")
            mapped = f"{found}/{total if isinstance(total, int) else '?'} (partial: interrupted)"
            ratio = "-"
        else:
            mapped = f"{found}/{len(r['layers'])}"
            b = best.get(_problem(r), math.nan)
            compared = complete[_problem(r)] > 1
            ratio = f"{edp / b:.3f}" if compared and b > 0 and math.isfinite(edp) else "-"
        rows.append(
            [
                label,
                r["network"],
                r["arch"],
                r.get("objective", "?"),
                eng(r["total"]["energy"]),
                eng(r["total"]["cycles"]),
                eng(edp),
                ratio,
                mapped,
                f"{evals:,}",
                "-" if secs is None else f"{secs:.1f}",
            ]
        )
    unit = runs[0].get("energy_unit", "pJ")
    return _table(
        [
            "run",
            "network",
            "arch",
            "objective",
            f"energy ({unit})",
            "cycles",
            "EDP",
            "EDP / best",
            "layers mapped",
            "evaluations",
            "seconds",
        ],
        rows,
        num_from=4,
    )


def layer_table(runs: list[dict[str, Any]], labels: list[str]) -> str:
    """Per-layer EDP of every run and its ratio to the best run on that layer among the runs of the same network,
    architecture and semantics (no ratio for a run no other run shares that problem with)."""
    names = _layer_names(runs)
    problems = [_problem(r) for r in runs]
    rows = []
    for n in names:
        vals = [_value(r, n, "edp") for r in runs]
        best: dict[tuple[str, str, str], float] = {}  # per network, architecture and semantics
        for key, v in zip(problems, vals):
            if math.isfinite(v):
                best[key] = min(best.get(key, math.inf), v)
        rep = next((row.get("repeat", 1) for r in runs for row in r["layers"] if row["layer"] == n), 1)
        cells = [n, str(rep)]
        for key, v in zip(problems, vals):
            ratio = f" ({v / best[key]:.2f}x)" if problems.count(key) > 1 and math.isfinite(v) and best[key] > 0 else ""
            cells.append(eng(v) + ratio if math.isfinite(v) else "none")
        rows.append(cells)
    return _table(["layer", "×", *[f"EDP {lab}" for lab in labels]], rows, num_from=1)


CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 24px auto; max-width: 1280px;
       color: #222; padding: 0 16px; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
p.meta { color: #555; font-size: 0.9em; margin: 0.2em 0; } code { background: #f3f3f3; padding: 0 3px; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e4e4e4; } th { background: #f5f5f5; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
img { max-width: 100%; height: auto; display: block; margin: 0.4em 0; }
.scroll { overflow-x: auto; }
"""


def render_report(runs: list[dict[str, Any]], title: str | None = None) -> str:
    """The whole HTML page for the loaded results (see `load_results`)."""
    import matplotlib

    matplotlib.use("Agg")
    labels = run_labels(runs)
    nets = sorted({r["network"] for r in runs})
    archs = sorted({r["arch"] for r in runs})
    title = title or f"rlmap report: {', '.join(nets)} on {', '.join(archs)}"
    units = sorted({r.get("energy_unit", "pJ") for r in runs})
    meta = []
    for r, label in zip(runs, labels):
        run = r.get("run", {})
        macs = sum(int(row.get("shape", {}).get("macs", 0)) * int(row.get("repeat", 1)) for row in r["layers"])
        line = (
            f"<b>{html.escape(label)}</b>: <code>{html.escape(run.get('command', '(command not recorded)'))}</code>"
            f" — rlmap {html.escape(str(r.get('rlmap_version', '?')))}"
            f"{', ' + html.escape(run['timestamp']) if run.get('timestamp') else ''}, "
            f"{count(macs, 'MACs')}, "
            f"semantics {html.escape(str(r.get('semantics', '?')))}, "
            f"folder <code>{html.escape(r['_folder'])}</code>"
        )
        meta.append(f"<p class='meta'>{line}</p>")
    note = (
        ""
        if len(units) == 1
        else f"<p class='meta'><b>note:</b> the runs use different energy units ({', '.join(units)}).</p>"
    )
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>",
        *meta,
        note,
        "<h2>Totals (with repeats)</h2>",
        totals_table(runs, labels),
        "<h2>Per layer: energy, latency, EDP, utilisation</h2>",
        f"<img alt='per-layer energy, latency, EDP and utilisation' "
        f"src='data:image/png;base64,{per_layer_figure(runs, labels)}'>",
        "<h2>Energy by memory level</h2>",
        f"<img alt='energy by level' src='data:image/png;base64,{breakdown_figure(runs, labels, 'level')}'>",
        "<h2>Energy by tensor (memory reads and writes; the MACs' energy is in the level breakdown)</h2>",
        f"<img alt='energy by tensor' src='data:image/png;base64,{breakdown_figure(runs, labels, 'tensor')}'>",
        "<h2>Search convergence</h2>",
        "<p class='meta'>Best-so-far objective after each cost-model evaluation, per layer, divided by the best any "
        "run found for that layer (1 = best known). The optimal mapper reports one point per chunk of tilings; a "
        "policy one point per sample.</p>",
        f"<img alt='search convergence' src='data:image/png;base64,{convergence_figure(runs, labels)}'>",
        "<h2>Per-layer EDP</h2>",
        f"<div class='scroll'>{layer_table(runs, labels)}</div>",
        "</body></html>",
    ]
    return "\n".join(parts)


def report_cmd(
    results: list[Path] = typer.Argument(
        ...,
        metavar="RESULTS_DIR",
        help="results folders written by `rlmap search -o` or `rlmap map -o` "
        "(or their summary.json); several are compared side by side",
    ),
    output: Path = typer.Option(Path("report.html"), "-o", "--output", help="HTML file to write"),
    title: Optional[str] = typer.Option(None, "--title", help="page title (default: the networks and architectures)"),
) -> None:
    """Write a self-contained HTML report (figures embedded, no network needed) of one or more mapping runs."""
    from rlmap.cli.common import console

    seen: dict[Path, Path] = {}
    for p in results:
        key = (p.parent if p.name == "summary.json" else p).resolve()
        if key in seen:
            raise SpecError(f"given twice (also as {seen[key]}): compare different runs", str(p))
        seen[key] = p
    runs = [load_results(p) for p in results]
    if output.exists() and output.is_dir():
        raise SpecError("is a directory; give an .html file name", str(output))
    if not output.parent.exists() or not output.parent.is_dir():
        raise SpecError(f"folder {output.parent} does not exist", str(output))
    page = render_report(runs, title)
    output.write_text(page, encoding="utf-8")
    console().print(f"wrote {output} ({len(page) / 1e3:.0f} kB, {len(runs)} run{'s' if len(runs) > 1 else ''})")
