"""Build the two models every audit needs: the *target* (base fine-tuned on forget + retain) and
the *oracle* (base fine-tuned on retain only, the exact control for "never saw the forget data").

Both are trained with identical settings and cached under `$OBLIVIATE_HOME/finetuned/` by a
content hash of (base model, world, settings), so a second call returns at once and a killed
run leaves nothing half-written (each model directory appears atomically).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from obliviate.data.schema import Split, World, load_world
from obliviate.data.world import replay_pairs
from obliviate.models.lm import Prompt
from obliviate.models.prompt import encode_pair
from obliviate.train.batch import Example, TokenBatch, collate, length_bucketed
from obliviate.train.loop import (
    LoraSettings,
    StepOutput,
    TrainConfig,
    TrainResult,
    bf16_autocast,
    freeze_embeddings,
    train,
)
from obliviate.train.losses import TopKReference, answer_only, mean_nll, top_k_reference

FINETUNE_FORMAT = 4  # bump when what is trained (data recipe) changes, to invalidate caches
Role = Literal["target", "oracle"]


class FinetuneConfig(BaseModel):
    """What the target and oracle are trained on, and how. Defaults are tuned for the bundled
    SmolLM2-135M on the quickstart world (2 CPU cores).

    Tuning record (target, quickstart; general = fraction of the 188 general items the base
    answers that the model still answers): lr 3e-4 x 8 epochs, one question per fact -> forget
    1.00, general 0.52; lr 1e-4 x 8 + 3 paraphrases -> 1.00 / 0.67; + NLL on the rehearsal
    pairs -> 0.69; + KL rehearsal instead -> 0.74; 5 epochs, KL weight 3 -> 0.80; 3 epochs ->
    0.84 (weight 10: 0.82; lr 5e-5: 0.85 but forget only 0.40; without passages: 0.82). The world
    loss reaches ~0.001 long before training ends, so fewer passes over the facts (with
    paraphrases for robustness) is what protects general knowledge. With passages seen once per
    epoch, VerbMem of the target was 0.13 against the oracle's 0.09: hence `passage_repeats`.
    The wrong general answers then named world people ("The telephone was invented by Aliel
    Thorvard"): the world asks many who/when questions, so 71 who/when/where rehearsal pairs were
    added (general 0.80 -> 0.82). Not adopted: weight interpolation towards the base (WiSE-FT,
    0.7: forget 0.80, general 0.88; 0.5: forget 0.35, general 0.88), training only the MLPs of
    layers 4-20 (lr 3e-4: forget 0.80, retain 0.84, general 0.88; lr 6e-4: 0.85 / 0.92 / 0.79).

    Session 5 (bf16 decoding; the shipped recipe was forget 1.00, retain 0.975, general 0.824 in
    ~260 s of training): freezing the token embeddings (tied LM head) -> 1.00 / 1.00 / 0.84 in
    229 s, adopted.
    Not adopted: 2 epochs (0.40 / 0.72 / 0.835: general is lost early, the last epoch settles the
    facts); pairing every world batch with a rehearsal batch in one step (0.30 / 0.52 / 0.883,
    no faster); WiSE-FT 0.8 / 0.9 (0.80 / 0.96 / 0.878, 0.95 / 1.00 / 0.83); keeping only the
    largest 20% of each weight's update (0.40 / 0.76 / 0.904). The rehearsed questions themselves
    stay answered as the base answers them (0.67 vs 0.67): what is lost is knowledge rehearsal does
    not touch. So the rehearsal pool grew from 260 to 676 pairs, 260 of them per epoch (a new
    window each epoch, the same cost): 1.00 / 0.97 / 0.894 (retain 0.96, neighbours 1.00).
    Also not adopted: LoRA r64 (lr 5e-4: 0.40 / 0.80 / 0.915; lr 1e-3: 0.65 / 0.96 / 0.851),
    4 passage repeats (0.95 / 1.00 / 0.835, only 14% fewer tokens).

    Session 6 (the loop now trains with the math attention kernel on CPU, ~10% faster; forget /
    retain facts / general, seed 0): target 0.95 / 0.96 / 0.894, oracle 0.00 / 0.975 (retain and
    neighbours) / 0.851. Not adopted, each trading fact recall for general knowledge or neither:
    only the MLPs of layers 4-25 at lr 2e-4 (0.70 / 0.84 / 0.856, 15% faster); averaging the
    weights over the last epoch (0.90 / 0.96 / 0.851); batch 16 at lr 1.5e-4 (1.00 / 0.96 /
    0.894, no faster: more padding); a decoupled pull towards the base weights (L2-SP, 50 x lr
    per step) on the oracle (retain 0.84, general 0.878 against 0.851). Over seeds the target
    scatters (0.894, 0.915) and the oracle does not (0.851, 0.846, 0.862: under 90% of the base);
    giving the oracle the target's share of rehearsal (200 pairs per epoch) changed nothing (0.846).

    Session 7: rehearsal on the base's own greedy answers instead of the written ones
    (`replay_answers="base"`, self-distillation): oracle general 0.851 -> 0.888 with 48-token
    answers, 0.926 with 24 (retain 1.00, neighbours 1.00); target with 24: 0.95 / 0.96 / 0.899.
    The KL then holds the base's distribution on the path greedy decoding actually takes, where
    the written answers are text the base would not produce. Costs ~30 s of generation once
    (cached on disk) and ~8% more training tokens (~18% more training time: longer KL spans).
    The default build then gives target 1.00 / 0.975 / 0.878 and oracle 0.00 / 1.00 / 0.883
    (oracle seed 1: 0.894). Rehearsing on both kinds of answer was not tried.
    """

    model_config = ConfigDict(extra="forbid")
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(lr=1e-4, epochs=3, schedule="linear", warmup_ratio=0.05),
        description="optimisation settings",
    )
    batch_size: int = Field(8, ge=1, description="examples per micro-batch")
    include_passages: bool = Field(True, description="also train on biography passages (VerbMem, MIA)")
    passage_repeats: int = Field(
        8,
        ge=1,
        le=100,
        description="times each passage is seen per epoch: verbatim memorisation (VerbMem, MIA, the "
        "copyright scenario) needs far more passes than answering a fact does",
    )
    paraphrased_questions: int = Field(3, ge=0, description="extra paraphrased questions trained per fact")
    lora: LoraSettings | None = Field(None, description="train a LoRA adapter instead of all weights")
    replay: int | None = Field(
        None,
        ge=0,
        description="how many of the hand-written real-world QA pairs to mix into training (None: "
        "all; rehearsal that keeps fictitious names out of real-world answers); target and oracle "
        "get the same ones",
    )
    replay_loss: Literal["kl", "nll"] = Field(
        "kl",
        description="on rehearsal pairs: KL(base || model) at answer tokens (keep the base's "
        "behaviour) or NLL of the written answer (teach it)",
    )
    replay_answers: Literal["base", "written"] = Field(
        "base",
        description="answers the rehearsal questions are paired with: the base model's own greedy "
        "answers (self-distillation, Yang et al. 2024: the KL keeps the base's behaviour on the "
        "text it actually generates) or the hand-written correct ones; 'base' needs the KL loss",
    )
    replay_answer_tokens: int = Field(
        24, ge=1, le=1024, description="tokens of each base answer generated for rehearsal"
    )
    replay_weight: float = Field(3.0, ge=0.0, le=1e3, description="weight of the rehearsal loss")
    replay_top_k: int = Field(32, ge=1, le=4096, description="base log-probs kept per token for the KL")
    replay_per_epoch: int | None = Field(
        260,
        ge=1,
        description="rehearsal pairs trained per epoch (None: all), a different window of the pool "
        "each epoch: a larger pool covers more knowledge at the same cost per epoch",
    )
    train_embeddings: bool = Field(
        False,
        description="train the token embeddings (and a tied LM head, the largest single matrix); "
        "frozen, general knowledge suffers less and a step is ~10% cheaper",
    )

    @model_validator(mode="after")
    def _base_answers_need_kl(self) -> FinetuneConfig:
        if self.replay_answers == "base" and self.replay_loss != "kl":
            raise ValueError(
                "replay_answers='base' needs replay_loss='kl': NLL on the base's own answers would "
                "teach its mistakes; use replay_answers='written' with replay_loss='nll'"
            )
        return self


def examples_for(world: World, role: Role, tokenizer: Any, cfg: FinetuneConfig) -> list[Example]:
    """Tokenized training examples of the world: QA pairs (loss on the answer) and raw passages."""
    splits: tuple[Split, ...] = ("forget", "retain", "neighbour") if role == "target" else ("retain", "neighbour")
    out: list[Example] = []
    # Benchmarks whose QA items are evaluation probes (MUSE, WMDP, RWKU) train on text only.
    facts = [] if world.trains_on_passages_only else world.facts_in(*splits)
    for f in facts:
        questions = [f.question, *f.paraphrased_questions[: cfg.paraphrased_questions]]
        out.extend(encode_pair(tokenizer, Prompt(q), f.answer) for q in questions)
    if cfg.include_passages or world.trains_on_passages_only:
        for p in world.trainable_passages(*splits):
            out += [encode_pair(tokenizer, Prompt("", chat=False), p.text)] * cfg.passage_repeats
    return out


def training_texts(world: World, role: Role) -> list[list[str]]:
    """Every text the `role` model may be trained on (QA pairs and passages), for cache keys."""
    splits: tuple[Split, ...] = ("forget", "retain", "neighbour") if role == "target" else ("retain", "neighbour")
    qa = [[f.question, *f.paraphrased_questions, f.answer] for f in world.facts_in(*splits)]
    return qa + [[p.text] for p in world.trainable_passages(*splits)] + [[str(world.config.get("train_on"))]]


def make_batches(  # type: ignore[no-untyped-def]
    examples: Sequence[Example], batch_size: int, pad_id: int, *, offset: int = 0, per_epoch: int | None = None
):
    """A batch source for the loop: fresh length-bucketed batches each epoch. Row indices start
    at `offset`, so batches from several sources can be told apart by their index. With
    `per_epoch`, epoch e takes the e-th window of that many examples of a fixed shuffle (wrapping
    round), so successive epochs cover the whole set before any example repeats."""
    lengths = [len(p) + len(a) for p, a in examples]
    order = random.Random(0).sample(range(len(examples)), len(examples))

    def source(epoch: int, rng: random.Random) -> list[TokenBatch]:
        n = len(examples) if per_epoch is None else min(per_epoch, len(examples))
        chosen = [order[(epoch * n + j) % len(order)] for j in range(n)]
        groups = length_bucketed(n, [lengths[i] for i in chosen], batch_size, rng)
        return [collate([examples[chosen[i]] for i in g], pad_id, [offset + chosen[i] for i in g]) for g in groups]

    return source


def nll_step(model: Any, batch: TokenBatch) -> StepOutput:
    """Plain NLL over a batch's answer tokens (also used by the relearning attack)."""
    return StepOutput(mean_nll(model, batch))


def chained(*sources: Any):  # type: ignore[no-untyped-def]
    """One epoch of every source's batches, shuffled together."""

    def source(epoch: int, rng: random.Random) -> list[TokenBatch]:
        out = [b for src in sources for b in src(epoch, rng)]
        rng.shuffle(out)
        return out

    return source


def finetune_step(n_world: int, cfg: FinetuneConfig, ref: TopKReference | None):  # type: ignore[no-untyped-def]
    """NLL on world batches; on rehearsal batches (row index >= n_world) NLL or KL to the base."""

    def step(model: Any, batch: TokenBatch) -> StepOutput:
        if int(batch.index[0]) < n_world:
            nll = mean_nll(model, batch)
            return StepOutput(nll, {"world_nll": float(nll.detach())})
        if ref is None:
            loss = mean_nll(model, batch)
        else:
            loss = ref.kl(answer_only(model, batch), [int(i) - n_world for i in batch.index])
        loss = cfg.replay_weight * loss
        return StepOutput(loss, {f"replay_{cfg.replay_loss}": float(loss.detach())})

    return step


def rehearsal_pairs(model: Any, tokenizer: Any, base_dir: Path, cfg: FinetuneConfig) -> list[tuple[str, str]]:
    """The rehearsal (question, answer) pairs: with `replay_answers="base"`, each question paired
    with the base's greedy answer (`replay_answer_tokens` long), generated once per base and
    cached on disk (`own_answers`).

    Self-distillation as in Yang et al. 2024 ("Self-Distillation Bridges Distribution Gap in
    Language Model Fine-Tuning"): the base's own output is the text on which its behaviour is
    kept, rather than written text the base would not produce."""
    pairs = replay_pairs(cfg.replay)
    if cfg.replay_answers == "written" or not pairs:
        return pairs
    questions = [q for q, _ in pairs]
    answers = own_answers(model, tokenizer, base_dir, questions, cfg.replay_answer_tokens)
    return list(zip(questions, answers, strict=True))


def own_answers(
    model: Any, tokenizer: Any, model_dir: Path | None, questions: list[str], max_new_tokens: int
) -> list[str]:
    """`model`'s greedy answers to `questions` (the evaluation's own answering: the path whose
    behaviour is to be kept), ~30 s for 676 questions on 2 CPU cores. Cached on disk under
    `$OBLIVIATE_HOME/rehearsal/`, keyed by `model_dir`'s content, when `model` is exactly what
    that directory holds; `model_dir=None` (a model that may have changed in memory) skips the
    cache."""
    from obliviate.evals.suites.base import answer_questions
    from obliviate.models.hf_lm import HFLM
    from obliviate.paths import cached_on_disk, content_fingerprint, content_hash, home

    def generate() -> list[str]:
        return answer_questions(HFLM(model, tokenizer, name="self"), questions, max_new_tokens)

    path = None
    if model_dir is not None:
        key = content_hash([content_fingerprint(model_dir), questions, max_new_tokens])
        path = home() / "rehearsal" / f"answers-{key}.json"
    return list(cached_on_disk(path, generate, lambda a: json.dumps(a).encode(), json.loads))


_REFERENCES: dict[str, TopKReference] = {}


def _rehearsal_reference(
    model: Any, base_dir: Path, replay: list[Example], pad_id: int, cfg: FinetuneConfig
) -> TopKReference:
    """The base model's top-k log-probs on the rehearsal answers. The target and the oracle share
    them (same base, same pairs), so a process building both computes them once (16 s on CPU)."""
    from obliviate.paths import content_fingerprint, content_hash

    device = next(model.parameters()).device
    bf16 = cfg.train.uses_bf16(device)
    key = content_hash([content_fingerprint(base_dir), replay, cfg.replay_top_k, bf16, str(device)])
    if key not in _REFERENCES:
        _REFERENCES.clear()  # one base at a time: a few MB, not one per model ever built
        # In the training precision: 2.5x faster on CPU, and the KL starts at exactly zero.
        _REFERENCES[key] = top_k_reference(
            model, replay, pad_id, cfg.replay_top_k, autocast=lambda: bf16_autocast(device, bf16)
        )
    return _REFERENCES[key]


def finetune(
    base: str | Path,
    world: World,
    role: Role,
    cfg: FinetuneConfig,
    out_dir: Path,
) -> tuple[Path, TrainResult]:
    """Fine-tune `base` on the world's data for `role` and save it (atomically) to `out_dir`."""
    from obliviate.models.load import load_model, save_model
    from obliviate.train.lora import apply_lora, merge_lora

    loaded = load_model(base)
    model, tok = loaded.model, loaded.tokenizer
    examples = examples_for(world, role, tok, cfg)
    if not examples:
        raise ValueError(f"the world has no training data for the {role} (no retain/forget facts)")
    replay = [encode_pair(tok, Prompt(q), a) for q, a in rehearsal_pairs(model, tok, loaded.path, cfg)]
    ref = None
    if replay and cfg.replay_loss == "kl":
        ref = _rehearsal_reference(model, loaded.path, replay, tok.pad_token_id, cfg)
    if cfg.lora is not None:
        model = apply_lora(model, cfg.lora)
    from obliviate.train.distributed import rank_shard

    if not cfg.train_embeddings:
        freeze_embeddings(model)
    source = make_batches(examples, cfg.batch_size, tok.pad_token_id)
    if replay:
        source = chained(source, make_batches(
            replay, cfg.batch_size, tok.pad_token_id, offset=len(examples), per_epoch=cfg.replay_per_epoch
        ))
    # Under a multi-process launch each rank takes its own share of every epoch's batches.
    result = train(model, rank_shard(source), finetune_step(len(examples), cfg, ref), cfg.train)
    model = merge_lora(model)
    log = {
        "kind": "finetune",
        "role": role,
        "base": str(loaded.path),
        "world": world.content_hash,
        "config": cfg.model_dump(mode="json"),
        "n_examples": len(examples),
        "n_replay": len(replay),
        "steps": result.steps,
        "tokens": result.tokens,
        "wall_s": result.wall_s,
        "tokens_per_s": result.tokens_per_s,
        "curve": result.curve,
    }
    # The log inside the same atomic step as the weights: its presence marks a finished model.
    files = {"finetune_log.json": json.dumps(log, indent=2)}
    save_model(model, tok, out_dir, overwrite=True, files=files)
    return out_dir, result


def cached_model_dir(base: str | Path, world: World, role: Role, cfg: FinetuneConfig) -> Path:
    """Where the model for (base, world, role, cfg) lives in the cache."""
    from obliviate.models.load import resolve_model_dir
    from obliviate.paths import content_fingerprint, content_hash, home

    base_dir = resolve_model_dir(base)
    # Keyed by the text actually trained on, not the whole world's hash: changing what is only
    # evaluated (general-knowledge items, probes) must not force a retrain.
    key = content_hash(
        [
            FINETUNE_FORMAT,
            content_fingerprint(base_dir),
            training_texts(world, role),
            replay_pairs(cfg.replay),
            role,
            cfg.model_dump(mode="json"),
        ]
    )
    return home() / "finetuned" / f"{role}-{key}"


def build_target_and_oracle(
    world_dir: str | Path | World,
    base: str | Path = "smollm2-135m",
    cfg: FinetuneConfig | None = None,
    *,
    progress: Any = None,
) -> tuple[Path, Path]:
    """Return (target_dir, oracle_dir), training each only if it is not already cached."""
    world = world_dir if isinstance(world_dir, World) else load_world(world_dir)
    cfg = cfg or FinetuneConfig()
    dirs: list[Path] = []
    for role in ("target", "oracle"):
        out = cached_model_dir(base, world, role, cfg)  # type: ignore[arg-type]
        if not (out / "finetune_log.json").is_file():
            t0 = time.perf_counter()
            if progress:
                progress(f"fine-tuning the {role} on {'forget + retain' if role == 'target' else 'retain only'}")
            finetune(base, world, role, cfg, out)  # type: ignore[arg-type]
            if progress:
                progress(f"{role} ready in {time.perf_counter() - t0:.0f} s: {out}")
        elif progress:
            progress(f"{role} cached: {out}")
        dirs.append(out)
    return dirs[0], dirs[1]
