"""Run AccelForge's TCM (the FFM mapper, `map_workload_to_arch`) on one layer.  A script for AccelForge's own
interpreter (Python 3.12); benchmarks/optimal_vs_tcm.py runs it as a subprocess (with its time cap):

    <accelforge python> tcm_worker.py < job.json > result.json

Input: {"arch": TEXT, "workload": TEXT, "metric": "energy", "jobs": N or null} (YAML as rlmap's AccelForge
export writes them, the architecture without a mapping: bypassable tensors are `may_keep`; `jobs`: TCM's
parallel processes, null = AccelForge's default, one per CPU).  Output: {"accelforge": VERSION, "ok": true,
"jobs": N, "objective": TCM's own optimum, "energy": pJ, "latency": s, "map_s": wall seconds of
map_workload_to_arch, "map_cpu_s": this process's CPU seconds (not its workers'), "mapping": TEXT} or
{"ok": false, "error": ...}.  Energy and latency come from AccelForge's model evaluating the mapping TCM
chose (`evaluate_mapping`, as `map_workload_to_arch(eval_in_detail=True)` does, but outside the timed call):
with `eval_in_detail=False` the result holds only the optimised metric, so `result.latency()` is None.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import warnings
from copy import deepcopy


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    warnings.simplefilter("ignore")
    import accelforge as af
    from accelforge.frontend.mapper.metrics import Metrics
    from accelforge.mapper.FFM.main import map_workload_to_arch
    from accelforge.model.main import evaluate_mapping
    from accelforge.util import get_n_parallel_jobs

    job = json.load(sys.stdin)
    if job.get("jobs"):
        af.set_n_parallel_jobs(int(job["jobs"]))
    from importlib.metadata import version

    out: dict = {"accelforge": version("accelforge")}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for stem in ("arch", "workload"):
                path = os.path.join(tmp, f"{stem}.yaml")
                with open(path, "w") as fh:
                    fh.write(job[stem])
                paths.append(path)
            spec = af.Spec.from_yaml(*paths)
        spec.mapper.metrics = {
            "energy": Metrics.ENERGY,
            "latency": Metrics.LATENCY,
            "edp": Metrics.ENERGY_DELAY_PRODUCT,
        }[job.get("metric", "energy")]
        t0, c0 = time.perf_counter(), time.process_time()
        result = map_workload_to_arch(spec, eval_in_detail=False, print_progress=False)
        out.update(map_s=time.perf_counter() - t0, map_cpu_s=time.process_time() - c0, jobs=get_n_parallel_jobs())
        row = result.data.iloc[0]
        out["objective"] = float(next(v for k, v in row.items() if k.startswith("Total<SEP>") and "mapping" not in k))
        detail = deepcopy(spec)
        detail.model.metrics = spec.mapper.info_metrics
        detail.mapping = row["Total<SEP>mapping"](_for_model=True)
        result.data = evaluate_mapping(
            detail, flattened_arches=result.flattened_arches, evaluated_specs=result.evaluated_specs
        ).data
        out.update(ok=True, energy=float(result.energy()), latency=float(result.latency()))
        try:
            out["mapping"] = repr(result.mapping())[:20000]
        except Exception as exc:  # noqa: BLE001 - the numbers matter, the printout is a courtesy
            out["mapping"] = f"(not printable: {type(exc).__name__})"
    except Exception as exc:  # noqa: BLE001
        first = (str(exc).strip().splitlines() or [""])[0][:500]
        out.update(ok=False, error=f"{type(exc).__name__}: {first}")
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
