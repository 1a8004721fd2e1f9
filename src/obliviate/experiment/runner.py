"""`run_experiment`: from an experiment file to a report, resumable at every stage.

    world ─► target+oracle ─┬─► unlearn/<label> ─► eval/<label>, audit/<label>
                            ├─► guard/<label> ───► eval/<label>, audit/<label>
                            ├─► eval/oracle, eval/target
                            └─► attack/oracle (the control every audit shares)
    every eval/unlearn/audit ─► report (experiment.json + report.html)

`plan` turns a spec into this list of stages (in dependency order); the engine runs it, loading
every stage whose output already exists. Output layout of OUT:

    OUT/stages/<kind>-<key>/    one directory per stage (stage.json + its files)
    OUT/experiment.json         the experiment log (all run logs; what the report reads)
    OUT/report.html             the self-contained HTML report
    OUT/spec.yaml               the resolved experiment, for the record
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from obliviate.experiment import adapters, curves, model_stages  # noqa: F401 (registers stage kinds)
from obliviate.experiment.log import ExperimentLog
from obliviate.experiment.spec import ExperimentSpec, load_spec
from obliviate.experiment.stages import Engine, Reporter, Stage, StageOutput, locked_out_dir

DEMO_SPEC = "quickstart.yaml"


@dataclass
class Plan:
    """The stages of an experiment, in an order where every input precedes its consumers."""

    spec: ExperimentSpec
    stages: list[Stage] = field(default_factory=list)

    def add(self, stage: Stage) -> Stage:
        self.stages.append(stage)
        return stage

    def by_kind(self, kind: str) -> list[Stage]:
        return [s for s in self.stages if s.kind == kind]


@dataclass
class ExperimentResult:
    """What a run produced: where, which stages ran or were reused, and the experiment log."""

    out_dir: Path
    run_id: str
    log_path: Path
    report_path: Path | None
    log: ExperimentLog
    computed: list[str]  # stage names computed by this call
    reused: list[str]  # stage names loaded from a previous call
    wall_s: float
    outputs: dict[str, StageOutput] = field(default_factory=dict, repr=False)

    @property
    def report(self) -> Path:
        """What to show the user: the report, or the log of an experiment without one."""
        return self.report_path or self.log_path


def validate_components(spec: ExperimentSpec) -> None:
    """Fail before any work on a component name that is not registered ("did you mean") or a
    method whose settings do not validate: better now than after minutes of fine-tuning."""
    from obliviate.registry import attacks, guards, methods, suites
    from obliviate.train.loop import TrainConfig

    for reg, names in (
        (methods, [m.name for m in spec.methods]),
        (guards, [g.name for g in spec.guards]),
        (suites, [s.name for s in spec.suites]),
        (attacks, [a.name for a in spec.attacks]),
    ):
        for name in names:
            reg.get(name)  # raises UnknownComponentError with suggestions
    runs = [(label, m, args, train) for label, m, args, train, _ in spec.method_runs()]
    for m in spec.muse_curves.methods if spec.muse_curves else []:
        _, args, train = m.points()[0]
        runs.append((f"muse_curves: {m.label or m.name}", m, args, train))
    for label, m, args, train in runs:
        cls = methods.get(m.name)
        validate = getattr(cls, "validate_config", None)
        if validate is not None:
            validate(args)  # MethodConfigError (a ValueError) naming the field
        unknown = set(train) - set(TrainConfig.model_fields)
        if unknown:
            raise ValueError(
                f"method run '{label}': unknown train setting(s) {sorted(unknown)}; "
                f"known: {', '.join(TrainConfig.model_fields)}"
            )
    if spec.attacks:
        from obliviate.attacks.audit import AuditConfig, resolve_attacks

        resolve_attacks([a.model_dump(mode="json") for a in spec.attacks])  # validates each config
        try:
            AuditConfig.model_validate(spec.audit_config)
        except ValidationError as e:
            bad = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
            raise ValueError(
                f"audit_config: {bad}; known fields: {', '.join(AuditConfig.model_fields)}"
            ) from None


def plan(spec: ExperimentSpec) -> Plan:
    """Expand a spec into stages. Keys depend only on configs and input keys, never on paths."""
    p = Plan(spec)
    if spec.world.dir is not None:
        world_cfg: dict[str, Any] = {
            "dir": str(spec.world.dir),
            "content_hash": _world_dir_hash(spec.world.dir),
        }
    else:
        from obliviate.data.world import world_hash

        wc = adapters.world_config(spec.world.preset or "", spec.world.overrides)
        world_cfg = {
            "preset": spec.world.preset,
            "overrides": spec.world.overrides,
            "world_hash": world_hash(wc),
        }
    world = p.add(Stage("world", "world", world_cfg))
    models = p.add(
        Stage(
            "finetune",
            "target+oracle",
            {
                "base": spec.model,
                "base_id": adapters.model_fingerprint(spec.model),
                "finetune": adapters.finetune_config(spec.finetune),
            },
            {"world": world},
        )
    )
    if not (spec.suites or spec.methods or spec.guards or spec.muse_curves):
        return p
    base = {"world": world, "models": models}
    report: dict[str, Stage] = {}
    suites = [s.model_dump(mode="json") for s in spec.suites]
    attacks = [a.model_dump(mode="json") for a in spec.attacks]
    control: Stage | None = None
    if attacks and spec.audit_models != "none":
        # The oracle under the same attacks is the control of every audit (what it also learns
        # from k examples is not residual knowledge): attacked once, shared by every audit.
        cfg: dict[str, Any] = {"attacks": attacks, "config": spec.audit_config}
        control = report["attack/oracle"] = p.add(
            Stage("attack_control", "attack/oracle", cfg, base)
        )

    def evaluate_and_audit(label: str, model: Stage | None, audited: bool) -> None:
        deps = {**base, "model": model} if model is not None else base
        role = label if model is None else "model"
        if suites:
            cfg = {"role": role, "suites": suites}
            report[f"eval/{label}"] = p.add(Stage("eval", f"eval/{label}", cfg, deps))
        if audited and control is not None and model is not None:
            deps = {**deps, "control": control}
            report[f"audit/{label}"] = p.add(Stage("audit", f"audit/{label}", control.config, deps))

    evaluate_and_audit("oracle", None, False)
    evaluate_and_audit("target", None, False)
    for label, m, args, train, seed in spec.method_runs():
        cfg = {"method": m.name, "args": args, "train": train, "seed": seed}
        u = report[f"unlearn/{label}"] = p.add(Stage("unlearn", f"unlearn/{label}", cfg, base))
        evaluate_and_audit(label, u, True)
    for g in spec.guards:
        cfg = {"name": g.name, "args": g.args}
        gs = report[f"guard/{g.name}"] = p.add(Stage("guard", f"guard/{g.name}", cfg, base))
        evaluate_and_audit(f"guard:{g.name}", gs, spec.audit_models == "all")
    report.update(curves.plan_curves(spec, p.add, base))
    cfg = {"spec": spec.model_dump(mode="json"), "format": _report_format()}
    p.add(Stage("report", "report", cfg, {**base, **report}))
    return p


def _world_dir_hash(d: Path) -> str:
    import json

    manifest = Path(d) / "world.json"
    if not manifest.is_file():
        raise FileNotFoundError(
            f"world directory {d} not found (no world.json): build it with `obliviate world --out {d}` "
            "or use `world: {preset: quickstart}` in the experiment"
        )
    return str(json.loads(manifest.read_text(encoding="utf-8"))["content_hash"])


def _report_format() -> str:
    from obliviate.report import REPORT_FORMAT

    return REPORT_FORMAT


def run_experiment(
    spec: str | Path | dict[str, Any] | ExperimentSpec,
    out_dir: str | Path,
    *,
    progress: bool = True,
    store: Any = True,
    reporter: Reporter | None = None,
) -> ExperimentResult:
    """Run (or resume) an experiment into `out_dir` and return where its report and log are.

    Stages whose outputs already exist in `out_dir` are loaded, not recomputed. `out_dir` must
    be new, empty or an earlier run's directory (never a directory of the user's). `store=True`
    indexes the run in `$OBLIVIATE_HOME/runs.sqlite`; pass a `Store` to use another, or False.
    Raises `ExperimentSpecError` / `UnknownComponentError` / `FileNotFoundError` for bad input
    (before any work), `StageUnavailableError` if the experiment needs an uninstalled part.
    """
    from obliviate.paths import check_out_dir, claim_dir
    from obliviate.store import Store, run_id_for

    t0 = time.perf_counter()
    check_out_dir(out_dir, "run")  # before any work: never a directory of the user's
    spec = load_spec(spec)
    validate_components(spec)
    the_plan = plan(spec)
    out = Path(out_dir).expanduser().resolve()
    from obliviate.experiment.stages import check_available

    check_available(the_plan.stages)
    claim_dir(out, "run")
    db = Store() if store is True else (store or None)
    run_id = run_id_for(spec.name, out)
    if reporter is None:
        from obliviate.experiment.progress import make_reporter

        reporter = make_reporter(progress)
    with locked_out_dir(out):
        _write_spec(spec, out)
        if db is not None:
            db.begin_run(run_id, spec.name, out, spec.spec_hash())
        engine = Engine(
            out,
            reporter=reporter,
            store=db,
            run_id=run_id,
            on_done=lambda s, o: _index(db, run_id, s, o),
        )
        try:
            with _reporting(reporter):
                engine.run_all(the_plan.stages)
        except BaseException as e:
            if db is not None:
                status = "failed" if isinstance(e, Exception) else "interrupted"
                db.end_run(run_id, status, error=f"{type(e).__name__}: {e}")
            raise
        log_path, report_path, log = _publish(engine.outputs, the_plan, out, spec, run_id)
        if db is not None:
            db.end_run(run_id, "done", report=report_path, log=log_path)
    outputs = engine.outputs
    return ExperimentResult(
        out_dir=out,
        run_id=run_id,
        log_path=log_path,
        report_path=report_path,
        log=log,
        computed=[n for n, o in outputs.items() if o.computed],
        reused=[n for n, o in outputs.items() if not o.computed],
        wall_s=time.perf_counter() - t0,
        outputs=outputs,
    )


def _reporting(reporter: Reporter) -> Any:
    enter = getattr(reporter, "live", None)
    if enter is None:
        from contextlib import nullcontext

        return nullcontext()
    return enter()


def _index(db: Any, run_id: str, stage: Stage, out: StageOutput) -> None:
    """Put an evaluation's metrics into the registry as soon as the stage finishes."""
    if db is None or stage.kind not in ("eval", "audit"):
        return
    from obliviate.experiment.model_stages import metric_rows

    db.put_metrics(run_id, metric_rows(stage, out))


def _write_spec(spec: ExperimentSpec, out: Path) -> None:
    import yaml

    from obliviate.paths import atomic_write_text

    atomic_write_text(
        out / "spec.yaml", yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
    )


def _publish(
    outputs: dict[str, StageOutput], the_plan: Plan, out: Path, spec: ExperimentSpec, run_id: str
) -> tuple[Path, Path | None, ExperimentLog]:
    """Copy the report stage's files to the top of OUT (atomically), or build a log without one."""
    from obliviate.paths import atomic_write_text

    rep = outputs.get("report")
    if rep is None:  # an experiment without models to report: the log records the stages only
        from obliviate.experiment.model_stages import build_experiment_log

        log = build_experiment_log(spec, outputs, run_id)
        return log.save(out / "experiment.json"), None, log
    log_path, report_path = out / "experiment.json", out / "report.html"
    for src, dst in ((rep.path("log"), log_path), (rep.path("html"), report_path)):
        atomic_write_text(dst, src.read_text(encoding="utf-8"))
    log = ExperimentLog.load(log_path)
    if log.run_id != run_id:  # the same stages reused by a run in another directory
        log = log.model_copy(update={"run_id": run_id})
        log.save(log_path)
    return log_path, report_path, log


def demo_spec_path() -> Path:
    """The bundled quickstart experiment (configs/experiments/quickstart.yaml)."""
    res = resources.files("obliviate") / "configs" / "experiments" / DEMO_SPEC
    return Path(str(res))


def run_demo(out_dir: str | Path, *, progress: bool = True) -> ExperimentResult:
    """The built-in quickstart: bundled model, quickstart world, five methods, a guard, every
    suite and the audit; writes OUT/report.html and OUT/experiment.json."""
    return run_experiment(demo_spec_path(), out_dir, progress=progress)
