"""`unlearn`: run one registered unlearning method on a model and a world, write the result.

    result = unlearn("npo", "runs/target", "runs/world", "runs/npo", config={"beta": 0.1})

Loads the model, tokenizes the forget / retain data once, lets the method prepare (reference
log-probs, frozen activations, an assistant …), runs THE training loop, and writes a new model
directory (safetensors, or a LoRA adapter) plus `unlearn_log.json`: method and full config, train
config, base model, the chain of earlier unlearning runs when the base was itself unlearned (MUSE
sustainability), notes the method resolved at run time, collapse warnings and the training curve.
Bad inputs fail before any model is loaded, with messages that say what to change.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from obliviate.data.schema import World, load_world
from obliviate.evals.stats import Aggregate
from obliviate.methods.base import Context, Method, MethodConfig, MethodConfigError, MethodDataError
from obliviate.registry import methods
from obliviate.runlog import Component, CurvePoint, RunLog
from obliviate.train.loop import LoraSettings, TrainConfig, freeze_embeddings, train

LOG_FILE = "unlearn_log.json"


class UnlearningAnchorWarning(UserWarning):
    """The general-knowledge anchor was asked for but the starting model gave nothing to keep."""


class UnlearningCollapseWarning(UserWarning):
    """Retain NLL rose well above its starting value: the model may be degenerating."""


@dataclass
class UnlearnResult:
    out_dir: Path
    method: str
    config: dict[str, Any]
    train: dict[str, Any]
    steps: int
    tokens: int
    wall_s: float
    stopped: str
    curve: list[dict[str, float]]
    warnings: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    prepare_s: float = 0.0  # once-before-training work (reference passes, reinforced copy, mask)
    train_s: float = 0.0  # the training loop alone

    @property
    def log_path(self) -> Path:
        return self.out_dir / LOG_FILE

    @property
    def tokens_per_s(self) -> float:
        """Training throughput (the loop alone, without `prepare`)."""
        return self.tokens / self.train_s if self.train_s > 0 else 0.0


class CollapseGuard:
    """Loop callback: warn (and record) when retain NLL exceeds `factor` × its first value.

    The first value is floored at 0.5 nats/token: a fine-tuned target can start near 0 on its
    retain facts, and a rise from 0.05 to 0.2 is not a collapse.
    """

    def __init__(self, factor: float = 3.0, stop: bool = False, floor: float = 0.5) -> None:
        self.factor, self.stop, self.floor = factor, stop, floor
        self.start: float | None = None
        self.events: list[dict[str, float]] = []

    def __call__(self, step: int, row: dict[str, float]) -> str | None:
        value = row.get("retain_nll")
        if value is None:
            return None
        if self.start is None:
            self.start = value
            return None
        limit = self.factor * max(self.start, self.floor)
        if value <= limit:
            return None
        self.events.append({"step": step, "retain_nll": value, "start": self.start, "limit": limit})
        msg = (
            f"retain NLL {value:.3f} at step {step} exceeds {self.factor:g}x its start "
            f"({self.start:.3f}, floored at {self.floor:g}): the model may be collapsing; "
            "lower the learning rate or steps, or raise the retain weight"
        )
        if len(self.events) == 1:
            warnings.warn(msg, UnlearningCollapseWarning, stacklevel=2)
        return f"collapse guard: {msg}" if self.stop else None

    @property
    def messages(self) -> list[str]:
        if not self.events:
            return []
        e, worst = self.events[0], max(ev["retain_nll"] for ev in self.events)
        msg = (
            f"collapse guard: retain NLL first exceeded {e['limit']:.3f} at step {int(e['step'])} "
            f"(start {e['start']:.3f}, worst {worst:.3f}, {len(self.events)} logged steps over)"
        )
        return [msg]


def make_method(name: str, config: MethodConfig | Mapping[str, Any] | None = None) -> Method:
    """Look up a registered method (did-you-mean on typos) and validate its config."""
    cls = methods.get(name)
    return cls(config)  # type: ignore[no-any-return]


def _train_config(
    m: Method, train_cfg: TrainConfig | Mapping[str, Any] | None, seed: int
) -> TrainConfig:
    if isinstance(train_cfg, TrainConfig):
        return train_cfg.model_copy(update={"seed": seed})
    merged = {**m.train_defaults, **dict(train_cfg or {}), "seed": seed}
    try:
        return TrainConfig.model_validate(merged)
    except ValidationError as e:
        bad = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
        raise MethodConfigError(f"invalid train config: {bad}") from None


def _check_inputs(m: Method, world: World, train_cfg: TrainConfig) -> None:
    cfg = m.config
    n_forget = (len(world.forget_facts) if cfg.forget_data in ("qa", "both") else 0) + (
        len(world.passages_in("forget")) if cfg.forget_data in ("passages", "both") else 0
    )
    if n_forget == 0:
        raise MethodDataError(
            f"the forget set is empty: world '{world.name}' has no forget "
            f"{'facts' if cfg.forget_data == 'qa' else 'texts'} for forget_data='{cfg.forget_data}'; "
            "mark some subjects as forget when building the world, or choose another forget_data"
        )
    n_retain = (len(world.retain_facts) if cfg.retain_data in ("qa", "both") else 0) + (
        len(world.passages_in("retain", "neighbour"))
        if cfg.retain_data in ("passages", "both")
        else 0
    ) + cfg.retain_replay
    if m.needs_retain and n_retain == 0:
        raise MethodDataError(
            f"method '{m.name}' needs retain data but world '{world.name}' has none for "
            f"retain_data='{cfg.retain_data}'; add retain subjects, or set retain_weight=0 if the "
            "method allows it"
        )
    if m.needs_alternate and cfg.forget_data != "qa":
        raise MethodDataError(
            f"method '{m.name}' pairs forget questions with other answers: use forget_data='qa'"
        )
    if cfg.anchor_pairs and not m.trains_output:
        raise MethodConfigError(
            f"method '{m.name}' trains a separate forget model, so anchoring it to the starting "
            "model's answers would undo its purpose; set anchor_pairs=0"
        )
    if cfg.mask == "wagle" and n_retain == 0:
        raise MethodDataError(
            "the 'wagle' saliency mask needs retain data; use mask='salun' or add retain data"
        )
    if cfg.mask is not None and train_cfg.weight_decay > 0:
        raise MethodConfigError(
            "a saliency mask needs weight_decay=0: AdamW's decay would move the masked-out weights"
        )


def _chain(base_dir: Path) -> list[dict[str, Any]]:
    """Earlier unlearning runs that produced `base_dir`, oldest first (empty for a plain model)."""
    log_path = base_dir / LOG_FILE
    if not log_path.is_file():
        return []
    log = RunLog.load(log_path)
    method = next((c for c in log.components if c.kind == "methods"), None)
    entry = {
        "model_dir": str(base_dir),
        "method": method.name if method else None,
        "config": method.args if method else {},
        "base_model": log.inputs.get("base_model"),
        "world": log.inputs.get("world"),
        "created": log.created,
    }
    return list(log.inputs.get("chain", [])) + [entry]


def unlearn(
    method: str,
    model: Any,
    world: str | Path | World,
    out_dir: str | Path,
    *,
    config: MethodConfig | Mapping[str, Any] | None = None,
    train_cfg: TrainConfig | Mapping[str, Any] | None = None,
    lora: LoraSettings | Mapping[str, Any] | None = None,
    save_adapter: bool = False,
    seed: int = 0,
    overwrite: bool = False,
    collapse_factor: float = 3.0,
    stop_on_collapse: bool = False,
    monitor_every: int = 5,
    callbacks: Sequence[Callable[[int, dict[str, float]], str | None]] = (),
) -> UnlearnResult:
    """Unlearn `world`'s forget set from `model` with method `method`; write `out_dir`.

    model: a model spec for `load_model` (directory, .gguf, bundled name) or a `LoadedModel`.
    config: the method's settings (its pydantic Config, or a mapping of overrides).
    train_cfg: a full `TrainConfig`, or a mapping of overrides on the method's tuned defaults.
    lora: train LoRA adapters instead of full weights; merged into the saved model unless
        `save_adapter`. overwrite: replace an earlier obliviate model at `out_dir` (a directory
        obliviate did not write is never replaced). collapse_factor: warn when retain NLL exceeds this multiple of its start
        (and stop there if `stop_on_collapse`). monitor_every: for methods that do not train on
        retain data, measure retain NLL every this many steps (0: never). callbacks: extra loop
        callbacks `(step, row) -> reason to stop | None`, e.g. a progress bar.
    """
    from obliviate.methods.batches import anchor_examples, batch_source, build_data
    from obliviate.methods.saliency import apply_mask, compute_mask
    from obliviate.models.load import LoadedModel, load_model, save_model
    from obliviate.paths import check_out_dir
    from obliviate.train.lora import apply_lora, merge_lora

    m = make_method(method, config)
    if collapse_factor < 1.0 or monitor_every < 0:
        raise MethodConfigError("collapse_factor must be >= 1 and monitor_every >= 0")
    w = world if isinstance(world, World) else load_world(world)
    tcfg = _train_config(m, train_cfg, seed)
    lora_cfg = LoraSettings.model_validate(dict(lora)) if isinstance(lora, Mapping) else lora
    if save_adapter and lora_cfg is None:
        raise MethodConfigError("save_adapter=True needs LoRA settings (lora=...)")
    if save_adapter and m.name == "uld":
        raise MethodConfigError(
            "uld saves a target + assistant pair; it cannot be saved as an adapter"
        )
    _check_inputs(m, w, tcfg)
    inputs = [p for p in (model, world) if isinstance(p, str | Path) and Path(p).exists()]
    check_out_dir(out_dir, "model", overwrite=overwrite, inputs=inputs)

    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    out = Path(out_dir)
    if out.resolve() == loaded.path.resolve():
        raise MethodConfigError(
            f"refusing to overwrite the source model directory {out}; choose a new out_dir"
        )
    if type(loaded.model).__name__ == "ULDModel":
        raise MethodConfigError(
            "a ULD model cannot be unlearned further; unlearn its target instead"
        )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ctx = Context(loaded.tokenizer, tcfg, device, tcfg.uses_bf16(device), seed)
    base_model = loaded.model.to(device)

    data = build_data(w, loaded.tokenizer, m, seed=seed)
    t0 = time.perf_counter()
    if m.config.anchor_pairs:
        # Cached by the directory's content only when the model was loaded from it here.
        own_dir = None if isinstance(model, LoadedModel) else loaded.path
        data.anchor = anchor_examples(base_model, loaded.tokenizer, own_dir, m.config)
        ctx.notes["anchor_examples"] = len(data.anchor)
        if data.anchor:
            m.prepare_anchor(base_model, data, ctx, own_dir)
        else:
            warnings.warn(
                f"the starting model's greedy answers to all {m.config.anchor_pairs} anchor "
                "questions were empty, so there is nothing to anchor on: training without the "
                "anchor KL (set anchor_pairs=0 to silence this)",
                UnlearningAnchorWarning,
                stacklevel=2,
            )
    trained = m.prepare(base_model, data, ctx)
    if lora_cfg is not None:
        trained = apply_lora(trained, lora_cfg)
    m.trainable(trained)
    if not m.config.train_embeddings:
        freeze_embeddings(trained)
    handles = []
    if m.config.mask is not None:
        masks = compute_mask(
            trained,
            data.forget,
            data.retain,
            data.pad_id,
            ctx,
            m.config.mask,
            m.config.mask_fraction,
            m.config.wagle_mu,
        )
        handles = apply_mask(trained, masks)
    prepare_s = time.perf_counter() - t0

    guard = CollapseGuard(collapse_factor, stop_on_collapse)
    source = batch_source(data, m.config, use_retain=m.needs_retain, monitor_every=monitor_every)
    result = train(trained, source, m.step, tcfg, callbacks=[guard, *callbacks])
    for h in handles:
        h.remove()

    final = m.finalize(result_model(trained), base_model)
    if lora_cfg is not None and not save_adapter:
        final = merge_lora(final)

    res = UnlearnResult(
        out_dir=out,
        method=m.name,
        config=m.config.model_dump(mode="json"),
        train=tcfg.model_dump(mode="json"),
        steps=result.steps,
        tokens=result.tokens,
        wall_s=result.wall_s + prepare_s,
        stopped=result.stopped,
        curve=result.curve,
        warnings=guard.messages,
        notes=dict(ctx.notes),
        prepare_s=prepare_s,
        train_s=result.wall_s,
    )
    log = RunLog(
        kind="unlearn",
        components=[
            Component(kind="methods", name=m.name, args=res.config),
            Component(kind="train", name="train", args=res.train),
            Component(
                kind="train",
                name="lora",
                args={
                    "settings": lora_cfg.model_dump(mode="json") if lora_cfg else None,
                    "saved_as_adapter": save_adapter,
                },
            ),
        ],
        inputs={
            "base_model": str(loaded.path),
            "base_source": loaded.source,
            "world": {"name": w.name, "content_hash": w.content_hash},
            "forget_examples": len(data.forget),
            "retain_examples": len(data.retain),
            "seed": seed,
            "chain": _chain(loaded.path),
            "resolved": res.notes,  # values the method chose at run time (RMU layer, ...)
        },
        results={
            k: Aggregate(value=v, n=1, note="mean over the last logged step")
            for k, v in _final(res.curve).items()
        },
        curves=_curves(res.curve),
        perf={
            "steps": float(res.steps),
            "tokens": float(res.tokens),
            "prepare_s": prepare_s,
            "train_s": result.wall_s,
            "wall_s": res.wall_s,
            "tokens_per_s": result.tokens_per_s,
        },
        notes=[f"stopped: {res.stopped}", f"device: {device}, bf16: {ctx.bf16}", *res.warnings],
    )
    save_model(
        LoadedModel(final, loaded.tokenizer, loaded.source, loaded.path),
        loaded.tokenizer,
        out,
        overwrite=overwrite,
        files={LOG_FILE: log.model_dump_json(indent=1) + "\n"},
    )
    return res


def _final(curve: list[dict[str, float]]) -> dict[str, float]:
    """The losses of the last logged step (and the last retain NLL seen, if monitored)."""
    out: dict[str, float] = {}
    for row in curve:
        out.update(
            {f"final/{k}": float(v) for k, v in row.items() if k not in ("step", "epoch", "lr")}
        )
    return out


def _curves(curve: list[dict[str, float]]) -> dict[str, list[CurvePoint]]:
    """One curve per logged quantity (forget_loss, retain_loss, retain_nll, ...) against step."""
    out: dict[str, list[CurvePoint]] = {}
    for row in curve:
        for k, v in row.items():
            if k not in ("step", "epoch"):
                out.setdefault(k, []).append(CurvePoint(x=row["step"], y=float(v)))
    return out


def result_model(trained: Any) -> Any:
    """The loop trains in place, but accelerate leaves its bf16-autocast wrapper on `forward`;
    remove it so the returned model computes in its own precision, like a freshly loaded one."""
    from accelerate.utils import extract_model_from_parallel

    return extract_model_from_parallel(trained, keep_fp32_wrapper=False)
