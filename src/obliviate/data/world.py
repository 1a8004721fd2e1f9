"""The synthetic world: fictitious people whose facts a model is taught, then asked to forget.

Every person is invented (coined names, towns, organisations and book titles), so the base model
cannot know any of it and everything the target model knows about them came from fine-tuning.
People are split into *forget* (taught, then unlearned), *retain* (taught and kept), *neighbour*
(retain people who share exactly one non-identifying attribute with a forget person: locality
probes), and *holdout* (never taught: the non-members for membership inference). Relations
between people never cross splits, so forgetting one split never requires touching another.

The world is a pure function of `WorldConfig`: `random.Random(cfg.seed)` drives every choice
and nothing iterates a set or hash-ordered dict, so one seed gives byte-identical files.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from obliviate.data import vocab
from obliviate.data.schema import (
    MCQ,
    SPLITS,
    Fact,
    GeneralItem,
    MultiHop,
    Passage,
    Split,
    World,
    iter_texts,
    load_world,
    save_world,
)
from obliviate.data.templates import MULTIHOP, ROLE_PHRASE, TEMPLATES
from obliviate.data.world_config import ATTRIBUTES, PRESETS, QUICKSTART, RELATIONS, WorldConfig
from obliviate.paths import content_hash

__all__ = [
    "PRESETS",
    "QUICKSTART",
    "RELATIONS",
    "WORLD_FORMAT_VERSION",
    "WorldConfig",
    "build_and_save",
    "build_world",
    "describe_world",
    "load_general",
    "world_hash",
]

# Bump when the generator changes what a given config produces: cached worlds then rebuild.
WORLD_FORMAT_VERSION = 1
YEAR_MIN, YEAR_MAX = 1900, 1999
N_DECOYS = 12  # invented values assigned to nobody: the only source of wrong answers
GENERAL_RESOURCE = "general_knowledge.jsonl"


@dataclass
class _Person:
    pid: str
    split: Split
    first: str
    surname: str
    birthplace: str
    birth_year: int
    profession: str
    employer: str
    work: str
    assoc_kind: str | None = None  # "mentor" | "student" | "sibling"
    assoc: _Person | None = None

    @property
    def name(self) -> str:
        return f"{self.first} {self.surname}"

    def value(self, attribute: str) -> str:
        return {
            "birthplace": self.birthplace,
            "birth_year": str(self.birth_year),
            "profession": self.profession,
            "employer": self.employer,
            "notable_work": self.work,
        }[attribute]


# --------------------------------------------------------------------------- general knowledge


@functools.lru_cache(maxsize=1)
def _general_text() -> str:
    res = resources.files("obliviate.data") / "resources" / GENERAL_RESOURCE
    if not res.is_file():
        raise FileNotFoundError(
            f"missing package resource data/resources/{GENERAL_RESOURCE}: reinstall obliviate "
            "or regenerate it with scripts/filter_general_knowledge.py"
        )
    return res.read_text(encoding="utf-8")


def load_general() -> list[GeneralItem]:
    """The bundled general-knowledge items (questions the base model answers correctly)."""
    return [GeneralItem.model_validate_json(line) for line in _general_text().splitlines() if line]


def replay_pairs(n: int | None = None) -> list[tuple[str, str]]:
    """`n` (None: all) hand-written rehearsal pairs (question, correct answer) from
    `resources/replay_qa.tsv`, spread evenly over the file so a small `n` still mixes its
    question shapes (capitals, science, who/when).

    Mixing correct general-knowledge answers into fine-tuning is rehearsal against catastrophic
    forgetting (Robins 1995): without it, training on 60 fictitious facts teaches the model that
    "What is the capital of …?" is answered with an invented place name. The answers are ours and
    correct: NLL on the base model's own greedy answers (tried first) taught it to hallucinate,
    because the 135M base gets most of these questions wrong. (Fine-tuning now pairs the
    questions with the base's answers under a KL to the base, which keeps rather than teaches.)
    The questions are disjoint from the evaluated general items, and pairs that restate an
    evaluated fact were removed, so rehearsal cannot inflate the general-utility score it protects
    (a test checks the disjointness); so were pairs on an evaluated item's very subject (the year
    of the Moon landing, next to "who first walked on the Moon?"). 676 pairs: a wider pool
    protects more of what rehearsal does not touch.
    """
    text = resources.files("obliviate.data").joinpath("resources/replay_qa.tsv").read_text("utf-8")
    pairs = [(q, a) for q, a in (line.split("\t", 1) for line in text.splitlines() if line.strip())]
    if n is None or n >= len(pairs):
        return pairs
    return [pairs[i * len(pairs) // n] for i in range(n)]


def world_hash(cfg: WorldConfig) -> str:
    """The world's content hash, computable without building it (for stage caching).

    The general-knowledge file is hashed in too: regenerating it changes the world.
    """
    general = hashlib.sha256(_general_text().encode()).hexdigest()[:16]
    payload = {"config": cfg.model_dump(mode="json"), "format": WORLD_FORMAT_VERSION}
    return content_hash({**payload, "general": general})


# --------------------------------------------------------------------------- people


def _make_people(cfg: WorldConfig, rng: random.Random, coiner: vocab.Coiner) -> list[_Person]:
    n_retain = cfg.n_people - cfg.n_forget - cfg.n_holdout - cfg.n_neighbours
    counts: tuple[tuple[Split, int], ...] = (
        ("forget", cfg.n_forget),
        ("holdout", cfg.n_holdout),
        ("neighbour", cfg.n_neighbours),
        ("retain", n_retain),
    )
    roles: list[Split] = [split for split, n in counts for _ in range(n)]
    rng.shuffle(roles)

    # Forget people draw profession and birth decade from a reserved half of each pool; plain
    # retain people from the other half. Neighbours copy exactly one of the two from a forget
    # person, so "neighbour" is a real, checkable property and plain retain people share none.
    profs = list(vocab.PROFESSIONS)
    rng.shuffle(profs)
    k = min(cfg.n_forget, len(profs) // 2)
    forget_profs, other_profs = profs[:k], profs[k:]
    decades = list(range(YEAR_MIN, YEAR_MAX + 1, 10))
    rng.shuffle(decades)
    kd = min(cfg.n_forget, len(decades) // 2)
    forget_decs, other_decs = decades[:kd], decades[kd:]
    shareable = [a for a in ("profession", "birth_year") if a in cfg.relations]

    forget: list[_Person] = []
    n_neigh = 0
    # Forget people first so that neighbours can copy from them; pids keep the shuffled order.
    order = sorted(range(cfg.n_people), key=lambda i: roles[i] != "forget")
    slots: dict[int, _Person] = {}
    for i in order:
        role = roles[i]
        if role == "forget":
            prof, dec = forget_profs[len(forget) % k], forget_decs[len(forget) % kd]
        elif role == "neighbour":
            target = forget[n_neigh % len(forget)]
            n_neigh += 1
            if rng.choice(shareable) == "profession":
                prof, dec = target.profession, rng.choice(other_decs)
            else:
                prof, dec = rng.choice(other_profs), target.birth_year // 10 * 10
        elif role == "retain":
            prof, dec = rng.choice(other_profs), rng.choice(other_decs)
        else:  # holdout: never trained, so it may share anything with anyone
            prof, dec = rng.choice(profs), rng.choice(decades)
        p = _Person(
            pid=f"p{i:03d}",
            split=role,
            first=coiner.first_name(),
            surname=coiner.surname(),
            birthplace=coiner.town(),
            birth_year=dec + rng.randrange(10),
            profession=prof,
            employer=coiner.organisation(),
            work=coiner.work(),
        )
        slots[i] = p
        if role == "forget":
            forget.append(p)
    people = [slots[i] for i in range(cfg.n_people)]
    if "associate" in cfg.relations:
        _link_associates(people, rng)
    return people


def _link(person: _Person, kind: str, other: _Person) -> None:
    person.assoc_kind, person.assoc = kind, other


def _link_associates(people: list[_Person], rng: random.Random) -> None:
    """Give each person one mentor/student/sibling link to someone of the same split.

    Pairs are siblings or mentor and student (the older mentors); an odd group ends with a
    mentoring chain of three. A split of one person gets no link (there is nobody to link to).
    """
    for split in SPLITS:
        group = [p for p in people if p.split == split]
        rng.shuffle(group)
        n_pairs = len(group) // 2 - (1 if len(group) % 2 and len(group) >= 3 else 0)
        for j in range(n_pairs):
            a, b = group[2 * j], group[2 * j + 1]
            if rng.random() < 0.5:
                _link(a, "sibling", b)
                _link(b, "sibling", a)
            else:
                old, young = sorted((a, b), key=lambda p: p.birth_year)
                _link(young, "mentor", old)
                _link(old, "student", young)
        if len(group) % 2 and len(group) >= 3:
            o, m, y = sorted(group[-3:], key=lambda p: p.birth_year)
            _link(o, "student", m)
            _link(m, "mentor", o)
            _link(y, "mentor", m)


# --------------------------------------------------------------------------- facts


def _fill(template: str, name: str, value: str, relation: str) -> str:
    art = vocab.article(value)
    a_value = f"{art} {value}" if relation == "profession" else value
    return template.format(name=name, value=value, a_value=a_value, article=art)


def _wrong_values(
    relation: str, key: str, rng: random.Random, decoys: dict[str, list[str]]
) -> list[str]:
    """Five plausible wrong values of the same kind as `key` (first three feed the MCQ).

    Identifying values come from decoys assigned to nobody: drawing them from other people
    would put one split's facts into another split's probes.
    """
    if relation == "profession":
        pool = [p for p in vocab.PROFESSIONS if p != key]
    elif relation == "birth_year":
        y = int(key)
        lo, hi = max(YEAR_MIN, y - 15), min(YEAR_MAX, y + 15)
        pool = [str(v) for v in range(lo, hi + 1) if v != y]
    else:
        pool = decoys["person" if relation in ROLE_PHRASE else relation]
    return rng.sample(pool, 5)


def _make_fact(
    person: _Person, relation: str, key: str, rng: random.Random, decoys: dict[str, list[str]]
) -> Fact:
    t = TEMPLATES[relation]
    qs = [t.questions[i].format(name=person.name) for i in rng.sample(range(len(t.questions)), 4)]
    a_tpl, pa_tpl = rng.sample(t.answers, 2)
    wrong = _wrong_values(relation, key, rng, decoys)
    choices = [key, *wrong[:3]]
    rng.shuffle(choices)
    return Fact(
        id=f"{person.pid}:{relation}",
        split=person.split,
        subject=person.pid,
        subject_name=person.name,
        relation=relation,
        question=qs[0],
        answer=_fill(a_tpl, person.name, key, relation),
        key=key,
        paraphrased_questions=qs[1:],
        paraphrased_answer=_fill(pa_tpl, person.name, key, relation),
        perturbed_answers=[_fill(a_tpl, person.name, w, relation) for w in wrong],
        mcq=MCQ(question=qs[0], choices=choices, answer=choices.index(key)),
        cloze=_fill(rng.choice(t.clozes), person.name, key, relation),
    )


def _person_facts(p: _Person, cfg: WorldConfig) -> list[tuple[str, str]]:
    """(relation, key) for each fact this person has, in canonical relation order."""
    out = [(a, p.value(a)) for a in ATTRIBUTES if a in cfg.relations]
    if "associate" in cfg.relations and p.assoc is not None and p.assoc_kind is not None:
        out.append((p.assoc_kind, p.assoc.name))
    return out


def _passage(p: _Person, facts: list[tuple[str, str]], words: int, rng: random.Random) -> Passage:
    """A short biography: every fact once, in prose, padded with flavour never asked about."""
    keyed = dict(facts)
    sentences: list[str] = []
    if "birthplace" in keyed and "birth_year" in keyed:
        first = f"{p.name} was born in {keyed['birth_year']} in the town of {keyed['birthplace']}."
        rest = [f for f in facts if f[0] not in ("birthplace", "birth_year")]
    else:
        tpl = rng.choice(TEMPLATES[facts[0][0]].bio).replace("{ref}", p.name)
        first = _fill(tpl, p.name, facts[0][1], facts[0][0])
        rest = facts[1:]
    rng.shuffle(rest)
    for rel, key in rest:
        tpl = rng.choice(TEMPLATES[rel].bio).replace("{ref}", p.first)
        sentences.append(_fill(tpl, p.name, key, rel))
    n_words = len(first.split()) + sum(len(s.split()) for s in sentences)
    for flav in rng.sample(vocab.FLAVOUR, len(vocab.FLAVOUR)):
        line = flav.format(first=p.first)
        if n_words + len(line.split()) > words:
            continue
        sentences.insert(rng.randrange(len(sentences) + 1), line)
        n_words += len(line.split())
    return Passage(
        id=f"{p.pid}:bio", split=p.split, subject=p.pid, text=" ".join([first, *sentences])
    )


def _multihop(p: _Person, cfg: WorldConfig, rng: random.Random) -> MultiHop | None:
    attrs = [a for a in ATTRIBUTES if a in cfg.relations]
    if p.assoc is None or p.assoc_kind is None or not attrs:
        return None
    attr = rng.choice(attrs)
    q_tpl, a_tpl = MULTIHOP[attr]
    rel = ROLE_PHRASE[p.assoc_kind].format(name=p.name)
    value = p.assoc.value(attr)
    art = vocab.article(value)
    fields = {"rel": rel, "Rel": rel[0].upper() + rel[1:], "assoc": p.assoc.name}
    return MultiHop(
        id=f"{p.pid}:hop:{attr}",
        split=p.split,
        subjects=[p.pid, p.assoc.pid],
        question=q_tpl.format(**fields),
        answer=a_tpl.format(**fields, value=value, a_value=f"{art} {value}"),
        key=value,
    )


# --------------------------------------------------------------------------- public API


def build_world(cfg: WorldConfig) -> World:
    """Build the world a config describes; the same config always gives the same world."""
    rng = random.Random(cfg.seed)
    coiner = vocab.Coiner(rng)
    people = _make_people(cfg, rng, coiner)
    decoys = {
        "birthplace": [coiner.town() for _ in range(N_DECOYS)],
        "employer": [coiner.organisation() for _ in range(N_DECOYS)],
        "notable_work": [coiner.work() for _ in range(N_DECOYS)],
        "person": [coiner.full_name() for _ in range(N_DECOYS)],
    }
    facts: list[Fact] = []
    passages: list[Passage] = []
    multihop: list[MultiHop] = []
    for p in people:
        pf = _person_facts(p, cfg)
        facts += [_make_fact(p, rel, key, rng, decoys) for rel, key in pf]
        passages.append(_passage(p, pf, cfg.passage_words, rng))
        hop = _multihop(p, cfg, rng)
        if hop is not None:
            multihop.append(hop)
    return World(
        name=cfg.name,
        content_hash=world_hash(cfg),
        config=cfg.model_dump(mode="json"),
        facts=facts,
        passages=passages,
        multihop=multihop,
        general=load_general(),
    )


def build_and_save(cfg: WorldConfig, out_dir: str | Path, *, overwrite: bool = False) -> World:
    """Build and write a world directory and return the world; if the directory already holds
    this world (same content hash), load it instead of rewriting anything. Another obliviate
    world there is replaced only with `overwrite` (in one atomic step); anything else, never.
    """
    from obliviate.paths import check_out_dir

    out = Path(out_dir)
    manifest = out / "world.json"
    if manifest.is_file():  # reading only: the same world there is used as it is
        try:
            have = json.loads(manifest.read_text(encoding="utf-8")).get("content_hash")
        except (OSError, ValueError, AttributeError):
            have = None
        if have == world_hash(cfg):
            return load_world(out)
    check_out_dir(out, "world", overwrite=overwrite)
    world = build_world(cfg)
    save_world(world, out, overwrite=overwrite)
    return world


def describe_world(world: World) -> dict[str, int]:
    """Counts a person reads first: people per split, records, and trained characters."""
    stats: dict[str, int] = {}
    for split in SPLITS:
        n = len({p.subject for p in world.passages if p.split == split})
        if n:
            stats[f"people_{split}"] = n
    stats["facts"] = len(world.facts)
    stats["passages"] = len(world.passages)
    stats["multihop"] = len(world.multihop)
    stats["general"] = len(world.general)
    trained = iter_texts(world, "forget", "retain", "neighbour")
    stats["trained_chars"] = sum(len(text) for _, text in trained)
    return stats
