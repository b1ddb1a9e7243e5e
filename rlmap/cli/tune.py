"""`rlmap train --tune SWEEP.yaml -o OUT`: a Ray Tune sweep of training runs; trials table and the best trial."""

from __future__ import annotations

from pathlib import Path

from rlmap.spec.errors import SpecError


def tune_cmd(sweep: Path, output: Path | None, ray: str | None) -> None:
    """Run the sweep on Ray (--ray / $RLMAP_RAY_ADDRESS, default 'auto') and print every trial and the best."""
    import os

    from rich import box
    from rich.table import Table

    from rlmap.cli.common import console
    from rlmap.execution.backend import RAY_ADDRESS_ENV
    from rlmap.execution.ray_backend import RayBackend
    from rlmap.rl.tune import load_sweep, run_sweep

    if output is None:
        raise SpecError("missing: give -o runs/NAME, the sweep's folder (one run folder per trial inside)", "-o")
    cfg = load_sweep(sweep)  # fail early, before Ray starts
    out = console()
    with RayBackend(ray or os.environ.get(RAY_ADDRESS_ENV) or "auto") as backend:
        out.print(
            f"sweep {sweep}: {cfg.agent}, {len(cfg.seeds)} seed(s) x {cfg.samples} sample(s) of "
            f"{', '.join(cfg.search) or 'the base config'}; trials run on {backend.describe()}"
        )
        res = run_sweep(sweep, output, backend)
    t = Table(title=f"trials by {res['metric']} ({res['mode']})", box=box.SIMPLE_HEAVY, title_justify="left")
    for col in ("trial", "seed", "configuration", res["metric"], "steps"):
        t.add_column(col, justify="left" if col in ("trial", "configuration") else "right")
    for tr in res["trials"]:
        value = "failed: " + str(tr["error"]) if tr["metric"] is None else f"{tr['metric']:.4f}"
        conf = ", ".join(
            f"{k.removeprefix('hyperparams.')}={v:.4g}"
            if isinstance(v, float)
            else f"{k.removeprefix('hyperparams.')}={v}"
            for k, v in tr["config"].items()
        )
        mark = " (best)" if tr is res["best"] or tr["trial"] == res["best"]["trial"] else ""
        t.add_row(tr["trial"] + mark, str(tr["seed"]), conf, value, f"{tr['timesteps'] or 0:,}")
    out.print(t)
    best = res["best"]
    out.print(
        f"best: {best['trial']} ({res['metric']} {best['metric']:.4f}); policy: rlmap map --policy {best['run_dir']}; "
        f"TensorBoard of all trials: tensorboard --logdir {Path(output) / 'trials'}; "
        f"table: {Path(output) / 'sweep.json'}"
    )
