"""Tables and number formats that fit an 80-column terminal, and consoles that never pad piped output.

Numbers are printed with an SI prefix and four significant digits (`eng`: 862.7M, 1.502P), so a
per-layer row of energy, cycles, EDP, utilisation and evaluations fits beside a wrapped layer name at
80 columns without rich cutting a number to `8.58935…`.  Numeric columns never wrap or truncate; only
name columns fold.  Piped output is neither wrapped nor padded: the console is as wide as the widest
line, and trailing blanks are stripped line by line.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any, TextIO, cast

from rich import box
from rich.console import Console
from rich.table import Table

SI_PREFIXES = ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
TENSOR_SHORT = {"inputs": "I", "weights": "W", "outputs": "O"}
"""One-letter tensor names of table headers."""
PIPE_WIDTH = 10_000  # piped output: as wide as the content (trailing blanks stripped), never wrapped or cut


def eng(x: float, digits: int = 4) -> str:
    """`x` with an SI prefix and `digits` significant digits: 862.7M, 1.5P, 0.5357, inf."""
    x = float(x)
    if not math.isfinite(x):
        return "nan" if math.isnan(x) else ("-inf" if x < 0 else "inf")
    if abs(x) < 1e3:
        return f"{x:.{digits}g}"
    for scale, prefix in reversed(SI_PREFIXES):  # k, M, G, ...: the first whose mantissa stays below 1000
        text = f"{x / scale:.{digits}g}"
        if abs(float(text)) < 1000:
            return text + prefix
    return f"{x:.{digits - 1}e}"


def exact(x: float) -> str:
    """Integers with thousands separators, other numbers with six significant digits."""
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:.6g}"


def count(n: float, unit: str) -> str:
    """A count with a unit that fits: '1,024 MACs', '23.59 MMACs', '1.814 GMACs' (never '0.000 GMACs')."""
    if abs(n) < 1e4:
        return f"{n:,.0f} {unit}"
    text = eng(n)
    return f"{text[:-1]} {text[-1]}{unit}" if text[-1].isalpha() else f"{text} {unit}"


def energy_unit(arch: Any) -> str:
    """The unit of the architecture's energies ('pJ', or 'MAC-eq' for presets normalized to one MAC)."""
    return str(getattr(arch, "energy_unit", "pJ") or "pJ")


class TrimmedLines:
    """A text stream wrapper that strips trailing blanks from every line (rich pads cells to the table width)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self.stream.write(line.rstrip() + "\n")
        return len(text)

    def flush(self) -> None:
        if self._pending:  # rich ends each print with a newline; anything else is written as it is
            self.stream.write(self._pending)
            self._pending = ""
        self.stream.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def make_console(stderr: bool = False) -> Console:
    """A rich console on the *current* stdout/stderr (so test runners capture it).

    On a terminal: its width.  Piped: $COLUMNS if set, else as wide as the content; never padded."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(file=stream, highlight=False, soft_wrap=False)
    cols = os.environ.get("COLUMNS", "")
    width = int(cols) if cols.isdigit() and int(cols) > 0 else PIPE_WIDTH
    return Console(
        file=cast(TextIO, TrimmedLines(stream)),  # a TextIO: it passes every other attribute to `stream`
        width=width,
        highlight=False,
        soft_wrap=False,
        force_terminal=False,
        force_jupyter=False,
        color_system=None,
    )


def new_table(title: str | None = None) -> Table:
    return Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left", pad_edge=False, collapse_padding=True)


def num_column(table: Table, header: str) -> None:
    """A right-aligned numeric column that never wraps or truncates (its header may wrap)."""
    table.add_column(header, justify="right", no_wrap=True, overflow="fold")


def name_column(table: Table, header: str, min_width: int = 8) -> None:
    """A left-aligned name column that folds long names over several lines instead of cutting them."""
    table.add_column(header, justify="left", overflow="fold", min_width=min_width)


def network_table(res: Any, unit: str) -> Table:
    """Per-layer table of a NetworkResult: energy, cycles, EDP, utilisation, evaluations (and 'optimal' when
    the optimal mapper ran), sized for an 80-column terminal.  No title: rich would wrap it to the table's width."""
    t = new_table()
    name_column(t, "layer")
    num_column(t, "×")
    for header in (f"energy\n{unit}", "cycles", "EDP", "util\n%", "evals"):
        num_column(t, header)
    show_proof = any(r.proven_optimal or r.notes.get("gap_to_bound") is not None for r in res.results)
    if show_proof:
        num_column(t, "optimal")
    for lyr, r in zip(res.layers, res.results):
        c = r.cost
        proof = []
        if show_proof:
            gap = r.notes.get("gap_to_bound")
            proof = ["proven" if r.proven_optimal else (f"≤{gap:.3g}x" if gap is not None else "-")]
        if c is None:
            t.add_row(lyr.name, str(lyr.repeat), "none valid", "-", "-", "-", f"{r.evaluations:,}", *proof)
            continue
        t.add_row(
            lyr.name,
            str(lyr.repeat),
            eng(c.energy),
            eng(c.cycles),
            eng(c.edp),
            f"{c.utilization * 100:.1f}",
            f"{r.evaluations:,}",
            *proof,
        )
    return t


EXACT_WIDTH = 120
"""Consoles at least this wide get exact numbers in `rlmap eval`'s table (access counts in words, 6 digits);
narrower ones SI-prefixed numbers, so the table fits 80 columns."""


def eval_table(cost: Any, arch: Any, width: int = EXACT_WIDTH) -> Table:
    """`rlmap eval`'s table: reads and writes of each tensor at each level, energy, share and bandwidth cycles."""
    from rlmap.spec.problem import TENSORS

    num = exact if width >= EXACT_WIDTH else eng  # access counts
    val = (lambda x: f"{x:.6g}") if width >= EXACT_WIDTH else eng  # energies and cycles

    t = new_table("accesses (words of each level) and energy")
    name_column(t, "level", min_width=4)
    for tensor in TENSORS:
        num_column(t, f"{TENSOR_SHORT[tensor]}\nreads")
        num_column(t, f"{TENSOR_SHORT[tensor]}\nwrites")
    for header in (f"energy\n{energy_unit(arch)}", "share\n%", "cycles\n(bw)"):
        num_column(t, header)
    total = cost.energy if cost.energy > 0 else 1.0
    for i, lvl in enumerate(arch.levels):
        cells = []
        for v in range(len(TENSORS)):
            kept = TENSORS[v] in lvl.keeps
            cells += [num(cost.reads[i][v]) if kept else "-", num(cost.writes[i][v]) if kept else "-"]
        cyc = cost.level_cycles[i] if i < len(cost.level_cycles) else 0.0
        t.add_row(
            lvl.name,
            *cells,
            val(cost.level_energy[i]),
            f"{cost.level_energy[i] / total * 100:.1f}",
            val(cyc) if lvl.bandwidth is not None else "-",
        )
    t.add_row(
        "MAC", *([""] * 6), val(cost.mac_energy), f"{cost.mac_energy / total * 100:.1f}", val(cost.compute_cycles)
    )
    t.add_row("total", *([""] * 6), val(cost.energy), "100.0", val(cost.cycles))
    return t
