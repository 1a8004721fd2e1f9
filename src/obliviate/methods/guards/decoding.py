"""The logit-level decoding engine shared by the guards that change the next-token distribution
(MemFree, top-k perturbation, R-CAD, ULD) or the prompt's embeddings (ECO).

Why not `HFLM.generate`: those guards need per-step control that HFLM does not expose, and some
need more than one forward *stream* in lock step (R-CAD: the same model with and without the
blocklisted document in context; ULD: the target and a small assistant), and ECO needs to run on
corrupted input embeddings. HFLM also caches generations by prompt, so a guard that reused its
`generate` with a hook would poison the unguarded model's cache. The engine reproduces HFLM's
decode exactly (left padding, position ids, KV cache, fp32 logits, its greedy/sampling pick and
per-prompt seeded generators, its end-of-turn and stop-string handling), so a guard whose
processors change nothing produces HFLM's outputs token for token.

A guard stack compiles to a `Plan`: the main stream (a model plus prompt/embedding transforms
contributed by prompt-level guards) and a list of `Processor`s applied to each step's logits,
innermost guard first. The same plan scores teacher-forced continuations (`score`), so a guard
that promises "scored under what it decodes from" (R-CAD, ULD, ECO) keeps that promise.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

# HFLM's sampling pick, per-prompt seeded generators and token statistics, reused so that the
# guards decode and score exactly as the unguarded model does (see the module docstring).
from obliviate.models.hf_lm import (
    CACHE_ARG,
    _cut,
    _pick,
    _row_generators,
    _token_stats_chunk,
    output_cache,
)
from obliviate.models.lm import Prompt, Sampling, Scored, TokenStats
from obliviate.paths import content_hash

LOGIT_ATTRS = ("model", "tokenizer", "encode_prompt", "encode_scored", "pad_id", "stop_ids")


class LogitsUnavailableError(TypeError):
    """A guard that needs logit-level control was stacked on a model that does not expose it."""


@dataclass(frozen=True, eq=False)
class Backend:
    """A Hugging Face causal LM reached through an HFLM-like object (the attributes in
    `LOGIT_ATTRS`): its model, tokenizer and exact prompt/continuation encoding."""

    lm: Any

    @property
    def model(self) -> Any:
        return self.lm.model

    @property
    def tokenizer(self) -> Any:
        return self.lm.tokenizer

    @property
    def pad_id(self) -> int:
        return int(self.lm.pad_id)

    @property
    def stop_ids(self) -> set[int]:
        return set(self.lm.stop_ids)

    @property
    def max_length(self) -> int:
        return int(getattr(self.lm, "max_length", 1 << 20))

    def forward_generation(self, **inputs: Any) -> Any:
        """One decoding forward pass, in the LM's generation precision when it has one."""
        fwd = getattr(self.lm, "forward_generation", None)
        return fwd(**inputs) if fwd is not None else self.model(**inputs)

    @property
    def generation_dtype(self) -> torch.dtype:
        return getattr(self.lm, "generation_dtype", None) or next(self.model.parameters()).dtype

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    def fingerprint(self) -> int:
        """Changes when any weight is modified in place or replaced (as HFLM's cache check)."""
        return hash(tuple((p.data_ptr(), p._version) for p in self.model.parameters()))


def backend_of(lm: Any, *, who: str) -> Backend:
    """The logit backend of an HFLM-like LM, or a `LogitsUnavailableError` naming what is
    missing."""
    missing = [a for a in LOGIT_ATTRS if not hasattr(lm, a)]
    if missing:
        raise LogitsUnavailableError(
            f"{who} needs logit-level access to the model, but {type(lm).__name__} "
            f"'{getattr(lm, 'name', '?')}' exposes none (missing: {', '.join(missing)}). Wrap a "
            "transformers model in obliviate.models.hf_lm.HFLM (or load it with "
            "HFLM.from_pretrained) and stack the guard on that."
        )
    return Backend(lm)


@dataclass(frozen=True)
class Corruption:
    """Embedding corruption applied to selected prompt positions of a stream (ECO).

    `positions(prompt, ids)` picks which prompt tokens to corrupt; `apply(embeds, generator)`
    maps their (N, H) embeddings to corrupted ones."""

    positions: Callable[[Prompt, list[int]], list[int]]
    apply: Callable[[torch.Tensor, torch.Generator], torch.Tensor]
    seed: int = 0


@dataclass(frozen=True)
class Stream:
    """One forward stream: a backend, how a prompt is transformed before it is encoded, and an
    optional embedding corruption of the prompt tokens."""

    backend: Backend
    prompt_fn: Callable[[Prompt], Prompt] | None = None
    corruption: Corruption | None = None

    def render(self, prompt: Prompt) -> Prompt:
        return self.prompt_fn(prompt) if self.prompt_fn is not None else prompt


@dataclass
class StepContext:
    """What a processor sees besides the logits, one row per sequence being decoded/scored.

    `prompt_ids[i]` are the main stream's prompt tokens and `generated[i]` the tokens after them
    (decoded so far, or the teacher-forced prefix when scoring). `rng(i, salt)` is a per-row
    generator seeded by (salt, the row's prompt, and its position when scoring), kept across
    steps, so noise never depends on which other prompts share a batch."""

    prompt_ids: list[list[int]]
    generated: list[list[int]]
    prompts: list[Prompt]
    row_keys: list[Any]
    _rngs: dict[tuple[Any, int], torch.Generator] = field(default_factory=dict)

    def rng(self, i: int, salt: Any) -> torch.Generator:
        key = (salt, i)
        if key not in self._rngs:
            self._rngs[key] = _seeded(salt, self.row_keys[i])
        return self._rngs[key]

    def tail(self, i: int, k: int, include_prompt: bool = True) -> tuple[int, ...]:
        """The last `k` tokens of row i's history (fewer if the history is shorter)."""
        gen = self.generated[i]
        if len(gen) >= k or not include_prompt:
            return tuple(gen[-k:]) if k else ()
        need = k - len(gen)
        return tuple(self.prompt_ids[i][-need:]) + tuple(gen)


class Processor:
    """One guard's per-step change of the next-token logits: (rows, V) fp32 -> (rows, V).

    `aux_streams` are extra streams whose logits at the same step the processor needs; they are
    passed, in order, as `aux`."""

    aux_streams: tuple[Stream, ...] = ()

    def __call__(
        self, logits: torch.Tensor, ctx: StepContext, aux: list[torch.Tensor]
    ) -> torch.Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class Plan:
    """A compiled guard stack: the main stream and the processors, innermost first."""

    main: Stream
    processors: tuple[Processor, ...] = ()

    def then(self, processor: Processor) -> Plan:
        return Plan(self.main, (*self.processors, processor))

    def with_prompt_fn(self, fn: Callable[[Prompt], Prompt]) -> Plan:
        """Apply `fn` first (the outer guard's transform), then the existing one."""
        inner = self.main.prompt_fn
        composed = fn if inner is None else (lambda p: inner(fn(p)))
        return replace(self, main=replace(self.main, prompt_fn=composed))

    def with_corruption(self, corruption: Corruption) -> Plan:
        if self.main.corruption is not None:
            raise LogitsUnavailableError("two embedding-corrupting guards cannot be stacked")
        return replace(self, main=replace(self.main, corruption=corruption))

    @property
    def streams(self) -> list[Stream]:
        return [self.main, *(s for p in self.processors for s in p.aux_streams)]

    def fingerprint(self) -> int:
        return hash(tuple(s.backend.fingerprint() for s in self.streams))


@dataclass
class Generated:
    """One generation: the main stream's prompt ids, the new token ids, and the text."""

    prompt_ids: list[int]
    new_ids: list[int]
    text: str
    extra: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def _inference(models: Sequence[Any]) -> Iterator[None]:
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        for m, was in zip(models, modes, strict=True):
            m.train(was)


def _seeded(seed: Any, *parts: Any) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(content_hash([seed, *parts]), 16) % (1 << 63))
    return g


def _embeds(
    stream: Stream,
    ids: torch.Tensor,
    prompts: Sequence[Prompt],
    prompt_ids: Sequence[list[int]],
    offsets: Sequence[int],
) -> torch.Tensor | None:
    """Input embeddings with the stream's corruption applied, or None (use input_ids)."""
    corr = stream.corruption
    if corr is None:
        return None
    emb = stream.backend.model.get_input_embeddings()(ids).clone()
    for row, (p, pid, off) in enumerate(zip(prompts, prompt_ids, offsets, strict=True)):
        pos = [off + j for j in corr.positions(p, pid) if 0 <= j < len(pid)]
        if pos:
            idx = torch.tensor(pos)
            emb[row, idx] = corr.apply(emb[row, idx], _seeded(corr.seed, pid)).to(emb.dtype)
    return emb


def _split_aux(
    plan: Plan, aux: list[torch.Tensor]
) -> Iterator[tuple[Processor, list[torch.Tensor]]]:
    at = 0
    for proc in plan.processors:
        n = len(proc.aux_streams)
        yield proc, aux[at : at + n]
        at += n


def _apply(
    plan: Plan, logits: torch.Tensor, ctx: StepContext, aux: list[torch.Tensor]
) -> torch.Tensor:
    for proc, mine in _split_aux(plan, aux):
        logits = proc(logits, ctx, mine)
    return logits


# ---------------------------------------------------------------------------------- generation
def generate(
    plan: Plan,
    prompts: Sequence[Prompt],
    *,
    max_new_tokens: int,
    sampling: Sampling | None = None,
    stop: Sequence[str] = (),
    batch_size: int = 16,
) -> list[Generated]:
    """Decode every prompt under the plan (batched; each output independent of its batch)."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if sampling is not None and sampling.temperature <= 0:
        raise ValueError("sampling.temperature must be > 0 (use sampling=None for greedy)")
    out: list[Generated] = []
    models = list({id(s.backend.model): s.backend.model for s in plan.streams}.values())
    with _inference(models):
        for i in range(0, len(prompts), batch_size):
            out += _generate_batch(
                plan, list(prompts[i : i + batch_size]), max_new_tokens, sampling, stop
            )
    return out


def _stream_prompts(plan: Plan, stream: Stream, prompts: Sequence[Prompt]) -> list[Prompt]:
    """The prompts a stream encodes: the main stream's rendering, then (for an auxiliary stream)
    its own transform on top, so e.g. R-CAD under a system-prompt guard keeps the system prompt."""
    main = [plan.main.render(p) for p in prompts]
    return main if stream is plan.main else [stream.render(p) for p in main]


def _prefill(
    stream: Stream, rendered: list[Prompt]
) -> tuple[Any, torch.Tensor, torch.Tensor, list[list[int]]]:
    be = stream.backend
    enc = [list(be.lm.encode_prompt(p)) for p in rendered]
    if any(not e for e in enc):
        raise ValueError("cannot generate from an empty prompt")
    width = max(len(e) for e in enc)
    ids = torch.full((len(enc), width), be.pad_id, dtype=torch.long)
    mask = torch.zeros((len(enc), width), dtype=torch.long)
    for i, e in enumerate(enc):
        ids[i, width - len(e) :] = torch.tensor(e)
        mask[i, width - len(e) :] = 1
    position = (mask.cumsum(-1) - 1).clamp(min=0)
    emb = _embeds(stream, ids, rendered, enc, [width - len(e) for e in enc])
    inputs: dict[str, Any] = (
        {"inputs_embeds": emb.to(be.generation_dtype)} if emb is not None else {"input_ids": ids}
    )
    out = be.forward_generation(
        **inputs, attention_mask=mask, position_ids=position, use_cache=True, logits_to_keep=1
    )
    return out, mask, position[:, -1:], enc


def _generate_batch(
    plan: Plan, prompts: list[Prompt], max_new: int, sampling: Sampling | None, stop: Sequence[str]
) -> list[Generated]:
    streams = plan.streams
    states = [_prefill(s, _stream_prompts(plan, s, prompts)) for s in streams]
    for s, (_, mask, _, _) in zip(streams, states, strict=True):
        if mask.shape[1] + max_new > s.backend.max_length:
            raise ValueError(
                f"prompt ({mask.shape[1]} tokens) + max_new_tokens exceeds {s.backend.max_length}"
            )
    main = plan.main.backend
    prompt_ids = states[0][3]
    b = len(prompts)
    rendered = [plan.main.render(p) for p in prompts]
    ctx = StepContext(prompt_ids, [[] for _ in prompts], rendered, [list(p) for p in prompt_ids])
    gens = _row_generators(prompt_ids, sampling)
    done = torch.zeros(b, dtype=torch.bool)
    stop_ids = main.stop_ids
    stop_t = torch.tensor(sorted(stop_ids)) if stop_ids else torch.empty(0, dtype=torch.long)
    fallback = min(stop_ids) if stop_ids else main.pad_id
    outs = [st[0] for st in states]
    masks = [st[1] for st in states]
    positions = [st[2] for st in states]
    for _ in range(max_new):
        logits = outs[0].logits[:, -1, :].float()
        aux = [o.logits[:, -1, :].float() for o in outs[1:]]
        logits = _apply(plan, logits, ctx, aux)
        # A row whose every candidate is blocked ends (MemFree can in principle ban them all).
        dead = ~torch.isfinite(logits).any(-1)
        nxt = _pick(torch.where(dead[:, None], torch.zeros_like(logits), logits), sampling, gens)
        nxt = torch.where(dead, torch.full_like(nxt, fallback), nxt)
        nxt = torch.where(done, torch.full_like(nxt, main.pad_id), nxt)
        for i in range(b):
            if not done[i]:
                ctx.generated[i].append(int(nxt[i]))
        done |= torch.isin(nxt, stop_t) | dead
        if stop:
            for i in range(b):
                if not done[i] and any(s in main.tokenizer.decode(ctx.generated[i]) for s in stop):
                    done[i] = True
        if bool(done.all()):
            break
        for k, s in enumerate(streams):
            masks[k] = torch.cat([masks[k], torch.ones((b, 1), dtype=torch.long)], dim=1)
            positions[k] = positions[k] + 1
            outs[k] = s.backend.forward_generation(
                input_ids=nxt[:, None],
                attention_mask=masks[k],
                position_ids=positions[k],
                **{CACHE_ARG: output_cache(outs[k])},
                use_cache=True,
            )
    results = []
    for pid, toks in zip(prompt_ids, ctx.generated, strict=True):
        text = main.tokenizer.decode(
            [t for t in toks if t not in stop_ids], skip_special_tokens=True
        )
        results.append(Generated(list(pid), list(toks), _cut(text, stop)))
    return results


# ---------------------------------------------------------------------------------- scoring
def score(
    plan: Plan, items: Sequence[Scored], *, max_batch_tokens: int = 4096, seed: int = 0
) -> list[TokenStats]:
    """Teacher-forced per-token statistics of each continuation under the plan's processed
    logits (the distribution the guard decodes from). Token ids are the main stream's encoding;
    every stream scores the same continuation tokens after its own rendering of the prompt.
    Tokens a processor forbids outright (log p = −inf) are reported as log p = −1e4 so that means
    stay finite while still saying "this guard cannot emit this"."""
    main = plan.main
    keys: list[tuple[list[int], list[int]]] = []
    for it in items:
        p, c = main.backend.lm.encode_scored(replace(it, prompt=main.render(it.prompt)))
        keys.append((list(p), list(c)))
    results: list[TokenStats | None] = [None] * len(items)
    order = sorted(range(len(items)), key=lambda i: -(len(keys[i][0]) + len(keys[i][1])))
    models = list({id(s.backend.model): s.backend.model for s in plan.streams}.values())
    with _inference(models):
        batch: list[int] = []
        width = 0
        for i in order + [-1]:
            n = len(keys[i][0]) + len(keys[i][1]) if i >= 0 else 0
            if batch and (i < 0 or max(width, n) * (len(batch) + 1) > max_batch_tokens):
                for j, st in zip(
                    batch,
                    _score_batch(plan, [items[j] for j in batch], [keys[j] for j in batch], seed),
                    strict=True,
                ):
                    results[j] = st
                batch, width = [], 0
            if i >= 0:
                batch.append(i)
                width = max(width, n)
    return [r for r in results if r is not None]


def _stream_logits(
    stream: Stream,
    rendered: list[Prompt],
    conts: list[list[int]],
    main_prompt_ids: list[list[int]] | None,
) -> list[torch.Tensor]:
    """Per item, (T, V) fp32 logits predicting each continuation token under `stream`
    (`rendered`: the prompts as this stream encodes them)."""
    be = stream.backend
    p_ids = (
        main_prompt_ids
        if main_prompt_ids is not None
        else [list(be.lm.encode_prompt(p)) for p in rendered]
    )
    seqs = [p + c for p, c in zip(p_ids, conts, strict=True)]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), be.pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    emb = _embeds(stream, ids, rendered, p_ids, [0] * len(seqs))
    decoder = getattr(be.model, getattr(be.model, "base_model_prefix", ""), None)
    if decoder is None or decoder is be.model:
        raise LogitsUnavailableError(
            f"{type(be.model).__name__} exposes no decoder submodule to score with"
        )
    inputs: dict[str, Any] = {"inputs_embeds": emb} if emb is not None else {"input_ids": ids}
    hidden = decoder(**inputs, attention_mask=mask, use_cache=False).last_hidden_state
    head = be.model.get_output_embeddings()
    cap = getattr(be.model.config, "final_logit_softcapping", None)
    out = []
    for i, (p, c) in enumerate(zip(p_ids, conts, strict=True)):
        first = max(len(p), 1)
        h = hidden[i, first - 1 : len(p) + len(c) - 1]
        z = head(h).float()
        out.append(torch.tanh(z / cap) * cap if cap else z)
    return out


def _score_batch(
    plan: Plan, items: list[Scored], keys: list[tuple[list[int], list[int]]], seed: int
) -> list[TokenStats]:
    prompts = [it.prompt for it in items]
    conts = [c for _, c in keys]
    main_ids = [p for p, _ in keys]
    per_stream = [
        _stream_logits(
            s, _stream_prompts(plan, s, prompts), conts, main_ids if s is plan.main else None
        )
        for s in plan.streams
    ]
    rendered = _stream_prompts(plan, plan.main, prompts)
    rows_prompt: list[list[int]] = []
    rows_gen: list[list[int]] = []
    rows_prompts: list[Prompt] = []
    row_keys: list[Any] = []
    target_ids: list[int] = []
    for (p, c), r in zip(keys, rendered, strict=True):
        start = 0 if p else 1  # with an empty prompt the first token has no context (as HFLM)
        for t in range(start, len(c)):
            rows_prompt.append(p)
            rows_gen.append(c[:t])
            rows_prompts.append(r)
            row_keys.append([seed, p, c[:t]])
            target_ids.append(c[t])
    if not rows_prompt:
        return [_empty() for _ in items]
    logits = torch.cat([x for x in per_stream[0]])
    aux = [torch.cat(s) for s in per_stream[1:]]
    ctx = StepContext(rows_prompt, rows_gen, rows_prompts, row_keys)
    logits = _apply(plan, logits, ctx, aux)
    targets = torch.tensor(target_ids, dtype=torch.long)
    logp, mu, sigma, match = (x.numpy() for x in _token_stats_chunk(logits, targets))
    logp = np.maximum(logp, -1e4)
    out, at = [], 0
    for p, c in keys:
        n = max(len(c) - (0 if p else 1), 0)
        sl = slice(at, at + n)
        out.append(
            TokenStats(
                targets.numpy()[sl].copy(),
                logp[sl].copy(),
                mu[sl].copy(),
                sigma[sl].copy(),
                match[sl].copy(),
            )
        )
        at += n
    return out


def _empty() -> TokenStats:
    z = np.zeros(0, dtype=np.float32)
    return TokenStats(np.zeros(0, dtype=np.int64), z, z.copy(), z.copy(), np.zeros(0, dtype=bool))
