"""`evaluate`: run registered suites on a model (and its oracle) and write one eval run log.

    from obliviate.evals.run import evaluate
    result = evaluate("runs/target/model", "runs/world", ["facts", "tofu"], oracle="runs/oracle/model",
                      out="runs/target/eval")
    result.log.results["tofu/forget_quality"].value

All suites share one `HFLM` per model, so a prompt asked by several suites is generated once and
a (prompt, continuation) pair is scored by one forward pass (see `HFLM`'s counters, logged under
`perf`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obliviate.data.schema import World, load_world
from obliviate.evals.suites.base import SuiteResult
from obliviate.models.lm import LM
from obliviate.registry import suites as suite_registry
from obliviate.runlog import Component, RunLog, Sample

EVAL_LOG_NAME = "eval.json"
COUNTERS = ("n_forward_texts", "n_forward_passes", "n_generated_prompts", "n_scored_tokens", "n_forward_tokens", "n_generated_tokens")


@dataclass
class EvalResult:
    """The run log (what is written and read back) and each suite's in-memory result."""

    log: RunLog
    suites: dict[str, SuiteResult] = field(default_factory=dict)
    path: Path | None = None


def as_lm(model: LM | str | Path, **hflm_kwargs: Any) -> LM:
    """An `LM` as is, or a model spec (bundled name, HF dir, .gguf) as an `HFLM`, loaded once
    per process (`HFLM.shared`: the target and oracle serve every stage of an experiment)."""
    if isinstance(model, str | Path):
        from obliviate.models.hf_lm import HFLM

        return HFLM.shared(str(model), **hflm_kwargs)
    if not isinstance(model, LM):
        raise TypeError(f"expected an LM or a model path/name, got {type(model).__name__}")
    return model


def _describe(model: LM | str | Path, lm: LM) -> dict[str, Any]:
    info: dict[str, Any] = {"name": lm.name}
    path = model if isinstance(model, str | Path) else getattr(lm, "path", None)
    if path is not None:
        from obliviate.models.load import resolve_model_dir
        from obliviate.paths import content_fingerprint

        resolved = resolve_model_dir(str(path))
        info.update(spec=str(path), path=str(resolved), fingerprint=content_fingerprint(resolved))
    return info


def resolve_suites(names: str | Sequence[str]) -> list[str]:
    """Suite names, validated against the registry ("all" = every registered suite)."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if list(names) == ["all"]:
        return suite_registry.names()
    if not names:
        raise ValueError(f"no suite given; known suites: {', '.join(suite_registry.names())}")
    for n in names:
        suite_registry.get(n)  # raises UnknownComponentError with a "did you mean"
    return list(dict.fromkeys(names))


def evaluate(
    model: LM | str | Path,
    world: World | str | Path,
    suites: str | Sequence[str] = ("facts",),
    *,
    oracle: LM | str | Path | None = None,
    reference: LM | str | Path | None = None,
    out: str | Path | None = None,
    suite_args: Mapping[str, Mapping[str, Any]] | None = None,
    limit: int | None = None,
    overwrite: bool = False,
) -> EvalResult:
    """Run `suites` on `model` over `world` and return (and with `out`, write) the eval log.

    `out` is a directory (the log goes to `out/eval.json`) or a path ending in `.json`; an
    existing log there is replaced only with `overwrite` (and only if obliviate wrote it).
    `suite_args[name]` are keyword options of that suite; `limit` caps items per split in
    every suite (quick runs). Suites that compare against the oracle fail before any model
    work if `oracle` is missing.
    """
    names = resolve_suites(suites)
    args = {n: dict((suite_args or {}).get(n, {})) for n in names}
    unknown = set(suite_args or {}) - set(names)
    if unknown:
        raise ValueError(f"suite_args given for suites not being run: {sorted(unknown)}")
    need = [n for n in names if suite_registry.meta(n).get("needs_oracle")]
    if need and oracle is None:
        raise ValueError(
            f"suite(s) {need} compare against the oracle (the model fine-tuned on retain data only): "
            "pass oracle=… / --oracle DIR, or drop them"
        )
    log_path = None
    if out is not None:
        from obliviate.paths import check_out_file

        path = Path(out)
        path = path if path.suffix == ".json" else path / EVAL_LOG_NAME
        log_path = check_out_file(path, keys=("kind", "results"), overwrite=overwrite)
    w = world if isinstance(world, World) else load_world(world)
    t0 = time.perf_counter()
    lm = as_lm(model)
    # An oracle given as a path is loaded only when a suite compares against it (seconds saved
    # per evaluation); it is still recorded as an input.
    oracle_lm = as_lm(oracle) if oracle is not None and (need or not isinstance(oracle, str | Path)) else None
    ref_lm = as_lm(reference) if reference is not None else None
    load_s = time.perf_counter() - t0

    log = RunLog(kind="eval", inputs={"model": _describe(model, lm), "world": {
        "name": w.name, "content_hash": w.content_hash}})
    if oracle_lm is not None:
        log.inputs["oracle"] = _describe(oracle, oracle_lm)  # type: ignore[arg-type]
    elif oracle is not None:
        log.inputs["oracle"] = {"spec": str(oracle), "loaded": False}
    if ref_lm is not None:
        log.inputs["reference"] = _describe(reference, ref_lm)  # type: ignore[arg-type]
    result = EvalResult(log=log)
    perf: dict[str, float] = {"load_s": load_s}
    seen: set[tuple[str, str, str]] = set()
    for name in names:
        fn = suite_registry.get(name)
        kwargs = {"limit": limit, **args[name]}
        t = time.perf_counter()
        try:
            res: SuiteResult = fn(lm, w, oracle=oracle_lm, reference=ref_lm, **kwargs)
        except TypeError as e:
            raise ValueError(f"bad options for suite '{name}' ({kwargs}): {e}") from e
        perf[f"{name}_s"] = time.perf_counter() - t
        result.suites[name] = res
        log.components.append(Component(kind="suites", name=name, args=res.args))
        log.results.update({f"{name}/{k}": v for k, v in res.metrics.items()})
        log.notes += [f"{name}: {n}" for n in res.notes]
        for s in res.samples:  # suites asking the same question log it once
            key = (s.id, s.prompt, s.output)
            if key not in seen:
                seen.add(key)
                log.samples.append(s if s.suite else Sample(**{**s.model_dump(), "suite": name}))
    perf["total_s"] = time.perf_counter() - t0
    for c in COUNTERS:
        if hasattr(lm, c):
            perf[c] = float(getattr(lm, c))
    log.perf = perf
    if log_path is not None:
        result.path = log.save(log_path)
    return result
