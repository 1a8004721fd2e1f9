"""MUSE C5 (scalability) and C6 (sustainability) as stages (Shi et al. 2024, MUSE).

C5: unlearn forget sets of growing size (the first k forget subjects), each from the target.
C6: split the forget subjects into n requests and unlearn them one after another, each request
starting from the previous result. Each unlearned model is an ordinary `unlearn` stage (so it
is cached and resumable like any other); one `muse_curve` stage per (curve, method) then
evaluates MUSE C1-C4 on each model, on the sub-world of the subjects it was asked to forget so
far, and records one curve per metric (x = forget-set size in subjects, or request number).

Subjects not (yet) requested are dropped from the sub-world entirely: they are neither forgotten
nor retained, so they cannot count for or against the method.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from obliviate.data.schema import World, load_world
from obliviate.experiment.adapters import world_dir
from obliviate.experiment.stages import Stage, StageContext, stage_kind
from obliviate.paths import content_hash

Subset = dict[str, int]  # {"first": k} | {"chunk": i, "of": n} | {"upto": i, "of": n}


def _chunks(subjects: list[str], n: int) -> list[list[str]]:
    if not 1 <= n <= len(subjects):
        raise ValueError(
            f"muse_curves.requests={n}: the world has {len(subjects)} forget subjects, so it can "
            f"be split into 1..{len(subjects)} successive requests"
        )
    q, r = divmod(len(subjects), n)
    out, start = [], 0
    for i in range(n):
        size = q + (1 if i < r else 0)
        out.append(subjects[start : start + size])
        start += size
    return out


def subset_subjects(world: World, subset: Subset) -> list[str]:
    """The forget subjects a subset spec selects, in the world's order."""
    subjects = world.subjects_in("forget")
    if "first" in subset:
        k = subset["first"]
        if not 1 <= k <= len(subjects):
            raise ValueError(
                f"muse_curves.sizes has {k}: the world has {len(subjects)} forget subjects; "
                f"use sizes between 1 and {len(subjects)}"
            )
        return subjects[:k]
    chunks = _chunks(subjects, subset["of"])
    if "chunk" in subset:
        return chunks[subset["chunk"]]
    return [s for c in chunks[: subset["upto"] + 1] for s in c]


def restrict_forget(world: World, subjects: list[str]) -> World:
    """The world with only these forget subjects (other forget subjects removed entirely)."""
    keep = set(subjects)
    return world.model_copy(
        update={
            "name": f"{world.name}[forget {len(subjects)}]",
            "content_hash": content_hash([world.content_hash, "forget-subset", sorted(keep)]),
            "facts": [f for f in world.facts if f.split != "forget" or f.subject in keep],
            "passages": [p for p in world.passages if p.split != "forget" or p.subject in keep],
            "multihop": [
                m for m in world.multihop if m.split != "forget" or set(m.subjects) <= keep
            ],
        }
    )


def stage_world(stage: Stage, ctx: StageContext, key: str = "subset") -> World | Path:
    """The world a stage works on: the experiment's, or its forget subset."""
    wd = world_dir(ctx.input("world"))
    subset = stage.config.get(key)
    if not subset:
        return wd
    world = load_world(wd)
    return restrict_forget(world, subset_subjects(world, subset))


# version 2: greedy decoding with bf16 weights (HFLM.bf16_generate)
@stage_kind("muse_curve", version=2, requires=("obliviate.evals.suites.muse:muse_curve",))
def muse_curve_stage(stage: Stage, ctx: StageContext, tmp: Path) -> dict[str, Any]:
    """MUSE C1-C4 of each model of a C5/C6 series, on its own forget subset: one curve per
    metric, written as an eval run log."""
    from obliviate.evals.suites.muse import muse_curve
    from obliviate.models.hf_lm import HFLM
    from obliviate.runlog import Component, CurvePoint, RunLog

    cfg = stage.config
    oracle = HFLM.from_pretrained(ctx.input("models").data["oracle"])
    world = load_world(world_dir(ctx.input("world")))
    curves: dict[str, list[CurvePoint]] = {}
    for i, (x, subset) in enumerate(zip(cfg["xs"], cfg["eval_subsets"], strict=True)):
        ctx.reporter.advance(i, len(cfg["xs"]), "models")
        model = HFLM.from_pretrained(str(ctx.input(f"step{i}").path("model_dir")))
        sub = restrict_forget(world, subset_subjects(world, subset))
        for name, pts in muse_curve([(x, model)], sub, oracle=oracle, limit=cfg["limit"]).items():
            curves.setdefault(name, []).extend(pts)
        del model  # one unlearned model in memory at a time
    log = RunLog(
        kind="eval",
        components=[Component(kind="suites", name="muse_curve", args=cfg)],
        curves=curves,
        inputs={"world": {"name": world.name, "content_hash": world.content_hash}},
    )
    log.save(tmp / "curve.json")
    return {"log": "curve.json"}


def plan_curves(spec: Any, add: Any, base: dict[str, Stage]) -> dict[str, Stage]:
    """Add the C5/C6 stages of `spec.muse_curves` through `add`; returns the curve stages."""
    mc = spec.muse_curves
    out: dict[str, Stage] = {}
    if mc is None:
        return out
    for m in mc.methods:
        for _suffix, args, train in m.points()[:1]:  # curves use the method's first grid point
            common = {"method": m.name, "args": args, "train": train, "seed": mc.seed}
            label = m.label or m.name
            if mc.sizes:
                models = [
                    add(
                        Stage(
                            "unlearn",
                            f"muse-c5/{label}/{k}",
                            {**common, "subset": {"first": k}},
                            base,
                        )
                    )
                    for k in mc.sizes
                ]
                cfg = {
                    "curve": "scalability",
                    "xs": list(mc.sizes),
                    "limit": mc.limit,
                    "eval_subsets": [{"first": k} for k in mc.sizes],
                }
                out[f"muse-c5/{label}"] = add(
                    Stage(
                        "muse_curve",
                        f"muse-c5/{label}",
                        cfg,
                        {**base, **{f"step{i}": s for i, s in enumerate(models)}},
                    )
                )
            if mc.requests:
                n, models, prev = mc.requests, [], None
                for i in range(n):
                    deps = {**base, "base": prev} if prev is not None else base
                    cfg_i = {**common, "subset": {"chunk": i, "of": n}}
                    prev = add(Stage("unlearn", f"muse-c6/{label}/{i + 1}", cfg_i, deps))
                    models.append(prev)
                cfg = {
                    "curve": "sustainability",
                    "xs": list(range(1, n + 1)),
                    "limit": mc.limit,
                    "eval_subsets": [{"upto": i, "of": n} for i in range(n)],
                }
                out[f"muse-c6/{label}"] = add(
                    Stage(
                        "muse_curve",
                        f"muse-c6/{label}",
                        cfg,
                        {**base, **{f"step{i}": s for i, s in enumerate(models)}},
                    )
                )
    return out
