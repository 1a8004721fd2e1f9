"""`HFLM`: the `LM` protocol over a Hugging Face causal LM, batched and cached.

Scoring (`token_stats`) runs one forward pass per distinct (prompt, continuation) token sequence
(one-token continuations of the same prompt, like MCQ letters, share the prompt's pass) and keeps
the result, so every metric of one evaluation that needs the same pair shares it
(lm-evaluation-harness's request cache, per model). The decoder runs once over the whole
sequence; the vocabulary projection runs only at continuation positions, chunked, and the
log-softmax and statistics are computed in fp32 from its logits, so the full (T, V)
log-probability matrix of a sequence is never materialised.

Precision. `bf16=True` runs the transformer's matmuls under CPU bf16 autocast (weights stay
fp32; autocast casts them once per call); logits are cast to fp32 before any statistic.
Measured on SmolLM2-135M, 2 threads (64 answers, ~5.6k tokens): scoring ran at 1744 forward
tokens/s under bf16 vs 233 under fp32; per-token log p moved by 0.029 nats on average
(max 0.35) and each sequence's mean log p by < 0.8% (relative) — well inside the run-to-run
noise of any metric built on them, so bf16 is the scoring default.

Generation is memory-bound on a CPU (each decode step streams every weight once), so autocast,
which re-reads the fp32 weights to cast them, does not help it. `bf16_generate` instead decodes
with a bf16 copy of the weights, run through the model's own modules
(`torch.func.functional_call`) so forward hooks (directional ablation) still apply. Measured on
SmolLM2-135M, 2 threads, the 40 fact and 188 general questions of the quickstart: 48.7 s ->
24.8 s for the target (2.0x). Greedy answers change only at near-ties: general accuracy of the
base 1.000 -> 0.968, target 0.830 -> 0.824 (forget 1.00 and retain 0.975 unchanged), oracle
0.840 -> 0.835. Every model of a run is decoded the same way, so comparisons are unaffected; pass
`bf16=False` (or `bf16_generate=False`) for exact fp32 decoding.

The cache is invalidated automatically when any parameter is modified in place or replaced
(an unlearning step, a weight attack), detected from the tensors' version counters.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import astuple
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from packaging.version import Version

from obliviate.models.lm import Prompt, Sampling, Scored, TokenStats
from obliviate.models.prompt import (
    encode_continuation,
    encode_pair,
    has_chat_template,
    render_prompt,
)
from obliviate.models.sampling import cut_at_stop, end_token_ids, pick_next, row_generators

Key = tuple[tuple[int, ...], tuple[int, ...]]
# Older names of the decoding helpers (now in models/sampling.py), imported by guards/decoding.py.
_cut, _pick, _row_generators = cut_at_stop, pick_next, row_generators

# transformers 5.24 renamed the KV cache `past_key_values` -> `cache` (forward argument and output
# field) and drops the old name in 5.40; releases before 5.24 know only the old one.
# Read from the package metadata: importing transformers here would run before models.load sets
# the HF offline switches.
CACHE_ARG = (
    "cache" if Version(Version(version("transformers")).base_version) >= Version("5.24")
    else "past_key_values"
)


def output_cache(out: Any) -> Any:
    """The KV cache a forward pass with `use_cache=True` returned, under either name."""
    return getattr(out, CACHE_ARG)


SHARED_MAX = 3  # models `HFLM.shared` keeps loaded (an experiment's target, oracle, current model)
_SHARED: OrderedDict[tuple[Any, ...], tuple[HFLM, int]] = OrderedDict()


class HFLM:
    """A transformers causal LM behind the `LM` protocol.

    Args:
        model: a `PreTrainedModel` (causal LM); used in eval mode, never trained here.
        tokenizer: its tokenizer.
        name: recorded in run logs.
        bf16: bf16 autocast for scoring (default True; see module docstring for the measurement).
        bf16_generate: decode with a bf16 copy of fp32 weights (default: same as `bf16`).
        max_batch_tokens: padded tokens per scoring batch (bounds activation memory).
        max_batch_size: rows per batch for scoring and generation.
        logit_chunk: continuation positions per vocabulary-projection chunk (bounds memory).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        name: str = "model",
        *,
        bf16: bool = True,
        bf16_generate: bool | None = None,
        max_batch_tokens: int = 8192,
        max_batch_size: int = 32,
        logit_chunk: int = 512,
    ) -> None:
        if max_batch_tokens < 1 or max_batch_size < 1 or logit_chunk < 1:
            raise ValueError("max_batch_tokens, max_batch_size and logit_chunk must be >= 1")
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.bf16 = bf16
        self.bf16_generate = bf16 if bf16_generate is None else bf16_generate
        self._gen_params: dict[str, torch.Tensor] | None = None  # bf16 weights for decoding
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size
        self.logit_chunk = logit_chunk
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            raise ValueError("tokenizer has neither a pad nor an eos token; set tokenizer.pad_token")
        self.pad_id: int = int(pad)
        self.stop_ids: set[int] = end_token_ids(model, tokenizer)
        self.max_length: int = int(getattr(model.config, "max_position_embeddings", 1 << 20))
        self.path: Path | None = None  # the model directory, when loaded from one (run logs)
        self._stats: dict[Key, TokenStats] = {}
        self._gens: dict[tuple[Any, ...], str] = {}
        self._greedy: dict[tuple[int, ...], tuple[list[int], int]] = {}  # prompt -> (ids, max_new)
        self._fingerprint = self._weights_fingerprint()
        self.n_forward_texts = 0  # distinct (prompt, continuation) pairs actually scored
        self.n_forward_passes = 0  # sequences through the decoder (<= n_forward_texts: MCQ sharing)
        self.n_generated_prompts = 0  # distinct (prompt, settings) actually generated
        self.n_scored_tokens = 0  # continuation tokens scored (for throughput)
        self.n_forward_tokens = 0  # non-pad tokens through the decoder while scoring
        self.n_generated_tokens = 0  # new tokens produced by generation

    @classmethod
    def from_pretrained(cls, spec: str, **kwargs: Any) -> HFLM:
        """Load with `obliviate.models.load.load_model` (bundled name, HF dir or .gguf file)."""
        from obliviate.models.load import load_model

        loaded = load_model(spec)
        lm = cls(loaded.model, loaded.tokenizer, name=str(spec), **kwargs)
        lm.path = loaded.path
        return lm

    @classmethod
    def shared(cls, spec: str, **kwargs: Any) -> HFLM:
        """`from_pretrained`, but loaded once per process and handed out again, with its caches
        of scores and generations, while the model's files and weights are unchanged.

        An experiment evaluates and audits every model against the same target and oracle: this
        keeps them loaded and scores each of their requests once instead of once per stage. The
        `SHARED_MAX` most recently used models are kept. Only full model directories are pooled
        (an adapter's identity also depends on its base). Callers must not modify the weights
        of what they get; a model whose weights were changed anyway is reloaded.
        """
        from obliviate.models.load import resolve_model_dir

        path = resolve_model_dir(spec)
        if not (path / "config.json").is_file():
            return cls.from_pretrained(spec, **kwargs)
        files = tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(path.iterdir()) if f.is_file())
        key = (str(path), files, tuple(sorted(kwargs.items())))
        hit = _SHARED.get(key)
        if hit is not None and hit[0]._weights_fingerprint() == hit[1]:
            _SHARED.move_to_end(key)
            return hit[0]
        lm = cls.from_pretrained(spec, **kwargs)
        _SHARED[key] = (lm, lm._weights_fingerprint())
        while len(_SHARED) > SHARED_MAX:
            _SHARED.popitem(last=False)
        return lm

    # ------------------------------------------------------------------ cache management
    def _weights_fingerprint(self) -> int:
        # In-place updates bump a tensor's version counter; reassignment changes its storage.
        return hash(tuple((p.data_ptr(), p._version) for p in self.model.parameters()))

    def _check_fresh(self) -> None:
        fp = self._weights_fingerprint()
        if fp != self._fingerprint:
            self.clear_cache()
            self._fingerprint = fp

    def clear_cache(self) -> None:
        """Forget every cached score and generation (done automatically when weights change)."""
        self._stats.clear()
        self._gens.clear()
        self._greedy.clear()
        self._gen_params = None

    @property
    def generation_dtype(self) -> torch.dtype:
        """The dtype decoding runs in (inputs_embeds passed to `forward_generation` must match)."""
        dtype = next(self.model.parameters()).dtype
        return torch.bfloat16 if self.bf16_generate and dtype == torch.float32 else dtype

    def forward_generation(self, **inputs: Any) -> Any:
        """One forward pass as decoding runs it: with `bf16_generate` and fp32 weights, through
        the same modules (hooks included) with a bf16 copy of the weights, made once per weight
        version."""
        if inputs.get(CACHE_ARG) is None:
            # Checked at each prefill only: weights do not change between a prefill and its decode
            # steps, and hashing every parameter's version at each step cost ~0.4 s per evaluation.
            self._check_fresh()
        if self.generation_dtype == next(self.model.parameters()).dtype:
            return self.model(**inputs)
        if self._gen_params is None:
            # requires_grad (no graph is built: decoding runs under inference_mode) keeps matmul's
            # folding of the LM head's (B, 1, H) @ W into one mm; for a weight without grad torch
            # broadcasts W to (B, H, V) instead: measured 1.2 s per prefill for V = 49k, B = 32.
            with torch.inference_mode(False):
                self._gen_params = {
                    k: v.detach().to(torch.bfloat16).requires_grad_(True) for k, v in self.model.named_parameters()
                }
        return torch.func.functional_call(self.model, self._gen_params, (), inputs)

    @contextlib.contextmanager
    def _inference(self, bf16: bool) -> Iterator[None]:
        was_training = self.model.training
        self.model.eval()
        amp = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        try:
            with torch.inference_mode(), amp:
                yield
        finally:
            self.model.train(was_training)

    # ------------------------------------------------------------------ scoring
    def encode_scored(self, item: Scored) -> Key:
        """Token ids (prompt, continuation) exactly as scored (and as training encodes them)."""
        enc = encode_pair if item.end_of_turn else encode_continuation
        p, c = enc(self.tokenizer, item.prompt, item.continuation)
        if len(p) + len(c) > self.max_length:
            raise ValueError(
                f"prompt+continuation is {len(p) + len(c)} tokens, over the model's limit of "
                f"{self.max_length}; shorten the text (e.g. a smaller passage prefix)"
            )
        return tuple(p), tuple(c)

    def token_stats(self, items: Sequence[Scored]) -> list[TokenStats]:
        """Per-continuation-token log p, μ_t, σ_t and argmax match, one forward pass per pair.

        With an empty prompt the first continuation token has no context and is not scored
        (as in the Min-K% reference code, which shifts labels by one).
        """
        self._check_fresh()
        keys = [self.encode_scored(it) for it in items]
        todo = list(dict.fromkeys(k for k in keys if k not in self._stats))
        empty = [k for k in todo if len(k[1]) - (0 if k[0] else 1) <= 0]
        for k in empty:
            self._stats[k] = _empty_stats()
        # Several one-token continuations of one prompt (MCQ letters) share a single forward pass
        # of the prompt: the next-token distribution at its end scores them all.
        by_prompt: dict[tuple[int, ...], list[Key]] = {}
        for k in todo:
            if len(k[1]) == 1 and k[0] and k not in self._stats:
                by_prompt.setdefault(k[0], []).append(k)
        shared = {p: ks for p, ks in by_prompt.items() if len(ks) > 1}
        rest = [k for k in todo if k not in self._stats and not (len(k[1]) == 1 and k[0] in shared)]
        with self._inference(self.bf16):
            prompts: list[Key] = sorted(((p, ()) for p in shared), key=lambda k: -len(k[0]))
            for batch in self._batches(prompts):
                self._score_next_token(batch, shared)
            for batch in self._batches(sorted(rest, key=lambda k: -len(k[0]) - len(k[1]))):
                self._score_batch(batch)
        return [self._stats[k] for k in keys]

    def _score_next_token(self, batch: list[Key], shared: dict[tuple[int, ...], list[Key]]) -> None:
        ids, mask = self._right_pad([list(p) for p, _ in batch])
        last = torch.tensor([len(p) - 1 for p, _ in batch])
        hidden = self._hidden_at(ids, mask, torch.arange(len(batch)), last)
        rows = [i for i, (p, _) in enumerate(batch) for _ in shared[p]]
        cands = [k for p, _ in batch for k in shared[p]]
        targets = torch.tensor([k[1][0] for k in cands])
        logp, mu, sigma, match = (x.numpy() for x in _token_stats_chunk(self._logits(hidden)[rows], targets))
        for j, k in enumerate(cands):
            sl = slice(j, j + 1)
            self._stats[k] = TokenStats(targets.numpy()[sl].copy(), logp[sl].copy(), mu[sl].copy(),
                                        sigma[sl].copy(), match[sl].copy())
        self.n_forward_passes += len(batch)
        self.n_forward_texts += len(cands)
        self.n_scored_tokens += len(cands)
        self.n_forward_tokens += int(mask.sum())

    def _right_pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[i, : len(s)] = 1
        return ids, mask

    def _batches(self, keys: list[Key]) -> Iterator[list[Key]]:
        batch: list[Key] = []
        width = 0
        for k in keys:
            n = len(k[0]) + len(k[1])
            full = max(width, n) * (len(batch) + 1) > self.max_batch_tokens
            if batch and (full or len(batch) >= self.max_batch_size):
                yield batch
                batch, width = [], 0
            batch.append(k)
            width = max(width, n)
        if batch:
            yield batch

    def _score_batch(self, batch: list[Key]) -> None:
        seqs = [list(p) + list(c) for p, c in batch]
        ids, mask = self._right_pad(seqs)
        rows: list[int] = []
        pos: list[int] = []
        spans: list[tuple[int, int]] = []
        for i, (s, (p, _)) in enumerate(zip(seqs, batch, strict=True)):
            first = max(len(p), 1)  # position of the first scored target token
            spans.append((len(pos), len(s) - first))
            rows += [i] * (len(s) - first)
            pos += range(first, len(s))
        row_t, pos_t = torch.tensor(rows), torch.tensor(pos)
        targets = ids[row_t, pos_t]
        hidden = self._hidden_at(ids, mask, row_t, pos_t - 1)
        stats = [_token_stats_chunk(self._logits(h), t) for h, t in
                 zip(hidden.split(self.logit_chunk), targets.split(self.logit_chunk), strict=True)]
        logp, mu, sigma, match = (torch.cat(x).numpy() for x in zip(*stats, strict=True))
        tg = targets.numpy()
        for key, (start, n) in zip(batch, spans, strict=True):
            sl = slice(start, start + n)
            self._stats[key] = TokenStats(
                tg[sl].copy(), logp[sl].copy(), mu[sl].copy(), sigma[sl].copy(), match[sl].copy()
            )
        self.n_forward_passes += len(batch)
        self.n_forward_texts += len(batch)
        self.n_scored_tokens += len(rows)
        self.n_forward_tokens += int(mask.sum())

    def _hidden_at(self, ids: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor,
                   pos: torch.Tensor) -> torch.Tensor:
        """Final hidden states at (rows, pos), running only the decoder (no vocab projection)."""
        decoder = getattr(self.model, getattr(self.model, "base_model_prefix", ""), None)
        if decoder is None or decoder is self.model:
            raise ValueError(f"{type(self.model).__name__} exposes no decoder submodule to score with")
        out = decoder(input_ids=ids, attention_mask=mask, use_cache=False)
        return out.last_hidden_state[rows, pos]

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.model.get_output_embeddings()(hidden).float()
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        return torch.tanh(logits / cap) * cap if cap else logits

    # ------------------------------------------------------------------ generation
    def encode_prompt(self, prompt: Prompt) -> list[int]:
        text = render_prompt(self.tokenizer, prompt)
        special = not has_chat_template(self.tokenizer) and prompt.chat
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def generate(
        self,
        prompts: Sequence[Prompt],
        *,
        max_new_tokens: int,
        sampling: Sampling | None = None,
        stop: Sequence[str] = (),
    ) -> list[str]:
        """Batched (left-padded, KV-cached) greedy or sampled generation, cached per prompt.

        Sampling draws each prompt's tokens from its own generator seeded by (seed, prompt), so
        an output does not depend on which other prompts share its batch. Text stops at the
        model's end-of-turn/eos tokens and is cut before the first `stop` string.
        """
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if sampling is not None and sampling.temperature <= 0:
            raise ValueError("sampling.temperature must be > 0 (use sampling=None for greedy)")
        self._check_fresh()
        settings = (max_new_tokens, astuple(sampling) if sampling else None, tuple(stop))
        enc = [tuple(self.encode_prompt(p)) for p in prompts]
        keys = [(e, *settings) for e in enc]
        greedy = sampling is None and not stop
        todo = []
        for k in dict.fromkeys(keys):
            if k in self._gens:
                continue
            served = self._greedy_prefix(k[0], max_new_tokens) if greedy else None
            if served is not None:
                self._gens[k] = self._text(served, stop)
            else:
                todo.append(k)
        todo.sort(key=lambda k: -len(k[0]))
        with self._inference(bf16=False):
            for i in range(0, len(todo), self.max_batch_size):
                chunk = todo[i : i + self.max_batch_size]
                outs = self._generate_batch([list(k[0]) for k in chunk], max_new_tokens, sampling, stop)
                for k, ids in zip(chunk, outs, strict=True):
                    self._gens[k] = self._text(ids, stop)
                    if greedy and len(ids) >= len(self._greedy.get(k[0], ((), 0))[0]):
                        self._greedy[k[0]] = (ids, max_new_tokens)
        return [self._gens[k] for k in keys]

    def _greedy_prefix(self, prompt: tuple[int, ...], n: int) -> list[int] | None:
        """The first `n` greedy tokens of `prompt`, if a run at least that long (or one that
        ended at a stop token) was decoded before: greedy decoding is prefix-consistent, so the
        audit's 32-token probes reuse the evaluation's 48-token answers."""
        ids, ran = self._greedy.get(prompt, ((), 0))
        if ran >= n or (ids and ids[-1] in self.stop_ids):
            return list(ids[:n])
        return None

    def _text(self, ids: Sequence[int], stop: Sequence[str]) -> str:
        text = self.tokenizer.decode([t for t in ids if t not in self.stop_ids], skip_special_tokens=True)
        return cut_at_stop(text, stop)

    def _generate_batch(self, prompts: list[list[int]], max_new: int, sampling: Sampling | None,
                        stop: Sequence[str]) -> list[list[int]]:
        """New token ids per prompt (ending with the stop token when one was produced)."""
        width = max(len(p) for p in prompts)
        if width + max_new > self.max_length:
            raise ValueError(f"prompt ({width} tokens) + max_new_tokens exceeds {self.max_length}")
        b = len(prompts)
        ids = torch.full((b, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((b, width), dtype=torch.long)
        for i, p in enumerate(prompts):
            if not p:
                raise ValueError("cannot generate from an empty prompt")
            ids[i, width - len(p):] = torch.tensor(p)
            mask[i, width - len(p):] = 1
        gens = row_generators(prompts, sampling)
        position = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.forward_generation(input_ids=ids, attention_mask=mask, position_ids=position,
                                      use_cache=True, logits_to_keep=1)
        new: list[list[int]] = [[] for _ in prompts]
        stop_t = torch.tensor(sorted(self.stop_ids)) if self.stop_ids else torch.empty(0, dtype=torch.long)
        cache = output_cache(out)
        position = position[:, -1:]
        active = list(range(b))  # original row of each row still being decoded
        for step in range(max_new):
            nxt = pick_next(out.logits[:, -1, :].float(), sampling, [gens[i] for i in active] if gens else [])
            for j, i in enumerate(active):
                new[i].append(int(nxt[j]))
            fin = torch.isin(nxt, stop_t)
            if stop:
                for j, i in enumerate(active):
                    if not fin[j] and any(s in self.tokenizer.decode(new[i]) for s in stop):
                        fin[j] = True
            if bool(fin.all()) or step == max_new - 1:
                break
            mask = torch.cat([mask, torch.ones((len(active), 1), dtype=torch.long)], dim=1)
            position = position + 1
            if bool(fin.any()):  # drop finished rows: the rest of the batch decodes faster
                keep = (~fin).nonzero().squeeze(-1)
                cache.batch_select_indices(keep)
                nxt, mask, position = nxt[keep], mask[keep], position[keep]
                active = [active[j] for j in keep.tolist()]
            out = self.forward_generation(input_ids=nxt[:, None], attention_mask=mask,
                                          position_ids=position, use_cache=True, **{CACHE_ARG: cache})
        self.n_generated_prompts += b
        self.n_generated_tokens += sum(len(n) for n in new)
        return new

    # ------------------------------------------------------------------ representations
    def hidden_states(self, prompts: Sequence[Prompt], layers: Sequence[int],
                      pool: Literal["last", "mean"] = "last") -> np.ndarray:
        """Hidden states of the rendered prompts at `layers` (0 = embeddings, as in HF's
        `output_hidden_states`), pooled over prompt tokens: shape (N, len(layers), H), fp32."""
        n_layers = int(self.model.config.num_hidden_layers)
        bad = [layer for layer in layers if not -n_layers - 1 <= layer <= n_layers]
        if bad:
            raise ValueError(f"layers {bad} out of range for a {n_layers}-layer model (0..{n_layers})")
        out: list[np.ndarray] = []
        with self._inference(False):
            for i in range(0, len(prompts), self.max_batch_size):
                enc = [self.encode_prompt(p) for p in prompts[i : i + self.max_batch_size]]
                width = max(len(e) for e in enc)
                ids = torch.full((len(enc), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(enc), width), dtype=torch.long)
                for j, e in enumerate(enc):  # right padding: last real token at len(e) - 1
                    ids[j, : len(e)], mask[j, : len(e)] = torch.tensor(e), 1
                hs = self.model(input_ids=ids, attention_mask=mask, output_hidden_states=True,
                                logits_to_keep=1).hidden_states
                stacked = torch.stack([hs[layer] for layer in layers], dim=1).float()  # (B, L, T, H)
                if pool == "mean":
                    m = mask[:, None, :, None].float()
                    pooled = (stacked * m).sum(2) / m.sum(2)
                else:
                    last = torch.tensor([len(e) - 1 for e in enc])
                    pooled = stacked[torch.arange(len(enc)), :, last]
                out.append(pooled.numpy())
        return np.concatenate(out) if out else np.zeros((0, len(layers), 0), dtype=np.float32)


def _empty_stats() -> TokenStats:
    z = np.zeros(0, dtype=np.float32)
    return TokenStats(np.zeros(0, dtype=np.int64), z, z.copy(), z.copy(), np.zeros(0, dtype=bool))


def _token_stats_chunk(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """log p of the targets, μ = Σ p log p, σ² = Σ p (log p)² − μ² (Min-K%++, Zhang et al. 2024)."""
    logp = torch.log_softmax(logits, dim=-1)
    p = logp.exp()
    # Clamp so that 0 · (−inf) never turns into NaN; exp(−1e4) is exactly 0 in fp32.
    logp_c = logp.clamp(min=-1e4)
    mu = (p * logp_c).sum(-1)
    # Σ p (log p − μ)², not Σ p (log p)² − μ²: the latter cancels catastrophically in fp32 for
    # flat distributions (μ² ≈ 36, σ² ≈ 0.01 for a 400-token near-uniform vocabulary).
    var = (p * (logp_c - mu[:, None]).square()).sum(-1)
    tok = logp.gather(-1, targets[:, None]).squeeze(-1)
    return tok, mu, var.clamp(min=0).sqrt(), logits.argmax(-1) == targets
