"""The shape every attack has (DESIGN principle 9): transform a model or a prompt, run the same probes.

An attack is one class in one file, registered with `@attack(name)`. It is built from a typed
config and `run(model, world, ctx)` returns an `AttackResult`: for each configuration it tries
(a *cell*: setting x seed), which probed forget facts came back (1.0) or not (0.0), evidence
samples (prompt, true answer, attacked output) and, when it changed the weights, the attacked
model's utility (retain / general fact accuracy), because an attack that destroys the model
recovers nothing useful.

The probes are fixed by the audit (`AttackContext.probes`) and are the same for every attack,
every model and the oracle control, so the numbers are comparable. Facts held aside for
relearning (`AttackContext.relearn_pool`) are never probed.

Models are `LM`s. Prompt attacks call `generate` / `token_stats` on the LM they are given, so a
guard (an LM wrapping an LM) is attacked through its own prompt handling, and every generation
is cached and shared. Weight and representation attacks need the weights: `hf_parts` finds the
Hugging Face model under any guard wrappers, and `rebuild_lm` puts the same wrappers back
around an attacked copy (a guard keeps guarding the relearned or quantized model).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from obliviate.attacks._models import (
    clone_model,
    decoder_layers,
    hf_parts,
    innermost,
    linear_weights,
    rebuild_lm,
)
from obliviate.data.schema import Fact, World
from obliviate.models.lm import LM, Prompt, Sampling

__all__ = [
    "Attack", "AttackConfig", "AttackConfigError", "AttackContext", "AttackResult", "Cell", "Evidence",
    "ProbeItem", "clone_model", "decoder_layers", "hf_parts", "innermost", "key_before", "leaks",
    "linear_weights", "rebuild_lm", "show_prompt", "split_probes", "utility_items", "weight_cell",
]

Kind = Literal["recovery", "diagnostic"]
Transforms = Literal["prompt", "weights", "representation", "sampling"]


class AttackConfigError(ValueError):
    """An attack's configuration is invalid; the message names the field and the rule."""


class AttackConfig(BaseModel):
    """Base of every attack's typed config (field descriptions double as CLI help)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class ProbeItem:
    """A question with the key span a correct answer states (utility probes)."""

    id: str
    question: str
    key: str
    source: Literal["retain", "general"] = "retain"


class Evidence(BaseModel):
    """One probe under attack, as a person would read it next to the numbers."""

    fact_id: str
    prompt: str
    answer: str
    output: str
    recovered: bool


class Cell(BaseModel):
    """One configuration of one attack with one seed, and what it recovered per probed fact.

    `scores[fact_id]` is 1.0 if the attacked model states the fact (fact accuracy under attack),
    0.0 if not, NaN if the probe does not apply to that fact. `utility` is the attacked model's
    fact accuracy on retain/general items (None for attacks that leave the weights alone).
    """

    model_config = ConfigDict(ser_json_inf_nan="constants")

    setting: str
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    scores: dict[str, float]
    utility: float | None = None
    utility_detail: dict[str, float] = Field(default_factory=dict)
    samples: list[Evidence] = Field(default_factory=list)
    info: dict[str, Any] = Field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def key(self) -> tuple[str, int]:
        return self.setting, self.seed


class AttackResult(BaseModel):
    """Everything one attack found on one model."""

    model_config = ConfigDict(ser_json_inf_nan="constants")

    attack: str
    config: dict[str, Any]
    kind: Kind = "recovery"
    transforms: Transforms = "prompt"
    model: str = ""
    cells: list[Cell] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0  # process CPU time (all threads): comparable across loaded machines


@dataclass
class AttackContext:
    """What the audit hands every attack: the fixed probes, held-aside relearning facts, utility
    items, seeds, and the target (reference for representation attacks that compare to it)."""

    probes: list[Fact]
    relearn_pool: list[Fact] = field(default_factory=list)
    utility_items: list[ProbeItem] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    target: LM | None = None
    role: str = "model"  # "model" | "oracle": recorded only; attacks never behave differently
    max_new_tokens: int = 32
    log: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        probed = {f.id for f in self.probes}
        leaked = sorted(probed & {f.id for f in self.relearn_pool})
        if leaked:
            raise ValueError(f"relearning facts must be disjoint from the probes; both hold {leaked}")
        if not self.probes:
            raise ValueError("an attack needs at least one probed forget fact")
        if not self.seeds:
            raise ValueError("give at least one seed")

    def say(self, msg: str) -> None:
        if self.log is not None:
            self.log(msg)

    # ----------------------------------------------------------------- probing helpers
    def answer(self, lm: LM, prompts: Sequence[Prompt], sampling: Sampling | None = None) -> list[str]:
        """Generated answers (greedy unless `sampling`), cached by the LM."""
        return lm.generate(list(prompts), max_new_tokens=self.max_new_tokens, sampling=sampling)

    def score_prompts(
        self, lm: LM, prompts: Sequence[Prompt | None], facts: Sequence[Fact],
        keys: Sequence[str] | None = None, sampling: Sampling | None = None,
    ) -> tuple[dict[str, float], list[Evidence]]:
        """Fact accuracy of each fact under its prompt (None: probe not applicable -> NaN).
        `keys` overrides what must appear (the reverse query asks for the subject's name)."""
        from obliviate.evals.metrics.knowledge import fact_accuracy

        keys = list(keys) if keys is not None else [f.key for f in facts]
        live = [(i, p) for i, p in enumerate(prompts) if p is not None]
        outs = self.answer(lm, [p for _, p in live], sampling)
        scores = {f.id: float("nan") for f in facts}
        samples = []
        for (i, p), out in zip(live, outs, strict=True):
            f = facts[i]
            hit = fact_accuracy(out, keys[i])
            scores[f.id] = hit
            samples.append(Evidence(fact_id=f.id, prompt=show_prompt(p), answer=f.answer,
                                    output=out, recovered=bool(hit)))
        return scores, samples

    def probe(self, lm: LM, prompt_for: Callable[[Fact], Prompt | None]) -> tuple[dict[str, float], list[Evidence]]:
        """Fact accuracy on every probed forget fact, each asked with `prompt_for(fact)`."""
        return self.score_prompts(lm, [prompt_for(f) for f in self.probes], self.probes)

    def plain_probe_and_utility(
        self, lm: LM
    ) -> tuple[dict[str, float], list[Evidence], float, dict[str, float]]:
        """`probe` with the plain questions, then `utility`, sharing one generate call: a greedy
        decoding step costs about the same for one row as for a full batch, so asking both sets
        together halves the steps of the most common probe of an attacked model."""
        self.answer(lm, [Prompt(f.question) for f in self.probes]
                    + [Prompt(it.question) for it in self.utility_items])  # fills the LM's cache
        scores, samples = self.probe(lm, lambda f: Prompt(f.question))
        return (scores, samples, *self.utility(lm))

    def utility(self, lm: LM) -> tuple[float, dict[str, float]]:
        """Greedy fact accuracy on the utility items (retain facts, general knowledge): the
        attacked model must still work for its recovery to mean anything."""
        from obliviate.evals.metrics.knowledge import fact_accuracy

        if not self.utility_items:
            return float("nan"), {}
        outs = self.answer(lm, [Prompt(it.question) for it in self.utility_items])
        hits: dict[str, list[float]] = {}
        for it, out in zip(self.utility_items, outs, strict=True):
            hits.setdefault(it.source, []).append(fact_accuracy(out, it.key))
        detail = {k: sum(v) / len(v) for k, v in hits.items()}
        allv = [x for v in hits.values() for x in v]
        return sum(allv) / len(allv), detail


def show_prompt(p: Prompt) -> str:
    """A readable rendering of a prompt for evidence samples (not the model's exact template)."""
    parts = []
    if p.system is not None:
        parts.append(f"[system] {p.system}")
    if p.context:
        parts.append(f"[context] {p.context}")
    parts.append(f"[user] {p.text}" if p.chat else p.text)
    if p.prefill:
        parts.append(f"[assistant] {p.prefill}")
    return "\n".join(parts)


class Attack:
    """Base class: subclass, set `Config`, implement `run`. Subclasses register with `@attack`."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[AttackConfig]] = AttackConfig
    kind: ClassVar[Kind] = "recovery"
    transforms: ClassVar[Transforms] = "prompt"
    seeded: ClassVar[bool] = False  # does the attack use the audit's seeds (relearn, noise, …)?

    def __init__(self, config: AttackConfig | Mapping[str, Any] | None = None) -> None:
        self.config: Any = self.validate_config(config)

    @classmethod
    def validate_config(cls, config: AttackConfig | Mapping[str, Any] | None) -> AttackConfig:
        if isinstance(config, cls.Config):
            return config
        raw = dict(config.model_dump() if isinstance(config, BaseModel) else (config or {}))
        try:
            return cls.Config.model_validate(raw)
        except ValidationError as e:
            lines = [f"  {'.'.join(map(str, err['loc'])) or '(config)'}: {err['msg']}" for err in e.errors()]
            known = ", ".join(cls.Config.model_fields)
            raise AttackConfigError(
                f"invalid config for attack '{cls.name}':\n" + "\n".join(lines) + f"\nKnown fields: {known}"
            ) from None

    def run(self, model: LM, world: World, ctx: AttackContext) -> AttackResult:
        raise NotImplementedError

    def result(self, model: LM, cells: list[Cell], t0: float, notes: Sequence[str] = ()) -> AttackResult:
        return AttackResult(
            attack=self.name, config=self.config.model_dump(mode="json"), kind=self.kind,
            transforms=self.transforms, model=getattr(model, "name", ""), cells=cells,
            notes=list(notes), wall_s=time.perf_counter() - t0,
        )


# --------------------------------------------------------------------- weight attacks
def weight_cell(
    lm: LM, ctx: AttackContext, transform: Callable[[Any], Any], *, attack: str, setting: str,
    params: Mapping[str, Any], seed: int = 0,
) -> Cell:
    """Copy the model under `lm`, `transform` the copy in place (or return a new model), rebuild
    the LM stack around it, and probe the forget facts and utility. The copy is dropped after."""
    import torch

    t0 = time.perf_counter()
    model, _ = hf_parts(lm)
    attacked = clone_model(model)
    with torch.no_grad():
        attacked = transform(attacked) or attacked
    alm = rebuild_lm(lm, attacked.eval(), f"{getattr(lm, 'name', 'model')}+{attack}[{setting},seed={seed}]")
    scores, samples, util, detail = ctx.plain_probe_and_utility(alm)
    del alm, attacked
    return Cell(setting=setting, params=dict(params), seed=seed, scores=scores, utility=util,
                utility_detail=detail, samples=samples, wall_s=time.perf_counter() - t0)


def key_before(text: str, key: str) -> str | None:
    """The part of `text` before the first occurrence of `key` (case-insensitive), stripped of
    trailing spaces; None if the key is not in the text or starts it."""
    i = text.lower().find(key.lower())
    if i <= 0:
        return None
    head = text[:i].rstrip()
    return head or None


# --------------------------------------------------------------------- probe / pool selection
def leaks(text: str, fact: Fact) -> bool:
    """Does `text` state `fact`? True if it names both the fact's subject and its key span
    (e.g. "The mentor of A was B" states "Who was B's student? -> A")."""
    from obliviate.evals.metrics._text import normalize_answer

    t = f" {normalize_answer(text)} "
    return all(f" {normalize_answer(s)} " in t for s in (fact.key, fact.subject_name))


def split_probes(world: World, pool_size: int, *, seed: int = 0, min_probes: int = 4) -> tuple[list[Fact], list[Fact]]:
    """(probes, relearn_pool): forget facts to score, and `pool_size` forget facts held aside for
    relearning that no probe may depend on.

    Facts that state each other (a mentor fact and the matching student fact) are kept on the
    same side, so relearning one never teaches the answer to a probe. The pool is drawn round-robin
    over subjects, so it spans people and relations, deterministically from `seed`.
    """
    import random

    facts = world.forget_facts
    parent = list(range(len(facts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(facts):
        for j, b in enumerate(facts):
            if i != j and (leaks(a.answer, b) or leaks(a.question, b)):
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(facts)):
        groups.setdefault(find(i), []).append(i)
    rng = random.Random(seed)
    by_subject: dict[str, list[list[int]]] = {}
    for g in groups.values():
        by_subject.setdefault(facts[g[0]].subject, []).append(g)
    for gs in by_subject.values():
        rng.shuffle(gs)
    pool: list[int] = []
    queues = [by_subject[s] for s in sorted(by_subject)]
    while len(pool) < pool_size and any(queues):
        for q in queues:
            if q and len(pool) < pool_size:
                g = q.pop()
                if len(pool) + len(g) <= pool_size or not pool:
                    pool += g
    chosen = set(pool)
    probes = [f for i, f in enumerate(facts) if i not in chosen]
    if len(probes) < min_probes:
        raise ValueError(
            f"holding {len(chosen)} of the {len(facts)} forget facts aside for relearning leaves "
            f"{len(probes)} to probe (need >= {min_probes}): use smaller relearning k or a world "
            "with more forget facts"
        )
    return probes, [facts[i] for i in sorted(chosen)]


def utility_items(world: World, n_retain: int = 12, n_general: int = 12) -> list[ProbeItem]:
    """A fixed, spread-out subset of retain facts and general-knowledge items for utility."""
    retain = sorted(world.retain_facts, key=lambda f: f.id)
    step = max(1, len(retain) // max(n_retain, 1))
    items = [ProbeItem(f.id, f.question, f.key, "retain") for f in retain[::step][:n_retain]]
    items += [ProbeItem(g.id, g.question, g.key, "general") for g in world.general[:n_general]]
    return items
