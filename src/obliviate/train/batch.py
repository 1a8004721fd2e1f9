"""Typed batches built once by the engine, so methods never re-filter or re-tokenize inputs."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

IGNORE_INDEX = -100  # labels with this value get no loss (prompt tokens, padding)


@dataclass
class TokenBatch:
    """Right-padded token ids; `labels` equal `input_ids` on answer tokens and -100 elsewhere.

    `index` holds each row's position in its source list, so per-example quantities computed
    once before training (e.g. NPO's reference log-probs) can be looked up by row.
    """

    input_ids: torch.Tensor  # (B, T) long
    attention_mask: torch.Tensor  # (B, T) long
    labels: torch.Tensor  # (B, T) long
    index: torch.Tensor  # (B,) long

    def to(self, device: torch.device | str) -> TokenBatch:
        return TokenBatch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.labels.to(device),
            self.index.to(device),
        )

    @property
    def n_answer_tokens(self) -> int:
        return int((self.labels != IGNORE_INDEX).sum())

    @property
    def n_tokens(self) -> int:
        return int(self.attention_mask.sum())


@dataclass
class ForgetRetainBatch:
    """One unlearning step's data: forget examples, and optionally retain examples, the
    forget questions paired with an alternative answer (IdK answers, WHP generic labels), and
    real-world questions with the starting model's own answers (the general-knowledge anchor)."""

    forget: TokenBatch
    retain: TokenBatch | None = None
    alternate: TokenBatch | None = None
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    anchor: TokenBatch | None = None

    def to(self, device: torch.device | str) -> ForgetRetainBatch:
        def move(b: TokenBatch | None) -> TokenBatch | None:
            return b.to(device) if b is not None else None

        return ForgetRetainBatch(
            self.forget.to(device),
            move(self.retain),
            move(self.alternate),
            {k: v.to(device) for k, v in self.extra.items()},
            move(self.anchor),
        )

    @property
    def n_tokens(self) -> int:
        parts = (self.forget, self.retain, self.alternate, self.anchor)
        return sum(b.n_tokens for b in parts if b is not None)


Example = tuple[list[int], list[int]]  # (prompt ids, answer ids): loss only on the answer


def collate(examples: Sequence[Example], pad_id: int, index: Sequence[int] | None = None) -> TokenBatch:
    """Right-pad (prompt + answer) examples into a TokenBatch with labels only on answer tokens."""
    if not examples:
        raise ValueError("cannot build a batch from zero examples")
    width = max(len(p) + len(a) for p, a in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    for i, (p, a) in enumerate(examples):
        n = len(p) + len(a)
        ids[i, :n] = torch.tensor(p + a, dtype=torch.long)
        mask[i, :n] = 1
        labels[i, len(p) : n] = torch.tensor(a, dtype=torch.long)
    idx = torch.tensor(list(index) if index is not None else range(len(examples)), dtype=torch.long)
    return TokenBatch(ids, mask, labels, idx)


def length_bucketed(n_items: int, lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Indices grouped into batches of similar length (less padding = fewer wasted FLOPs on CPU),
    with the batch order shuffled so training does not see lengths in sorted order."""
    order = sorted(range(n_items), key=lambda i: (lengths[i], rng.random()))
    groups = [order[i : i + batch_size] for i in range(0, n_items, batch_size)]
    rng.shuffle(groups)
    return groups
