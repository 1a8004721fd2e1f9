"""The `Method` base class every unlearning method subclasses, and what it is handed.

A method is one class in one file. The engine (`obliviate.unlearn`) tokenizes the world once
into an `UnlearnData`, calls the hooks below in order, and runs THE training loop:

    prepare(model, data, ctx) -> module to train   # once: reference log-probs, frozen copies
    trainable(module)                              # which parameters get gradients
    loss(module, batch) -> StepOutput              # every step, on a ForgetRetainBatch
    finalize(trained, original) -> model to save   # e.g. task-vector negation, ULD wrapper

A subclass overrides only what it must; `needs_retain` / `needs_reference` / `needs_alternate`
tell the engine what data to build and which bad inputs to refuse before any work is done.
"""

from __future__ import annotations

import difflib
import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from obliviate.train.batch import Example, ForgetRetainBatch, TokenBatch, collate
from obliviate.train.loop import StepOutput, TrainConfig, bf16_autocast
from obliviate.train.losses import (
    TopKReference,
    answer_only,
    mean_nll,
    sequence_logprob,
    top_k_reference,
)

# Reference tokens kept per anchor answer token, and the length of the starting model's answers:
# as in the target's rehearsal (`FinetuneConfig.replay_top_k`, `replay_answer_tokens`).
ANCHOR_TOP_K = 32
ANCHOR_ANSWER_TOKENS = 24
# The tuned methods anchor on the whole rehearsal pool (resources/replay_qa.tsv). A default run
# draws only 80-200 anchor examples, yet drawing them from all 676 questions kept more general
# knowledge than cycling through 128 (session 9: GradDiff 0.894 on seeds 0, 1, 2 against 0.867 /
# 0.899 / 0.862; SimNPO 0.936 against 0.867 on seed 0). Answering 676 questions costs ~35 s once
# per starting model, the top-k reference pass ~20 s; both are cached on disk.
ANCHOR_POOL = 676
# One declaration for the field that tuned methods re-default to ANCHOR_POOL.
AnchorPairs = Annotated[
    int,
    Field(
        ge=0,
        le=100_000,
        description="real-world questions (the rehearsal pool) answered greedily by the starting "
        "model itself; a KL to the starting model along those answers keeps its general knowledge "
        "without diluting the retain term (0 = off)",
    ),
]


class MethodConfigError(ValueError):
    """A method's configuration is invalid; the message names the field, the value and the rule."""


class MethodDataError(ValueError):
    """The data given cannot run this method (empty forget set, retain data missing, ...)."""


class MethodConfig(BaseModel):
    """Settings every method shares: batch shapes, which texts to use, and an optional
    weight-saliency mask (SalUn, Fan et al. 2024; WAGLE, Jia et al. 2024) restricting updates."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(4, ge=1, le=4096, description="forget examples per step")
    retain_batch_size: int = Field(4, ge=1, le=4096, description="retain examples per step")
    forget_data: Literal["qa", "passages", "both"] = Field(
        "qa", description="forget texts: the forget facts' QA pairs, their passages, or both"
    )
    retain_data: Literal["qa", "passages", "both"] = Field(
        "qa", description="retain texts, sampled afresh every step from retain + neighbour subjects"
    )
    retain_replay: int = Field(
        0,
        ge=0,
        le=100_000,
        description="hand-written real-world QA pairs (the target's rehearsal pool) added to the "
        "retain data, so the retain term also covers general knowledge (as RMU's wikitext does)",
    )
    anchor_pairs: AnchorPairs = 0
    anchor_weight: float = Field(
        1.0, ge=0.0, le=1e4, description="weight of the anchor KL (with anchor_pairs > 0)"
    )
    anchor_batch_size: int = Field(
        8, ge=1, le=4096, description="anchor examples per step (with anchor_pairs > 0)"
    )
    max_tokens: int = Field(
        256, ge=8, le=32768, description="truncate every training text to this many tokens"
    )
    train_embeddings: bool = Field(
        False,
        description="also train the token embeddings (and a tied LM head); frozen by default, as in "
        "building the target: the forget set is about facts, not tokens, and a step is cheaper",
    )
    mask: Literal["salun", "wagle"] | None = Field(
        None,
        description="update only salient weights: 'salun' = top |grad L_f|, "
        "'wagle' = top |(theta - grad L_r / mu) * grad L_f|; None = no mask",
    )
    mask_fraction: float = Field(
        0.5, gt=0.0, le=1.0, description="fraction of trainable weights the saliency mask keeps"
    )
    wagle_mu: float = Field(
        1e-2, gt=0.0, description="WAGLE's diagonal-Hessian constant mu in theta - grad L_r / mu"
    )


@dataclass
class UnlearnData:
    """Token ids built once by the engine. `alternate[i]` pairs forget question i with another
    answer (an IdK answer, a template) for methods that need one; `None` otherwise."""

    forget: list[Example]
    retain: list[Example]
    pad_id: int
    alternate: list[Example] | None = None
    forget_kinds: list[str] = field(default_factory=list)  # "qa" | "passage", per forget item
    anchor: list[Example] = field(default_factory=list)  # real-world Q + the model's own answer

    def forget_batches(self, batch_size: int) -> Iterator[TokenBatch]:
        return iter_batches(self.forget, self.pad_id, batch_size)

    def retain_batches(self, batch_size: int) -> Iterator[TokenBatch]:
        return iter_batches(self.retain, self.pad_id, batch_size)


@dataclass
class Context:
    """What `prepare` may need besides the model: tokenizer, precision, device, and `notes`
    (values resolved at run time, e.g. RMU's layer, that the engine writes into the run log)."""

    tokenizer: Any
    train_cfg: TrainConfig
    device: torch.device
    bf16: bool
    seed: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    def autocast(self) -> AbstractContextManager[Any]:
        # No-grad passes run in the training precision, so that e.g. NPO's log-ratio is exactly
        # zero at step 0 instead of carrying a bf16-vs-fp32 offset.
        return bf16_autocast(self.device, self.bf16)


def iter_batches(examples: Sequence[Example], pad_id: int, batch_size: int) -> Iterator[TokenBatch]:
    """Length-sorted batches (least padding) whose `index` is each row's position in `examples`."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i][0]) + len(examples[i][1]))
    for s in range(0, len(order), batch_size):
        chunk = order[s : s + batch_size]
        yield collate([examples[i] for i in chunk], pad_id, index=chunk)


class Method:
    """Base class: subclass it, set `Config`, override `loss` (and what else you must)."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    # Optimiser settings tuned for the bundled SmolLM2-135M on the quickstart world; a caller's
    # train config overrides them field by field, and the log records what was used.
    train_defaults: ClassVar[dict[str, Any]] = {
        "lr": 1e-5,
        "max_steps": 20,
        "epochs": 1000.0,
        "schedule": "constant",
    }
    # Whether a no-grad retain NLL of the trained module means anything (not for ULD, whose
    # trained module is an assistant meant to be bad at retain data).
    monitor_retain: ClassVar[bool] = True
    # Whether the trained module is the model to be saved, so that anchoring it to the starting
    # model's behaviour means anything (not for task vectors or ULD, which train a forget expert).
    trains_output: ClassVar[bool] = True
    anchor_ref: TopKReference | None = None

    def __init__(self, config: MethodConfig | Mapping[str, Any] | None = None) -> None:
        self.config = self.validate_config(config)

    @classmethod
    def validate_config(cls, config: MethodConfig | Mapping[str, Any] | None) -> Any:
        """Validate a mapping (or a config of this type) into `cls.Config`, with errors that name
        the field, the bad value, the rule, and what the field means."""
        if isinstance(config, cls.Config):
            return config
        raw = dict(config.model_dump() if isinstance(config, BaseModel) else (config or {}))
        try:
            return cls.Config.model_validate(raw)
        except ValidationError as e:
            lines = []
            for err in e.errors():
                fname = ".".join(str(p) for p in err["loc"]) or "(config)"
                info = cls.Config.model_fields.get(str(err["loc"][0])) if err["loc"] else None
                help_ = f" ({info.description})" if info is not None and info.description else ""
                got = (
                    f"got {err['input']!r}: " if "input" in err and err["type"] != "missing" else ""
                )
                msg = err["msg"]
                if err["type"] == "extra_forbidden":
                    close = difflib.get_close_matches(
                        fname, list(cls.Config.model_fields), n=2, cutoff=0.6
                    )
                    msg = "unknown field" + (
                        f"; did you mean: {', '.join(close)}?" if close else ""
                    )
                lines.append(f"  {fname}: {got}{msg}{help_}")
            known = ", ".join(cls.Config.model_fields)
            raise MethodConfigError(
                f"invalid config for method '{cls.name}':\n"
                + "\n".join(lines)
                + f"\nKnown fields: {known}"
            ) from None

    # ----- what the engine must provide ---------------------------------------------------------
    @property
    def needs_retain(self) -> bool:
        """True if the loss uses retain data (the engine refuses to run without it)."""
        return False

    @property
    def needs_reference(self) -> bool:
        """True if the method keeps a frozen copy or per-example values of the starting model."""
        return False

    @property
    def needs_alternate(self) -> bool:
        """True if each forget question needs an alternative answer (`alternate_answer`)."""
        return False

    def alternate_answer(self, question: str, answer: str, rng: random.Random) -> str:
        """The alternative answer paired with a forget question (default: a random IdK answer)."""
        from obliviate.methods.idk_answers import IDK_ANSWERS

        return rng.choice(IDK_ANSWERS)

    # ----- hooks --------------------------------------------------------------------------------
    def prepare(self, model: Any, data: UnlearnData, ctx: Context) -> Any:
        """Compute anything needed once before training; return the module to train."""
        return model

    def trainable(self, model: Any) -> None:
        """Set `requires_grad` on the parameters this method trains (default: leave all as they
        are, i.e. every weight, or only adapters under LoRA)."""

    def loss(self, model: Any, batch: ForgetRetainBatch) -> StepOutput:
        raise NotImplementedError(f"{type(self).__name__} must implement loss()")

    def finalize(self, trained: Any, original: Any) -> Any:
        """Turn the trained module into the model to save (default: the trained model itself)."""
        return trained

    # ----- the step the engine calls -------------------------------------------------------------
    def prepare_anchor(
        self, model: Any, data: UnlearnData, ctx: Context, model_dir: Path | None = None
    ) -> None:
        """The starting model's top-k next-token log-probs along its own answers to the anchor
        questions, once, before anything trains (`anchor_pairs > 0`). Cached on disk, like the
        answers, when `model` is exactly what `model_dir` holds (None: computed every time):
        every method unlearning one target shares it, which saves ~20 s per run on CPU."""

        from obliviate.paths import cached_on_disk, content_fingerprint, content_hash, home

        def compute() -> TopKReference:
            return top_k_reference(
                model, data.anchor, data.pad_id, ANCHOR_TOP_K, autocast=ctx.autocast
            )

        path = None
        if model_dir is not None:
            # The examples carry the answers' token ids; precision and device change the values.
            key = content_hash(
                [content_fingerprint(model_dir), data.anchor, ANCHOR_TOP_K, ctx.bf16, ctx.device.type]
            )
            path = home() / "rehearsal" / f"anchor-ref-{key}.safetensors"
        self.anchor_ref = cached_on_disk(
            path, compute, TopKReference.to_bytes, TopKReference.from_bytes
        )

    def step(self, model: Any, batch: ForgetRetainBatch) -> StepOutput:
        """`loss`, plus the anchor KL when the batch carries anchor examples, plus a no-grad retain
        NLL on batches the engine marks for monitoring, so the collapse guard can watch retain
        quality even for methods that never train on it.

        The anchor is self-distillation (Yang et al. 2024, "Self-Distillation Bridges Distribution
        Gap in Language Model Fine-Tuning") used as a regulariser: KL(π_start ‖ π_θ) along the
        starting model's own greedy answers keeps the path its decoding takes, where the general
        knowledge an unlearning step damages shows up; it is the same rehearsal that built the
        target (`FinetuneConfig.replay_answers="base"`)."""
        out = self.loss(model, batch)
        if batch.anchor is not None:
            if self.anchor_ref is None:
                raise RuntimeError(f"{self.name}: prepare_anchor() must run before the anchor KL")
            index = [int(i) for i in batch.anchor.index]
            kl = self.anchor_ref.kl(answer_only(model, batch.anchor), index)
            out = StepOutput(
                out.loss + self.config.anchor_weight * kl,
                {**out.logs, "anchor_kl": float(kl.detach())},
            )
        monitor = self.monitor_retain and "monitor" in batch.extra
        if "retain_nll" not in out.logs and batch.retain is not None and monitor:
            with torch.no_grad():
                out.logs["retain_nll"] = float(mean_nll(model, batch.retain))
        return out

    def describe(self) -> dict[str, Any]:
        """Name and full config, as recorded in the run log."""
        return {"name": self.name, "args": self.config.model_dump(mode="json")}


# ----- building blocks shared by several methods -------------------------------------------------


@torch.no_grad()
def precompute_sequence_logprobs(
    model: Any, examples: Sequence[Example], pad_id: int, ctx: Context, batch_size: int = 8
) -> torch.Tensor:
    """log π(y|x) of every example in one no-grad pass, indexed like `examples` (on ctx.device).

    Used for the frozen reference terms of NPO and DPO: computing them once here replaces a
    second (reference) forward pass at every training step.
    """
    out = torch.zeros(len(examples), dtype=torch.float32, device=ctx.device)
    was_training = model.training
    model.eval()
    for b in iter_batches(examples, pad_id, batch_size):
        b = b.to(ctx.device)
        with ctx.autocast():
            logp, _ = sequence_logprob(model, b)
        out[b.index] = logp.float()
    model.train(was_training)
    return out


def frozen_copy(model: Any) -> Any:
    """A deep copy with gradients off, for references that must not move during training."""
    import copy

    ref = copy.deepcopy(model)
    ref.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref
