"""`rlmap surrogate dataset|train|eval`: build a dataset, train and evaluate a neural surrogate of the cost model.

Mounted lazily by rlmap.cli.app (these import torch); the work itself is in rlmap.surrogate.workflow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from rlmap.cli.common import check_at_most, check_output_dir, check_output_file, check_seed, console
from rlmap.cli.execution import open_backend, ray_option
from rlmap.spec.errors import SpecError
from rlmap.surrogate.model import default_checkpoint
from rlmap.surrogate.workflow import build_dataset, evaluate_surrogate, train_surrogate


def print_eval(result: dict[str, Any]) -> None:
    """The table `rlmap surrogate eval` prints."""
    from rich import box
    from rich.table import Table

    con = console()
    t = Table(box=box.SIMPLE_HEAD, title=f"surrogate {result['checkpoint']} on {result['arch']} (held-out networks)")
    for col in (
        "network",
        "layers",
        "samples",
        "Spearman mean",
        "Spearman min",
        "rank acc",
        "median |log2 EDP err|",
        "p90",
    ):
        t.add_column(col, justify="left" if col == "network" else "right")
    rows = list(result["per_network"].items()) + [
        ("all", {**result["overall"], "layers": result["layers"], "samples": result["samples"]})
    ]
    for name, m in rows:
        t.add_row(
            name,
            str(m["layers"]),
            f"{m['samples']:,}",
            f"{m['spearman_mean']:.4f}",
            f"{m['spearman_min']:.4f}",
            f"{m['pairwise_accuracy']:.4f}",
            f"{m['median_abs_log2_edp_error']:.4f}",
            f"{m['p90_abs_log2_edp_error']:.3f}",
        )
    con.print(t)
    if result["skipped_seen_layers"]:
        con.print(
            f"skipped {len(result['skipped_seen_layers'])} layers whose shape is in the training data "
            f"(--include-seen to keep them)"
        )
    con.print(
        "median |log2 EDP err| by sample source: "
        + ", ".join(f"{k} {v:.3f}" for k, v in result["median_abs_log2_edp_error_by_source"].items())
        + f"; Spearman among each layer's best 10%: {result['top10pct_spearman_mean']:.3f}"
    )


MAX_DATASET_SAMPLES = 10_000_000
"""Most scored mappings one `surrogate dataset` or `surrogate eval` run takes (they are held in memory)."""

surrogate_app = typer.Typer(
    help="Learned surrogate cost models: build a dataset, train, evaluate.", no_args_is_help=True
)


@surrogate_app.command("dataset")
def dataset_cmd(
    arch: list[str] = typer.Option(
        ..., "--arch", help="architecture preset or YAML (repeat or comma-separate for several)"
    ),
    networks: Optional[list[str]] = typer.Option(
        None, "--networks", help="network presets/files (repeat or comma-separate)"
    ),
    synthetic: int = typer.Option(0, "--synthetic", help="extra random realistic layers"),
    samples: int = typer.Option(100_000, "--samples", help="total scored mappings, split evenly over layers"),
    out: Path = typer.Option(Path("data/surrogate"), "-o", "--out", help="output folder (or .npz path)"),
    exclude: Optional[list[str]] = typer.Option(
        None, "--exclude", help="networks whose layer shapes must not be used (held-out)"
    ),
    backend: str = typer.Option(
        "builtin", "--backend", help="'builtin' or 'module:function' returning (energy, cycles)"
    ),
    workers: int = typer.Option(1, "--workers", help="worker processes (with --ray: most shards in flight)"),
    ray: Optional[str] = ray_option("--workers"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Sample (layer, architecture, mapping) -> cost with random valid mappings and mapper elites."""
    from rlmap.spec.errors import EXIT_INTERRUPTED, Interrupted

    check_at_most(samples, MAX_DATASET_SAMPLES, "--samples", "the dataset is built in memory before it is written")
    check_seed(seed)
    (check_output_file if out.suffix == ".npz" else check_output_dir)(out, "-o")
    if workers < 1:
        raise SpecError(f"must be >= 1, got {workers}", "--workers")
    with open_backend(workers, ray) as executor:
        try:
            build_dataset(
                arch,
                networks or [],
                samples,
                out,
                synthetic=synthetic,
                seed=seed,
                backend=backend,
                workers=workers,
                exclude=exclude,
                executor=executor if executor.name != "local" else None,
            )
        except Interrupted:  # build_dataset has saved what was finished and said so
            raise typer.Exit(EXIT_INTERRUPTED) from None


@surrogate_app.command("train")
def train_cmd(
    data: list[Path] = typer.Option(..., "--data", help="dataset .npz or folder (repeatable)"),
    out: Path = typer.Option(Path("runs/surrogate"), "-o", "--out", help="output folder for model.pt / last.pt / tb"),
    epochs: int = typer.Option(40, "--epochs"),
    batch_size: int = typer.Option(512, "--batch-size"),
    lr: float = typer.Option(2e-3, "--lr"),
    hidden: int = typer.Option(128, "--hidden", help="width of the hidden layers"),
    depth: int = typer.Option(3, "--depth", help="number of hidden layers"),
    val_frac: float = typer.Option(0.1, "--val-frac", help="fraction of layers held out for validation"),
    resume: bool = typer.Option(False, "--resume", help="continue from OUT/last.pt"),
    log_dir: Optional[Path] = typer.Option(None, "--log-dir", help="TensorBoard folder (default OUT/tb)"),
    threads: int = typer.Option(
        1, "--threads", help="torch threads (1 is fastest on a small shared CPU; 0 = torch default)"
    ),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train the surrogate (log energy and log cycles) with TensorBoard logs and resumable checkpoints."""
    import shlex
    import sys

    check_seed(seed)
    check_output_dir(out, "-o")
    if log_dir is not None:
        check_output_dir(log_dir, "--log-dir")
    train_surrogate(
        data,
        out,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        hidden=hidden,
        depth=depth,
        val_frac=val_frac,
        seed=seed,
        resume=resume,
        log_dir=log_dir,
        threads=threads,
        command=shlex.join(sys.argv),
    )


@surrogate_app.command("eval")
def eval_cmd(
    checkpoint: Optional[Path] = typer.Option(
        None, "--checkpoint", help="model.pt or its folder", show_default="the shipped eyeriss surrogate"
    ),
    networks: list[str] = typer.Option(..., "--networks", help="held-out networks (repeat or comma-separate)"),
    arch: str = typer.Option("eyeriss", "--arch"),
    samples: int = typer.Option(1000, "--samples", help="mappings per layer"),
    include_seen: bool = typer.Option(False, "--include-seen", help="also layers whose shape was in the training data"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the metrics as JSON"),
    backend: str = typer.Option("builtin", "--backend"),
    workers: int = typer.Option(1, "--workers"),
    seed: int = typer.Option(12345, "--seed"),
) -> None:
    """Spearman of predicted vs true EDP per layer and median |log2 EDP error| on held-out networks."""
    check_at_most(samples, MAX_DATASET_SAMPLES, "--samples", "every scored mapping is held in memory")
    check_seed(seed)
    check_output_file(json_out, "--json")
    res = evaluate_surrogate(
        checkpoint or default_checkpoint(),
        networks,
        arch=arch,
        samples_per_layer=samples,
        seed=seed,
        include_seen=include_seen,
        backend=backend,
        workers=workers,
    )
    print_eval(res)
    if json_out is not None:
        from rlmap.spec.outputs import atomic_write_text

        atomic_write_text(json_out, json.dumps(res, indent=2, default=float))
