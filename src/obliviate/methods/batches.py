"""From a `World` to token ids (once) and from token ids to per-step `ForgetRetainBatch`es.

Forget batches are length-bucketed and reshuffled every epoch; retain examples are drawn afresh
for every step from a shuffled cycle over the retain pool (retain + neighbour subjects), so each
retain example is seen equally often and no two steps share a retain batch by construction.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from obliviate.data.schema import World
from obliviate.data.world import replay_pairs
from obliviate.methods.base import Method, MethodConfig, UnlearnData
from obliviate.models.lm import Prompt
from obliviate.models.prompt import encode_continuation, encode_pair
from obliviate.train.batch import Example, ForgetRetainBatch, collate, length_bucketed


def _clip(ex: Example, max_tokens: int) -> Example:
    p, a = ex
    return p, a[: max(1, max_tokens - len(p))]


def passage_example(tokenizer: Any, text: str, max_tokens: int) -> Example:
    """A passage as raw text to continue: every token is a target (no prompt, no template)."""
    return _clip(encode_continuation(tokenizer, Prompt("", chat=False), text), max_tokens)


def qa_example(tokenizer: Any, question: str, answer: str, max_tokens: int) -> Example:
    return _clip(encode_pair(tokenizer, Prompt(question), answer), max_tokens)


def pad_id_of(tokenizer: Any) -> int:
    pid = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pid is None:
        raise ValueError("the tokenizer has neither a pad nor an end-of-sequence token to pad with")
    return int(pid)


def build_data(world: World, tokenizer: Any, method: Method, seed: int = 0) -> UnlearnData:
    """Tokenize the forget and retain texts the method's config asks for, once."""
    cfg: MethodConfig = method.config
    forget: list[Example] = []
    kinds: list[str] = []
    alternate: list[Example] | None = [] if method.needs_alternate else None
    rng = random.Random(seed)
    if cfg.forget_data in ("qa", "both"):
        for f in world.forget_facts:
            forget.append(qa_example(tokenizer, f.question, f.answer, cfg.max_tokens))
            kinds.append("qa")
            if alternate is not None:
                alt = method.alternate_answer(f.question, f.answer, rng)
                alternate.append(qa_example(tokenizer, f.question, alt, cfg.max_tokens))
    if cfg.forget_data in ("passages", "both"):
        for p in world.passages_in("forget"):
            forget.append(passage_example(tokenizer, p.text, cfg.max_tokens))
            kinds.append("passage")
    retain: list[Example] = []
    if cfg.retain_data in ("qa", "both"):
        retain += [
            qa_example(tokenizer, f.question, f.answer, cfg.max_tokens) for f in world.retain_facts
        ]
    if cfg.retain_data in ("passages", "both"):
        retain += [
            passage_example(tokenizer, p.text, cfg.max_tokens)
            for p in world.passages_in("retain", "neighbour")
        ]
    if cfg.retain_replay:
        retain += [qa_example(tokenizer, q, a, cfg.max_tokens) for q, a in replay_pairs(cfg.retain_replay)]
    return UnlearnData(forget, retain, pad_id_of(tokenizer), alternate, kinds)


def anchor_examples(
    model: Any, tokenizer: Any, model_dir: Path | None, cfg: MethodConfig
) -> list[Example]:
    """`cfg.anchor_pairs` rehearsal questions, each with `model`'s own greedy answer (cached on
    disk by `model_dir`'s content; None: not cached). Empty answers are dropped: they carry no
    token to keep, so a model that answers nothing gets no anchor (the engine says so)."""
    from obliviate.methods.base import ANCHOR_ANSWER_TOKENS
    from obliviate.train.finetune import own_answers

    questions = [q for q, _ in replay_pairs(cfg.anchor_pairs)]
    answers = own_answers(model, tokenizer, model_dir, questions, ANCHOR_ANSWER_TOKENS)
    return [
        qa_example(tokenizer, q, a, cfg.max_tokens)
        for q, a in zip(questions, answers, strict=True)
        if a.strip()
    ]


def batch_source(
    data: UnlearnData, cfg: MethodConfig, *, use_retain: bool, monitor_every: int = 0
) -> Callable[[int, random.Random], list[ForgetRetainBatch]]:
    """The loop's batch callable: `(epoch, rng) -> batches of that epoch`.

    Retain batches go into every step when the method trains on them, and into every
    `monitor_every`-th step otherwise (marked `extra["monitor"]`) so the collapse guard can
    watch retain NLL without paying for it on every step. Anchor batches, when there is anchor
    data, go into every step, drawn from their own shuffled cycle.
    """
    lengths = [len(p) + len(a) for p, a in data.forget]
    pools: dict[str, list[int]] = {"retain": [], "anchor": []}
    state = {"step": 0}

    def draw(rng: random.Random, name: str, size: int, n: int) -> list[int]:
        pool, out = pools[name], list[int]()
        while len(out) < min(n, size):
            if not pool:
                pool.extend(rng.sample(range(size), size))
            out.append(pool.pop())
        return out

    def make(epoch: int, rng: random.Random) -> list[ForgetRetainBatch]:
        batches = []
        for group in length_bucketed(len(data.forget), lengths, cfg.batch_size, rng):
            forget = collate([data.forget[i] for i in group], data.pad_id, index=group)
            alt = None
            if data.alternate is not None:
                alt = collate([data.alternate[i] for i in group], data.pad_id, index=group)
            monitor = monitor_every > 0 and state["step"] % monitor_every == 0
            retain, anchor, extra = None, None, {}
            if data.retain and (use_retain or monitor):
                idx = draw(rng, "retain", len(data.retain), cfg.retain_batch_size)
                retain = collate([data.retain[i] for i in idx], data.pad_id, index=idx)
            if data.anchor:
                idx = draw(rng, "anchor", len(data.anchor), cfg.anchor_batch_size)
                anchor = collate([data.anchor[i] for i in idx], data.pad_id, index=idx)
            if monitor:
                extra["monitor"] = torch.ones(1)
            batches.append(ForgetRetainBatch(forget, retain, alt, extra, anchor))
            state["step"] += 1
        return batches

    return make
