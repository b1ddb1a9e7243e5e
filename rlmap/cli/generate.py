"""`rlmap generate`: write seeded random but plausible accelerators (rlmap.hardware.generator) as YAML."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from rlmap.spec.errors import SpecError

MAX_COUNT = 10_000
"""Most architectures one `rlmap generate` writes (or prints): -n beyond it is refused before any work."""


def generate_cmd(
    count: int = typer.Option(
        1, "--count", "-n", help=f"how many architectures, 1 to {MAX_COUNT:,} (seeds --seed .. --seed + N - 1)"
    ),
    seed: int = typer.Option(0, "--seed", "-s", help="first generator seed; a seed always gives the same architecture"),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output", help="folder for genSEED.yaml files (default: print the YAML)"
    ),
    force: bool = typer.Option(False, "--force", help="overwrite existing files"),
) -> None:
    """Generate accelerators: 3-4 storage levels, 4x4..64x64 PE arrays, dataflow limits, shared or partitioned
    buffers, bandwidths, 45 nm energies that grow with capacity (docs/hardware.md), sometimes sparse features.

    Training uses seeds 1000 and up (`rlmap train --generated N`); envs/generated holds seeds 0-7, held out,
    loadable by name (`--arch gen3`).
    """
    import yaml

    from rlmap.cli.common import check_at_most, check_output_dir, console
    from rlmap.hardware.generator import generate_architecture, generate_spec, generated_name

    if count <= 0:
        raise SpecError(f"must be >= 1, got {count}", "-n/--count")
    check_at_most(count, MAX_COUNT, "-n/--count", "generate them in several runs (--seed picks where each starts)")
    if seed < 0:
        raise SpecError(f"must be >= 0, got {seed}", "--seed")
    seeds = range(seed, seed + count)
    if output is None:
        for s in seeds:
            sys.stdout.write(yaml.safe_dump(generate_spec(s), sort_keys=False) + ("---\n" if s != seeds[-1] else ""))
        return
    from rich.table import Table

    from rlmap.spec.io import save_architecture

    check_output_dir(output)
    output.mkdir(parents=True, exist_ok=True)
    files = {s: output / f"{generated_name(s)}.yaml" for s in seeds}
    clash = [f for f in files.values() if f.exists()]
    if clash and not force:
        raise SpecError(f"{clash[0].name} exists (pass --force to overwrite)", str(output))
    table = Table("file", "levels", "MACs", "bits", "sparse", "description")
    for s in seeds:
        arch = generate_architecture(s)
        path = save_architecture(arch, files[s])
        table.add_row(
            str(path),
            str(arch.n_levels),
            f"{arch.num_pes:,}",
            str(arch.data_bits),
            arch.compute.sparse,
            arch.description.split(": ", 1)[1],
        )
    console().print(table)
