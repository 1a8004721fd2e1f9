"""Audit wall time per unlearning method on the quickstart world, and which attacks dominate it.

    python benchmarks/bench_audit.py [--methods idk_sft,npo] [--grid default|quick] [--threads 2]

Builds (or reuses) the quickstart target and oracle, attacks the oracle once (the shared
control, as the experiment runner does), then unlearns with each method (cached in the output
folder) and audits it. Reports per method: total audit wall time (model side; the control is
reported once) and process CPU seconds (all threads; comparable when the machine is shared),
per-attack seconds, the verdict and worst-case recovery. Writes
benchmarks/results/bench_audit.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from common import peak_rss_mb, write_result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="idk_sft,npo", help="comma-separated registered methods")
    ap.add_argument("--guards", default="system_prompt", help="comma-separated guards ('' for none)")
    ap.add_argument("--grid", default="default", help="attack grid: default | quick")
    ap.add_argument("--seeds", default="0,1,2", help="attack seeds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="/tmp/obliviate-bench-audit", help="scratch folder")
    args = ap.parse_args()

    import torch

    from obliviate.attacks.audit import attack_model, audit
    from obliviate.data.world import QUICKSTART, build_and_save
    from obliviate.train.finetune import build_target_and_oracle

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    world = build_and_save(QUICKSTART, out / "world")
    world_dir = out / "world"
    target, oracle = build_target_and_oracle(world_dir, progress=print)
    cfg = {"seeds": [int(s) for s in args.seeds.split(",")]}

    t0, c0 = time.perf_counter(), time.process_time()
    control = out / f"control-{args.grid}.json"
    log = attack_model(oracle, world_dir, args.grid, target=target, config=cfg, out=control, progress=print)
    control_s, control_cpu = time.perf_counter() - t0, time.process_time() - c0
    result: dict[str, Any] = {
        "grid": args.grid, "seeds": cfg["seeds"], "threads": args.threads,
        "control": {"wall_s": control_s, "cpu_s": control_cpu,
                    "per_attack_s": {k.removesuffix("_s"): v for k, v in log.perf.items() if not k.endswith("_cpu_s")}},
        "models": {},
    }
    models: dict[str, Any] = {}
    for m in [x for x in args.methods.split(",") if x]:
        from obliviate.unlearn import unlearn

        d = out / f"unlearn-{m}"
        if not (d / "config.json").is_file():
            unlearn(m, str(target), world_dir, d)
        models[m] = str(d)
    for g in [x for x in args.guards.split(",") if x]:
        from obliviate.methods.guards.base import make_guard
        from obliviate.models.hf_lm import HFLM

        models[f"guard:{g}"] = make_guard(g, HFLM.from_pretrained(str(target)), world)
    for name, model in models.items():
        t1, c1 = time.perf_counter(), time.process_time()
        res = audit(model, world_dir, args.grid, target=target, oracle=oracle, config=cfg | {"cache": False},
                    control=control, out_dir=out / f"audit-{name.replace(':', '-')}", progress=print)
        wall, cpu = time.perf_counter() - t1, time.process_time() - c1
        per = {k: v["model_s"] for k, v in res.timings.items()}
        per_cpu = {k: v.get("model_cpu_s", float("nan")) for k, v in res.timings.items()}
        result["models"][name] = {
            "wall_s": wall, "cpu_s": cpu, "per_attack_s": dict(sorted(per.items(), key=lambda kv: -kv[1])),
            "per_attack_cpu_s": per_cpu,
            "verdict": res.verdict, "broken_by": res.broken_by,
            "worst_recovery": res.worst.recovery_raw if res.worst else None,
            "worst_ci95": res.worst.ci95_raw if res.worst else None,
        }
        print(f"{name}: {wall:.0f} s, {res.verdict} ({res.broken_by}); slowest: "
              + ", ".join(f"{k} {v:.0f}s" for k, v in list(result['models'][name]['per_attack_s'].items())[:4]))
    result["peak_rss_mb"] = peak_rss_mb()
    write_result("bench_audit", result)


if __name__ == "__main__":
    main()
