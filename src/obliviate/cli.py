"""The `obliviate` command: one thin subcommand per verb, each calling one library function.

Errors a user can fix (bad paths, unknown names, invalid configs) print one line saying what to
fix and exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Make a language model forget targeted knowledge, then audit whether it is really gone.",
)
console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
OVERWRITE_HELP = "replace an earlier obliviate output at --out (never anything else)"


def user_errors(fn: F) -> F:
    """Turn the exceptions that mean 'bad input' into a one-line message and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pydantic import ValidationError

        from obliviate.registry import UnknownComponentError

        try:
            return fn(*args, **kwargs)
        except ValidationError as e:
            msgs = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
            error(f"invalid configuration: {msgs}")
        except (UnknownComponentError, ValueError, FileNotFoundError, PermissionError) as e:
            error(str(e))
        raise typer.Exit(2)

    return wrapper  # type: ignore[return-value]


def error(msg: str, label: str = "error", style: str = "red") -> None:
    """Print a message verbatim: no markup read from it (a path like `runs/[v2]` or a `[row 3]`
    stays as it is) and no hard wrapping (a long path stays on one line when piped)."""
    from rich.text import Text

    console.print(Text(f"{label}: ", style=style) + Text(msg), soft_wrap=True, highlight=False)


def say(msg: str) -> None:
    console.print(msg, markup=False, highlight=False, soft_wrap=True)


@app.command("list")
@user_errors
def list_(kind: str = typer.Argument(..., help="methods | metrics | attacks | guards | suites | benchmarks")) -> None:
    """List the registered names of one kind of component."""
    from obliviate.registry import REGISTRIES

    if kind not in REGISTRIES:
        raise ValueError(f"unknown kind '{kind}': choose one of {', '.join(REGISTRIES)}")
    names = REGISTRIES[kind].names()
    if sys.stdout.isatty():
        Console().print(f"[bold]{kind}[/bold] ({len(names)}): " + (", ".join(names) or "(none yet)"))
    else:
        for n in names:
            print(n)


@app.command()
@user_errors
def world(
    out: Path = typer.Option(..., help="directory to write the world to"),
    preset: str = typer.Option("quickstart", help="named world size preset"),
    seed: int = typer.Option(None, help="override the preset's seed"),
    n_people: int = typer.Option(None, help="override the number of people"),
    n_forget: int = typer.Option(None, help="override the number of forget people"),
    n_holdout: int = typer.Option(None, help="override the number of holdout people"),
    overwrite: bool = typer.Option(False, help=OVERWRITE_HELP),
) -> None:
    """Build a synthetic world of fictitious people (deterministic from its seed)."""
    from obliviate.data.world import PRESETS, build_and_save

    if preset not in PRESETS:
        raise ValueError(f"unknown preset '{preset}': choose one of {', '.join(PRESETS)}")
    overrides = {k: v for k, v in {"seed": seed, "n_people": n_people, "n_forget": n_forget, "n_holdout": n_holdout}.items() if v is not None}
    cfg = PRESETS[preset].model_copy(update=overrides)
    cfg = type(cfg).model_validate(cfg.model_dump())  # re-validate the overridden values
    w = build_and_save(cfg, out, overwrite=overwrite)
    counts = {s: len(w.facts_in(s)) for s in ("forget", "retain", "neighbour", "holdout")}
    say(f"world {w.name} ({w.content_hash}) -> {out}: facts {counts}, {len(w.passages)} passages, {len(w.general)} general items")


@app.command()
@user_errors
def finetune(
    world_dir: Path = typer.Option(..., "--world", help="world directory (from `obliviate world`)"),
    model: str = typer.Option("smollm2-135m", help="base model: bundled name, HF directory or .gguf"),
    epochs: float = typer.Option(None, help="override training epochs"),
    lr: float = typer.Option(None, help="override the learning rate"),
    evaluate: bool = typer.Option(True, help="print fact accuracy of base, target and oracle"),
) -> None:
    """Build the target (forget + retain) and the oracle (retain only); cached, so a re-run is instant."""
    from obliviate.train.finetune import FinetuneConfig, build_target_and_oracle

    cfg = FinetuneConfig()
    updates = {k: v for k, v in {"epochs": epochs, "lr": lr}.items() if v is not None}
    if updates:
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update=updates)})
    target, oracle = build_target_and_oracle(world_dir, model, cfg, progress=say)
    print(json.dumps({"target": str(target), "oracle": str(oracle)}))
    if evaluate:
        from obliviate.evals.quick import accuracy_table

        say(accuracy_table({"base": model, "target": str(target), "oracle": str(oracle)}, world_dir))


def _parse_sets(pairs: list[str]) -> dict[str, Any]:
    """`--set beta=0.2 --set retain_loss=kl` -> {"beta": 0.2, "retain_loss": "kl"} (YAML scalars)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set takes KEY=VALUE, got '{pair}'")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def _model_under_test(model: str, guards: list[str], world_dir: Path | None) -> Any:
    """A model spec as is, or an LM with guards stacked on it (innermost first)."""
    if not guards:
        return model
    from obliviate.data.schema import load_world
    from obliviate.evals.run import as_lm
    from obliviate.methods.guards.base import stack

    return stack(as_lm(model), guards, load_world(world_dir) if world_dir else None)


@app.command("eval")
@user_errors
def eval_(
    model: str = typer.Option(..., help="model to evaluate: bundled name, HF directory or .gguf"),
    world_dir: Path = typer.Option(..., "--world", help="world directory"),
    suite: list[str] = typer.Option(["facts"], help="suite(s) to run; repeat the option (see `obliviate list suites`)"),
    oracle: str = typer.Option(None, help="oracle model (needed by forget quality and PrivLeak)"),
    reference: str = typer.Option(None, help="reference model for the reference-model MIA"),
    guard: list[str] = typer.Option([], help="guard(s) to stack on the model, innermost first"),
    limit: int = typer.Option(None, help="evaluate at most N items per split (quick looks)"),
    out: Path = typer.Option(None, help="directory for the eval log (eval.json), or a .json path"),
    overwrite: bool = typer.Option(False, help=OVERWRITE_HELP),
) -> None:
    """Run evaluation suites on a model and write a versioned eval log with 95% CIs."""
    from obliviate.evals.run import evaluate

    res = evaluate(_model_under_test(model, guard, world_dir), world_dir, suite, oracle=oracle,
                   reference=reference, out=out, limit=limit, overwrite=overwrite)
    for name, agg in sorted(res.log.results.items()):
        ci = f" [{agg.ci95[0]:.3f}, {agg.ci95[1]:.3f}]" if agg.ci95 else ""
        print(f"{name}\t{agg.value:.4f}{ci}")
    if res.path:
        say(f"eval log: {res.path}")


@app.command()
@user_errors
def unlearn(
    method: str = typer.Option(..., help="unlearning method (see `obliviate list methods`)"),
    model: str = typer.Option(..., help="model to unlearn from (usually the target)"),
    world_dir: Path = typer.Option(..., "--world", help="world directory with the forget/retain split"),
    out: Path = typer.Option(..., help="new directory for the unlearned model (never the input)"),
    set_: list[str] = typer.Option([], "--set", help="method setting KEY=VALUE (repeatable)"),
    train_set: list[str] = typer.Option([], "--train", help="training setting KEY=VALUE, e.g. lr=1e-5"),
    lora: bool = typer.Option(False, help="train a LoRA adapter instead of all weights"),
    save_adapter: bool = typer.Option(False, help="with --lora: save the adapter, not merged weights"),
    seed: int = typer.Option(0, help="random seed"),
    overwrite: bool = typer.Option(False, help=OVERWRITE_HELP),
) -> None:
    """Make a model forget the world's forget set; writes a model directory and unlearn_log.json."""
    from obliviate.unlearn import unlearn as run_unlearn

    res = run_unlearn(method, model, world_dir, out, config=_parse_sets(set_) or None,
                      train_cfg=_parse_sets(train_set) or None, lora={} if lora else None,
                      save_adapter=save_adapter, seed=seed, overwrite=overwrite)
    for w in res.warnings:
        error(w, "warning", "yellow")
    say(f"{method}: {res.steps} steps, {res.tokens / max(res.wall_s, 1e-9):.0f} tokens/s, "
        f"{res.wall_s:.0f} s ({res.stopped}) -> {res.out_dir}")


@app.command()
@user_errors
def audit(
    model: str = typer.Option(..., help="the unlearned model to audit"),
    target: str = typer.Option(..., help="the target (before unlearning)"),
    oracle: str = typer.Option(..., help="the oracle (never saw the forget data): the control"),
    world_dir: Path = typer.Option(..., "--world", help="world directory"),
    out: Path = typer.Option(..., help="directory for the audit log"),
    attacks: str = typer.Option(None, help="attack preset or comma-separated attack names"),
    guard: list[str] = typer.Option([], help="guard(s) to stack on the model, innermost first"),
    seeds: str = typer.Option(None, help="comma-separated seeds, e.g. 0,1,2"),
    overwrite: bool = typer.Option(False, help=OVERWRITE_HELP),
) -> None:
    """Attack the model and the oracle alike; verdict: forgotten / partially / not forgotten."""
    from obliviate.attacks.audit import audit as run_audit

    seed_list = [int(s) for s in seeds.split(",")] if seeds else None
    res = run_audit(_model_under_test(model, guard, world_dir), world_dir, attacks, target=target,
                    oracle=oracle, seeds=seed_list, out_dir=out, progress=say,
                    overwrite=overwrite)
    broke = f" (broken by {res.broken_by})" if res.broken_by else ""
    print(f"verdict: {res.verdict}{broke}")
    say(res.detail)


@app.command()
@user_errors
def run(
    experiment: Path = typer.Argument(..., help="experiment YAML"),
    out: Path = typer.Option(..., help="output directory (re-run the same command to resume)"),
) -> None:
    """Run (or resume) an experiment: every stage cached by a content hash of its inputs."""
    from obliviate.experiment.runner import run_experiment

    res = run_experiment(experiment, out)
    print(res.report)


@app.command()
@user_errors
def demo(out: Path = typer.Option(Path("out/demo"), help="output directory")) -> None:
    """The quickstart: bundled model, five methods, a guard, every suite, the audit, a report."""
    from obliviate.experiment.runner import run_demo

    res = run_demo(out)
    print(res.report)


runs_app = typer.Typer(help="The run registry (SQLite): list, show and compare runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


@runs_app.command("list")
@user_errors
def runs_list(limit: int = typer.Option(20, help="newest N runs")) -> None:
    """List runs, newest first."""
    from obliviate.store import Store

    with Store() as db:
        for r in db.runs(limit):
            print(f"{r['run_id']}\t{r['status']}\t{r['name']}\t{r['out_dir']}")


@runs_app.command("show")
@user_errors
def runs_show(run_id: str = typer.Argument(..., help="run id (or a unique prefix)")) -> None:
    """Stages and metrics of one run."""
    from obliviate.store import Store

    with Store() as db:
        run = db.run(run_id)
        print(json.dumps({"run": run, "stages": db.stages(run["run_id"])}, indent=2, default=str))


@runs_app.command("compare")
@user_errors
def runs_compare(a: str = typer.Argument(...), b: str = typer.Argument(...)) -> None:
    """Metrics of two runs side by side."""
    from obliviate.store import Store

    with Store() as db:
        for row in db.compare(a, b):
            print("\t".join(str(row[k]) for k in row))


@app.command()
@user_errors
def copyright(
    world_dir: Path = typer.Option(..., "--world", help="world directory (forget passages = blocklist)"),
    model: list[str] = typer.Option(..., help="model(s) to compare: NAME=DIR or DIR (repeatable)"),
    guard: list[str] = typer.Option([], help="guards to stack on the first model, compared separately"),
    out: Path = typer.Option(None, help="write copyright.json here"),
    overwrite: bool = typer.Option(False, help=OVERWRITE_HELP),
) -> None:
    """The copyright-takedown scenario: CoTaEval similarity, win rates, utility, tokens/s."""
    from obliviate.data.schema import load_world
    from obliviate.evals.run import as_lm
    from obliviate.scenarios.copyright import guarded_systems, run_copyright_scenario

    out_file = None
    if out:
        from obliviate.paths import check_out_file

        out_file = check_out_file(out / "copyright.json", keys=("world_hash", "systems"),
                                  overwrite=overwrite)
    world = load_world(world_dir)
    systems: dict[str, Any] = {}
    for spec in model:
        name, _, path = spec.rpartition("=")
        systems[name or Path(path).name] = path
    if guard:
        first_name, first = next(iter(systems.items()))
        systems.update(guarded_systems(as_lm(first), world, guard, base_name=first_name))
    res = run_copyright_scenario(world, systems, progress=say)
    print(res.to_markdown())
    if out_file:
        from obliviate.paths import atomic_write_text

        atomic_write_text(out_file, res.model_dump_json(indent=2))
        say(f"wrote {out_file}")


@app.command("import-benchmark")
@user_errors
def import_benchmark(
    name: str = typer.Argument(..., help="tofu | muse | wmdp | rwku"),
    path: Path = typer.Argument(..., help="the benchmark's files on disk"),
    out: Path = typer.Option(..., help="world directory to write"),
    opt: list[str] = typer.Option([], "--opt", help="loader option KEY=VALUE (e.g. split=forget10)"),
    overwrite: bool = typer.Option(False, help=OVERWRITE_HELP),
) -> None:
    """Map a benchmark you already have on disk (JSON/JSONL/parquet/datasets dir) onto a world."""
    from obliviate.data.benchmarks import import_benchmark as run_import

    w = run_import(name, path, out, overwrite=overwrite, **_parse_sets(opt))
    counts = {s: len(w.facts_in(s)) for s in ("forget", "retain", "neighbour", "holdout")}
    say(f"{name} -> {out}: facts {counts}, {len(w.passages)} passages, {len(w.general)} general items")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
