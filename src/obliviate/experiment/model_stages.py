"""Stage kinds over models: unlearn, guard, eval, attack/audit, and the report.

Every stage is a pure function of its config and inputs: it loads the models it needs from
disk itself rather than sharing live objects with other stages. That costs a model load
(~1 s for the bundled model) per stage, and it is what makes a resumed run compute exactly what
an uninterrupted one would have (a shared model's caches and batch composition would otherwise
depend on which stages happened to run in this process).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from obliviate.experiment.adapters import world_dir
from obliviate.experiment.curves import stage_world
from obliviate.experiment.log import ExperimentLog, ModelEntry, StageRecord
from obliviate.experiment.stages import Stage, StageContext, StageOutput, stage_kind
from obliviate.runlog import RunLog
from obliviate.store import MetricRow


def _model_valid(out: StageOutput) -> bool:
    return (out.dir / out.data.get("model_dir", "model") / "config.json").is_file()


# version 2: KL retain term by default for GradDiff and SimNPO
@stage_kind("unlearn", version=2, requires=("obliviate.unlearn:unlearn",), valid=_model_valid)
def unlearn_stage(stage: Stage, ctx: StageContext, tmp: Path) -> dict[str, Any]:
    """One unlearning run from the target: OUT/stages/unlearn-<key>/model (+ unlearn_log.json)."""
    from obliviate.unlearn import unlearn

    cfg = stage.config
    kwargs: dict[str, Any] = {"config": cfg["args"], "train_cfg": cfg["train"], "seed": cfg["seed"]}
    if "callbacks" in inspect.signature(unlearn).parameters:
        from obliviate.registry import methods

        defaults = getattr(methods.get(cfg["method"]), "train_defaults", {})
        kwargs["callbacks"] = [_step_callback(ctx, {**defaults, **cfg["train"]}.get("max_steps"))]
    ctx.reporter.message(f"unlearning with {cfg['method']}")
    # MUSE C6 chains requests: each starts from the previous request's model, not the target.
    start = (
        str(ctx.input("base").path("model_dir"))
        if "base" in ctx.inputs
        else ctx.input("models").data["target"]
    )
    res = unlearn(cfg["method"], start, stage_world(stage, ctx), tmp / "model", **kwargs)
    return {
        "model_dir": "model",
        "log": "model/unlearn_log.json",
        "steps": res.steps,
        "train_wall_s": res.wall_s,
        "warnings": list(res.warnings),
    }


def _step_callback(ctx: StageContext, total: int | None) -> Any:
    def cb(step: int, row: dict[str, float]) -> None:
        ctx.reporter.advance(step, total, "steps")

    return cb


@stage_kind("guard", requires=("obliviate.methods.guards.base:make_guard",))
def guard_stage(stage: Stage, ctx: StageContext, tmp: Path) -> dict[str, Any]:
    """An inference-time guard on the target: nothing to train, so the stage records (and
    validates, by building it once) the guard's spec; evaluations rebuild it from this record."""
    cfg = stage.config
    target = ctx.input("models").data["target"]
    _guarded_lm(cfg["name"], cfg["args"], target, world_dir(ctx.input("world")))
    return {"guard": cfg["name"], "args": cfg["args"], "base": target}


def _guarded_lm(name: str, args: dict[str, Any], base: str, world: Path) -> Any:
    """The guard built for the world's forget target, wrapping the base model (as an LM)."""
    from obliviate.data.schema import load_world
    from obliviate.methods.guards.base import make_guard
    from obliviate.models.hf_lm import HFLM

    return make_guard(name, HFLM.from_pretrained(base), load_world(world), **args)


def model_under_test(stage: Stage, ctx: StageContext) -> Any:
    """What an eval or audit stage tests: a model directory, or a guard-wrapped LM."""
    role = stage.config.get("role", "model")
    if role in ("target", "oracle"):
        return ctx.input("models").data[role]
    src = ctx.input("model")
    if src.kind == "guard":
        return _guarded_lm(
            src.data["guard"], src.data["args"], src.data["base"], world_dir(ctx.input("world"))
        )
    return str(src.path("model_dir"))


# version 2 (eval, attack_control, audit): fact accuracy reads number words as digits
# version 3 (same): greedy decoding with bf16 weights (HFLM.bf16_generate)
@stage_kind("eval", version=3, requires=("obliviate.evals.run:evaluate",))
def eval_stage(stage: Stage, ctx: StageContext, tmp: Path) -> dict[str, Any]:
    """Every suite of the experiment on one model, with the oracle as the control."""
    from obliviate.evals.run import evaluate

    suites = stage.config["suites"]
    names = [s["name"] for s in suites]
    ctx.reporter.message(f"evaluating {stage.name.removeprefix('eval/')}: {', '.join(names)}")
    evaluate(
        model_under_test(stage, ctx),
        world_dir(ctx.input("world")),
        names,
        oracle=ctx.input("models").data["oracle"],
        suite_args={s["name"]: s.get("args", {}) for s in suites if s.get("args")},
        out=tmp / "eval.json",
    )
    return {"log": "eval.json"}


@stage_kind("attack_control", version=3, requires=("obliviate.attacks.audit:attack_model",))
def attack_control_stage(stage: Stage, ctx: StageContext, tmp: Path) -> dict[str, Any]:
    """The oracle under every attack: the control each audit subtracts, attacked once."""
    from obliviate.attacks.audit import attack_model

    models = ctx.input("models").data
    attack_model(
        models["oracle"],
        world_dir(ctx.input("world")),
        stage.config["attacks"],
        target=models["target"],
        config=stage.config["config"],
        out=tmp / "attack.json",
        progress=ctx.reporter.message,
    )
    return {"log": "attack.json"}


@stage_kind("audit", version=3, requires=("obliviate.attacks.audit:audit",))
def audit_stage(stage: Stage, ctx: StageContext, tmp: Path) -> dict[str, Any]:
    """Attack one model and judge recovery against the target and the attacked oracle.

    An audit that cannot be meaningful (the target does not know the probed facts better than
    the oracle) is recorded as an inconclusive verdict with the reason, not raised: the rest of
    the experiment and its report are still worth having, and re-running would not change it.
    """
    from obliviate.attacks.audit import AuditError, audit
    from obliviate.runlog import Verdict

    models = ctx.input("models").data
    ctx.reporter.message(f"auditing {stage.name.removeprefix('audit/')}")
    try:
        audit(
            model_under_test(stage, ctx),
            world_dir(ctx.input("world")),
            stage.config["attacks"],
            target=models["target"],
            oracle=models["oracle"],
            config=stage.config["config"],
            control=ctx.input("control").path("log"),
            out=tmp / "audit.json",
            progress=ctx.reporter.message,
        )
    except AuditError as e:
        RunLog(
            kind="audit",
            notes=[f"audit not possible: {e}"],
            verdicts=[Verdict(name="forgotten", passed=None, detail=f"inconclusive: {e}")],
        ).save(tmp / "audit.json")
    return {"log": "audit.json"}


# ----- the report ---------------------------------------------------------------------------------
@stage_kind("report", requires=("obliviate.report:render_report",))
def report_stage(stage: Stage, ctx: StageContext, tmp: Path) -> dict[str, Any]:
    """Gather every run log into experiment.json, then render report.html from that file alone."""
    from obliviate.experiment.spec import ExperimentSpec
    from obliviate.report import render_report

    spec = ExperimentSpec.model_validate(stage.config["spec"])
    log = build_experiment_log(spec, ctx.inputs, run_id="")
    log.save(tmp / "experiment.json")
    html = render_report(tmp / "experiment.json")
    (tmp / "report.html").write_text(html, encoding="utf-8")
    return {"log": "experiment.json", "html": "report.html"}


def build_experiment_log(spec: Any, outputs: dict[str, StageOutput], run_id: str) -> ExperimentLog:
    """The experiment log from finished stage outputs (keyed by stage name or input role)."""
    by_name = {o.name: o for o in outputs.values()}
    log = ExperimentLog(
        name=spec.name, run_id=run_id, spec=spec.model_dump(mode="json"), spec_hash=spec.spec_hash()
    )
    if "world" in by_name:
        log.world = dict(by_name["world"].data)
    models = by_name.get("target+oracle")
    entries: list[ModelEntry] = []
    if models is not None:
        entries += [ModelEntry(label=r, role=r, path=models.data[r]) for r in ("target", "oracle")]  # type: ignore[arg-type]
    for label, m, args, train, seed in spec.method_runs():
        u = by_name.get(f"unlearn/{label}")
        entries.append(
            ModelEntry(
                label=label,
                role="method",
                component=m.name,
                args=args,
                train=train,
                seed=seed,
                path=str(u.path("model_dir")) if u else "",
                unlearn=_read_json(u.path("log")) if u else None,
            )
        )
    for g in spec.guards:
        entries.append(
            ModelEntry(label=f"guard:{g.name}", role="guard", component=g.name, args=g.args)
        )
    for e in entries:
        ev, au = by_name.get(f"eval/{e.label}"), by_name.get(f"audit/{e.label}")
        e.eval = RunLog.load(ev.path("log")) if ev else None
        e.audit = RunLog.load(au.path("log")) if au else None
    log.models = entries
    log.curves = {
        o.name: RunLog.load(o.path("log")) for o in outputs.values() if o.kind == "muse_curve"
    }
    log.stages = [
        StageRecord(name=o.name, kind=o.kind, key=o.key, dir=str(o.dir), wall_s=o.wall_s)
        for o in outputs.values()
        if o.kind != "report"
    ]
    return log


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def metric_rows(stage: Stage, out: StageOutput) -> list[MetricRow]:
    """Registry rows for an eval or audit stage: one per metric, with its 95% CI."""
    log = RunLog.load(out.path("log"))
    model = stage.name.split("/", 1)[1]
    rows = []
    for metric, agg in log.results.items():
        lo, hi = agg.ci95 if agg.ci95 is not None else (None, None)
        rows.append(
            MetricRow(
                stage.name,
                model,
                metric if stage.kind == "eval" else f"audit/{metric}",
                agg.value,
                lo,
                hi,
            )
        )
    return rows
