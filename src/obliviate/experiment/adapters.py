"""Stage kinds: small adapters from a stage's config and inputs to one library function each.

Each adapter writes its outputs into the temp directory it is given (renamed into place by the
engine when it returns) and returns JSON `data`, file paths relative to that directory. Model
directories too big to copy (the target and oracle) stay in the `$OBLIVIATE_HOME` cache that
`build_target_and_oracle` manages and are referenced by absolute path; the stage's `valid`
check recomputes them if the cache was cleaned.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from obliviate.experiment.stages import Stage, StageContext, StageOutput, stage_kind


def world_presets() -> dict[str, Any]:
    """Named synthetic world presets (`data.world.PRESETS`, or just QUICKSTART before it exists)."""
    from obliviate.data import world as world_mod

    presets = getattr(world_mod, "PRESETS", None)
    return dict(presets) if presets else {"quickstart": world_mod.QUICKSTART}


def world_config(preset: str, overrides: dict[str, Any]) -> Any:
    """The validated WorldConfig of a preset with field overrides."""
    presets = world_presets()
    if preset not in presets:
        import difflib

        close = difflib.get_close_matches(preset, list(presets), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"unknown world preset '{preset}'{hint}; known: {', '.join(presets)}")
    base = presets[preset]
    return type(base).model_validate({**base.model_dump(), **overrides})


@stage_kind("world", requires=("obliviate.data.world:build_and_save",))
def world_stage(stage: Stage, ctx: StageContext, tmp: Path) -> dict[str, Any]:
    """Build a synthetic world into the stage directory, or point at an existing world dir."""
    from obliviate.data.schema import load_world
    from obliviate.data.world import build_and_save

    cfg = stage.config
    if cfg.get("dir"):
        world = load_world(cfg["dir"])  # validated now, so a broken world fails this stage
        return {
            "world_dir": str(Path(cfg["dir"]).resolve()),
            "name": world.name,
            "content_hash": world.content_hash,
            **_world_counts(world),
        }
    wc = world_config(cfg["preset"], cfg.get("overrides", {}))
    ctx.reporter.message(f"building world '{wc.name}'")
    build_and_save(wc, tmp / "world")
    world = load_world(tmp / "world")
    return {
        "world_dir": "world",
        "name": world.name,
        "content_hash": world.content_hash,
        **_world_counts(world),
    }


def _world_counts(world: Any) -> dict[str, Any]:
    counts = {s: len(world.facts_in(s)) for s in ("forget", "retain", "neighbour", "holdout")}
    return {"facts": counts, "passages": len(world.passages), "general": len(world.general)}


def world_dir(out: StageOutput) -> Path:
    return out.path("world_dir")


def _models_valid(out: StageOutput) -> bool:
    return all(
        (Path(out.data.get(r, "/nonexistent")) / "finetune_log.json").is_file()
        for r in ("target", "oracle")
    )


@stage_kind(
    "finetune",
    version=2,  # 2: 260 rehearsal pairs
    requires=("obliviate.train.finetune:build_target_and_oracle",),
    valid=_models_valid,
)
def finetune_stage(stage: Stage, ctx: StageContext, tmp: Path) -> dict[str, Any]:
    """Target (forget + retain) and oracle (retain only), cached in $OBLIVIATE_HOME/finetuned."""
    from obliviate.train.finetune import FinetuneConfig, build_target_and_oracle

    cfg = FinetuneConfig.model_validate(stage.config["finetune"])
    target, oracle = build_target_and_oracle(
        world_dir(ctx.input("world")), stage.config["base"], cfg, progress=ctx.reporter.message
    )
    logs = {}
    for role, d in (("target", target), ("oracle", oracle)):
        log = json.loads((d / "finetune_log.json").read_text(encoding="utf-8"))
        logs[role] = {
            k: log.get(k) for k in ("steps", "tokens", "wall_s", "tokens_per_s", "n_examples")
        }
    return {"target": str(target.resolve()), "oracle": str(oracle.resolve()), "logs": logs}


def finetune_config(overrides: dict[str, Any]) -> dict[str, Any]:
    """FinetuneConfig with overrides; a flat key of TrainConfig (lr, epochs, ...) goes to `train`."""
    from obliviate.train.finetune import FinetuneConfig
    from obliviate.train.loop import TrainConfig

    base = FinetuneConfig.model_validate({}).model_dump(mode="json")
    for k, v in overrides.items():
        if k in TrainConfig.model_fields and k not in FinetuneConfig.model_fields:
            base["train"][k] = v
        else:
            base[k] = v
    return FinetuneConfig.model_validate(base).model_dump(mode="json")


def model_fingerprint(spec: str) -> Any:
    """What identifies a base model in stage keys: the bundled name, or the content of a directory
    or file (so a copy or reinstall of the same weights keeps its cached stages)."""
    p = Path(spec).expanduser()
    if p.exists():
        from obliviate.paths import content_fingerprint

        return content_fingerprint(p)
    return spec
