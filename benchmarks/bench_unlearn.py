"""Unlearning benchmarks on this machine (not tests).

    python benchmarks/bench_unlearn.py speed   [--steps 4] [--methods npo rmu ...]
    python benchmarks/bench_unlearn.py quality [--methods ...] [--world DIR] [--seeds 0 1 2]

speed: training tokens/s of each method's unlearning steps on the bundled SmolLM2-135M with the
quickstart world, and the fraction of this machine's measured bf16 matmul peak it reaches, at
the usual 6·N FLOPs per token (N = non-embedding parameters, LM head counted once). Methods that
do more or less work per token than a plain fine-tuning step are noted (a reference forward for
KL, RMU's forward that stops at layer l, ULD's small assistant), so "MFU" is only comparable
between methods of the same shape.

quality: each method with its tuned defaults on the quickstart target (fine-tuned on forget +
retain), then fact accuracy (the key span in the greedy chat answer, the evaluation suite's own
`fact_accuracy`) on the forget facts, the retain + neighbour facts and every general-knowledge
question (or the first `--general N`), next to the base model, the target and the oracle. The
bar for NPO (+retain NLL), SimNPO, GradDiff, RMU and IdK-DPO: forget <= 30%, retain >= 75%,
general >= 90% of the base, on every seed (`--seeds`; the mean and the worst seed are reported).
With `--methods`, the results file keeps the other methods' rows when they were measured on the
same target and seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import matmul_peak_gflops, non_embedding_params, train_flops_per_token, write_result

BAR_METHODS = ("npo", "simnpo", "grad_diff", "rmu", "idk_dpo")
SHAPE_NOTES = {
    "rmu": "forward stops at layer l; only 3 down-projections get weight gradients (< 6N FLOPs/token)",
    "uld": "trains a quarter-depth assistant (< 6N FLOPs/token of the target)",
    "whp": "prepare also fine-tunes a reinforced copy (not in tokens/s)",
    "undial": "prepare runs one reference pass over the forget set (not in tokens/s)",
}


def quickstart_world(path: str | None) -> Path:
    from obliviate.data.world import QUICKSTART, build_and_save
    from obliviate.paths import home

    if path:
        return Path(path)
    out = home() / "worlds" / "quickstart"
    if not (out / "world.json").is_file():
        build_and_save(QUICKSTART, out)
    return out


def fact_accuracies(lm: Any, world: Any, n_general: int | None = None) -> dict[str, float]:
    """Fact accuracy of greedy answers on forget, retain (+ neighbour) and the first `n_general`
    (None: all) general questions."""
    from obliviate.data.world import load_general
    from obliviate.evals.metrics.knowledge import fact_accuracy
    from obliviate.evals.suites.base import answer_questions

    general = (world.general or load_general())[:n_general]
    sets = {"forget": world.forget_facts, "retain": world.retain_facts, "general": general}
    # One generate call: greedy decoding steps cost about the same for 1 row as for a batch.
    answers = iter(answer_questions(lm, [it.question for items in sets.values() for it in items]))
    out: dict[str, float] = {}
    for split, items in sets.items():
        out[split] = sum(fact_accuracy(next(answers), it.key) for it in items) / len(items)
    return out


def lm_for(model_dir: Path) -> Any:
    from obliviate.methods.uld_model import is_uld_dir
    from obliviate.models.hf_lm import HFLM

    if is_uld_dir(model_dir):
        from obliviate.methods.guards.uld import ULD

        return ULD.from_dir(model_dir)
    return HFLM.from_pretrained(str(model_dir))


def speed(args: argparse.Namespace) -> None:
    from obliviate.data.schema import load_world
    from obliviate.models.load import load_model
    from obliviate.registry import methods
    from obliviate.unlearn import unlearn

    torch.set_num_threads(args.threads)
    peak = matmul_peak_gflops(torch.bfloat16)
    world = load_world(quickstart_world(args.world))
    base = load_model(args.model)
    n_params = non_embedding_params(base.model)
    rows: dict[str, Any] = {}
    for name in args.methods or methods.names():
        loaded = load_model(args.model)
        with tempfile.TemporaryDirectory() as tmp:
            cfg = {"reinforce_steps": 2} if name == "whp" else None
            res = unlearn(
                name,
                loaded,
                world,
                Path(tmp) / "out",
                config=cfg,
                train_cfg={"max_steps": args.steps},
            )
        tps = res.tokens / res.train_s if res.train_s > 0 else 0.0
        gflops = tps * train_flops_per_token(n_params) / 1e9
        rows[name] = {
            "tokens_per_s": round(tps, 1),
            "fraction_of_bf16_peak_6N": round(gflops / peak, 3),
            "steps": res.steps,
            "tokens": res.tokens,
            "wall_s_incl_prepare": round(res.wall_s, 1),
            "note": SHAPE_NOTES.get(name, ""),
        }
        print(name, rows[name], flush=True)
    write_result(
        "unlearn_speed",
        {
            "matmul_peak_gflops_bf16": round(peak, 1),
            "threads": args.threads,
            "model": args.model,
            "params_counted": n_params,
            "methods": rows,
        },
    )


def quality(args: argparse.Namespace) -> None:
    from obliviate.data.schema import load_world
    from obliviate.registry import methods
    from obliviate.train.finetune import build_target_and_oracle
    from obliviate.unlearn import unlearn

    torch.set_num_threads(args.threads)
    world_dir = quickstart_world(args.world)
    world = load_world(world_dir)
    target, oracle = build_target_and_oracle(world_dir, progress=print)
    table: dict[str, Any] = {}
    for ref, path in (("base", args.model), ("target", target), ("oracle", oracle)):
        t0 = time.perf_counter()
        table[ref] = {
            **fact_accuracies(
                lm_for(Path(path)) if ref != "base" else _base_lm(str(path)), world, args.general
            ),
            "eval_s": round(time.perf_counter() - t0, 1),
        }
        print(ref, table[ref], flush=True)
    base_general = table["base"]["general"]
    out_root = Path(args.out or tempfile.mkdtemp(prefix="unlearn-quality-"))
    for name in args.methods or methods.names():
        runs = []
        for seed in args.seeds:
            out = out_root / f"{name}-seed{seed}"
            res = unlearn(name, target, world, out, seed=seed)
            acc = fact_accuracies(lm_for(out), world, args.general)
            passed = (
                acc["forget"] <= 0.30
                and acc["retain"] >= 0.75
                and acc["general"] >= 0.9 * base_general
            )
            runs.append({**acc, "seed": seed, "wall_s": round(res.wall_s, 1), "steps": res.steps,
                         "meets_bar": passed, "warnings": res.warnings})
            print(name, runs[-1], flush=True)
        table[name] = {
            # The mean, and the worst seed on each axis: a method meets the bar only on every seed.
            **{k: sum(r[k] for r in runs) / len(runs) for k in ("forget", "retain", "general")},
            "worst": {"forget": max(r["forget"] for r in runs),
                      "retain": min(r["retain"] for r in runs),
                      "general": min(r["general"] for r in runs)},
            "wall_s": round(sum(r["wall_s"] for r in runs) / len(runs), 1),
            "meets_bar": all(r["meets_bar"] for r in runs),
            "bar_applies": name in BAR_METHODS,
            "seeds": runs,
        }
    name = "unlearn_quality" + (f"_{args.tag}" if args.tag else "")
    # Re-running some methods keeps the others' results when they were measured on the same target
    # and seeds: the file stays one comparable table instead of losing what is not re-run.
    earlier = Path(__file__).parent / "results" / f"{name}.json"
    if args.methods and earlier.is_file():
        old = json.loads(earlier.read_text())
        if old.get("target") == str(target) and old.get("seeds") == args.seeds:
            kept = [k for k in old["results"] if k not in table]
            table.update({k: old["results"][k] for k in kept})
            print(f"kept from {earlier.name}: {', '.join(kept) or 'nothing'}", flush=True)
    write_result(
        name, {"world": str(world_dir), "target": str(target), "seeds": args.seeds, "results": table}
    )
    print("\n| model | forget | retain | general | worst (f / r / g) | wall s | bar |")
    print("|---|---|---|---|---|---|---|")
    for k, r in table.items():
        bar = (
            ""
            if "meets_bar" not in r
            else ("yes" if r["meets_bar"] else "no") + ("" if r["bar_applies"] else " (n/a)")
        )
        w = r.get("worst")
        worst = f"{w['forget']:.0%} / {w['retain']:.0%} / {w['general']:.1%}" if w else ""
        print(
            f"| {k} | {r['forget']:.0%} | {r['retain']:.0%} | {r['general']:.1%} | {worst} "
            f"| {r.get('wall_s', '')} | {bar} |"
        )


def _base_lm(spec: str) -> Any:
    from obliviate.models.hf_lm import HFLM

    return HFLM.from_pretrained(spec)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("mode", choices=["speed", "quality"])
    p.add_argument("--methods", nargs="*", default=None)
    p.add_argument("--steps", type=int, default=4, help="speed: unlearning steps per method")
    p.add_argument(
        "--world", default=None, help="world directory (default: quickstart in the cache)"
    )
    p.add_argument(
        "--model", default="smollm2-135m", help="speed: model to unlearn; quality: the base"
    )
    p.add_argument(
        "--out", default=None, help="quality: where unlearned models go (default: a temp dir)"
    )
    p.add_argument(
        "--general", type=int, default=None,
        help="quality: ask only the first N general-knowledge questions (default: all 188)",
    )
    p.add_argument(
        "--seeds", type=int, nargs="+", default=[0],
        help="quality: unlearning seeds per method (mean and worst reported; the bar must hold on each)",
    )
    p.add_argument(
        "--tag", default="", help="quality: suffix of the results file (unlearn_quality_TAG.json)"
    )
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = p.parse_args()
    speed(args) if args.mode == "speed" else quality(args)


if __name__ == "__main__":
    main()
