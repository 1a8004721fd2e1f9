"""The synthetic world: determinism, split hygiene, probe well-formedness, config errors."""

from __future__ import annotations

import filecmp
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obliviate.data.schema import World, load_world, save_world
from obliviate.data.world import (
    QUICKSTART,
    RELATIONS,
    WorldConfig,
    build_and_save,
    build_world,
    describe_world,
    load_general,
    world_hash,
)

# Values that identify a person: a forget person's value must never appear outside forget.
IDENTIFYING = ("birthplace", "employer", "notable_work", "mentor", "student", "sibling")
WORLD_FILES = ("facts.jsonl", "passages.jsonl", "multihop.jsonl", "general.jsonl", "world.json")


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(QUICKSTART)


def _texts_by_split(world: World) -> dict[str, list[str]]:
    """Every string a probe or a training step could show, grouped by split."""
    out: dict[str, list[str]] = {}
    for f in world.facts:
        texts = [f.question, f.answer, f.paraphrased_answer, f.cloze, *f.paraphrased_questions]
        texts += f.perturbed_answers + (f.mcq.choices if f.mcq else [])
        out.setdefault(f.split, []).extend(texts)
    for p in world.passages:
        out.setdefault(p.split, []).append(p.text)
    for m in world.multihop:
        out.setdefault(m.split, []).extend([m.question, m.answer])
    return out


def _assert_disjoint(world: World) -> None:
    texts = _texts_by_split(world)
    forget = world.facts_in("forget")
    secrets = {f.subject_name for f in forget}
    secrets |= {f.key for f in forget if f.relation in IDENTIFYING}
    secrets |= {f.answer for f in forget}
    for split in ("retain", "neighbour", "holdout"):
        blob = "\n".join(texts.get(split, [])).lower()
        leaked = sorted(s for s in secrets if s.lower() in blob)
        assert not leaked, f"forget text leaks into {split}: {leaked}"
    # Relations and multi-hop never cross splits.
    split_of = {f.subject: f.split for f in world.facts}
    name_split = {f.subject_name: f.split for f in world.facts}
    for f in world.facts:
        if f.relation in ("mentor", "student", "sibling"):
            assert name_split[f.key] == f.split, f.id
    for m in world.multihop:
        assert {split_of[s] for s in m.subjects} == {m.split}, m.id


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    a = save_world(build_world(QUICKSTART), tmp_path / "a")
    b = save_world(build_world(QUICKSTART), tmp_path / "b")
    _match, mismatch, errors = filecmp.cmpfiles(a, b, WORLD_FILES, shallow=False)
    assert not mismatch and not errors


def test_different_seed_gives_different_world() -> None:
    a = build_world(QUICKSTART)
    b = build_world(QUICKSTART.model_copy(update={"seed": 1}))
    assert a.content_hash != b.content_hash
    assert [f.answer for f in a.facts] != [f.answer for f in b.facts]


def test_quickstart_shape(world: World) -> None:
    stats = describe_world(world)
    assert stats["people_forget"] == 4 and stats["people_holdout"] == 4
    assert stats["people_neighbour"] == 3 and stats["people_retain"] == 5
    assert stats["facts"] == 16 * 5 and stats["passages"] == 16
    # Fine-tuning runs at ~200 tokens/s: the trained text must stay a few thousand tokens.
    assert stats["trained_chars"] < 16_000
    for p in world.passages:
        assert 45 <= len(p.text.split()) <= 95, p.text


def test_splits_are_disjoint(world: World) -> None:
    _assert_disjoint(world)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n_people=st.integers(3, 40),
    data=st.data(),
)
def test_splits_are_disjoint_for_any_seed_and_size(
    seed: int, n_people: int, data: st.DataObject
) -> None:
    n_forget = data.draw(st.integers(1, n_people - 2))
    n_holdout = data.draw(st.integers(0, n_people - n_forget - 1))
    n_neigh = data.draw(st.integers(0, n_people - n_forget - n_holdout))
    rels = data.draw(st.lists(st.sampled_from(RELATIONS[:-1]), min_size=1, unique=True))
    rels += data.draw(st.sampled_from([[], ["associate"]]))
    if n_neigh and not {"profession", "birth_year"} & set(rels):
        rels.append("profession")
    cfg = WorldConfig(
        seed=seed,
        n_people=n_people,
        n_forget=n_forget,
        n_holdout=n_holdout,
        n_neighbours=n_neigh,
        relations=tuple(rels),
    )
    w = build_world(cfg)
    _assert_disjoint(w)
    assert len(w.subjects_in("forget")) == n_forget
    assert len(w.subjects_in("neighbour")) == n_neigh


def test_fact_probes_are_well_formed(world: World) -> None:
    ids = [f.id for f in world.facts]
    assert len(ids) == len(set(ids))
    relations = set()
    for f in world.facts:
        relations.add(f.relation)
        assert f.key in f.answer and f.key in f.paraphrased_answer
        assert f.paraphrased_answer != f.answer
        assert len(set(f.paraphrased_questions)) >= 3
        assert f.question not in f.paraphrased_questions
        assert f.key.lower() not in f.question.lower()
        assert len(f.perturbed_answers) == 5 and len(set(f.perturbed_answers)) == 5
        for wrong in f.perturbed_answers:
            assert not re.search(rf"\b{re.escape(f.key)}\b", wrong), (f.id, wrong)
        assert f.mcq is not None
        assert len(set(f.mcq.choices)) == 4 and f.mcq.choices[f.mcq.answer] == f.key
        assert f.cloze.strip() and f.key not in f.cloze
    assert {"birthplace", "birth_year", "profession", "employer"} <= relations
    assert relations & {"mentor", "student", "sibling"}


def test_paraphrases_change_the_wording(world: World) -> None:
    # Real paraphrases, not one swapped word: each differs from the question in >= 2 words.
    for f in world.facts:
        q = set(f.question.lower().split())
        for p in f.paraphrased_questions:
            assert len(q ^ set(p.lower().split())) >= 2, (f.question, p)


def test_questions_vary_across_people(world: World) -> None:
    for rel in ("birthplace", "birth_year", "profession", "employer"):
        templates = {
            f.question.replace(f.subject_name, "X") for f in world.facts if f.relation == rel
        }
        assert len(templates) >= 3, rel


def test_mcq_answer_positions_are_spread(world: World) -> None:
    positions = {f.mcq.answer for f in world.facts if f.mcq}
    assert positions == {0, 1, 2, 3}


def _decade(f_year: str) -> int:
    return int(f_year) // 10


def test_neighbours_share_exactly_one_attribute(world: World) -> None:
    def attrs(split: str) -> dict[str, dict[str, object]]:
        out: dict[str, dict[str, object]] = {}
        for f in world.facts_in(split):  # type: ignore[arg-type]
            if f.relation == "profession":
                out.setdefault(f.subject, {})["profession"] = f.key
            if f.relation == "birth_year":
                out.setdefault(f.subject, {})["decade"] = _decade(f.key)
        return out

    forget = attrs("forget")
    f_prof = {a["profession"] for a in forget.values()}
    f_dec = {a["decade"] for a in forget.values()}
    for subject, a in attrs("neighbour").items():
        shared = (a["profession"] in f_prof) + (a["decade"] in f_dec)
        assert shared == 1, subject
    for subject, a in attrs("retain").items():
        assert a["profession"] not in f_prof and a["decade"] not in f_dec, subject


def test_associates_are_consistent(world: World) -> None:
    by_name = {f.subject_name: f.subject for f in world.facts}
    links = {
        (f.subject, f.relation): by_name[f.key]
        for f in world.facts
        if f.relation in ("mentor", "student", "sibling")
    }
    for (subject, rel), other in links.items():
        assert other != subject
        if rel == "sibling" and (other, "sibling") in links:
            assert links[(other, "sibling")] == subject
        if rel == "student" and (other, "mentor") in links:
            assert links[(other, "mentor")] == subject


def test_multihop_links_two_people(world: World) -> None:
    assert len(world.multihop) >= 12
    names = {f.subject: f.subject_name for f in world.facts}
    for m in world.multihop:
        a, b = m.subjects
        assert a != b and names[a] in m.question and names[b] in m.answer
        assert m.key in m.answer and m.key not in m.question


def test_passages_state_every_fact(world: World) -> None:
    text = {p.subject: p.text for p in world.passages}
    for f in world.facts:
        assert f.key in text[f.subject], f.id
    split_of = {f.subject: f.split for f in world.facts}
    assert all(p.split == split_of[p.subject] for p in world.passages)


def test_save_load_round_trip(world: World, tmp_path: Path) -> None:
    save_world(world, tmp_path)
    back = load_world(tmp_path)
    assert back.model_dump() == world.model_dump()


def test_build_and_save_is_idempotent(tmp_path: Path) -> None:
    out = tmp_path / "w"
    assert build_and_save(QUICKSTART, out).model_dump() == build_world(QUICKSTART).model_dump()
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert build_and_save(QUICKSTART, out).content_hash == world_hash(QUICKSTART)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes
    assert load_world(out).content_hash == world_hash(QUICKSTART)
    other = QUICKSTART.model_copy(update={"seed": 7})
    with pytest.raises(ValueError, match="--overwrite"):  # another world: only when asked
        build_and_save(other, out)
    assert load_world(out).content_hash == world_hash(QUICKSTART)
    build_and_save(other, out, overwrite=True)
    assert load_world(out).content_hash == world_hash(other)


def test_relation_order_does_not_change_the_world() -> None:
    a = WorldConfig(relations=("profession", "birthplace"), n_neighbours=0)
    b = WorldConfig(relations=("birthplace", "profession"), n_neighbours=0)
    assert world_hash(a) == world_hash(b)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_forget": 0}, "n_forget"),
        ({"n_people": 10, "n_forget": 6, "n_holdout": 4}, "n_forget"),
        ({"n_people": 10, "n_forget": 2, "n_holdout": 2, "n_neighbours": 7}, "n_neighbours"),
        ({"n_holdout": -1}, "n_holdout"),
        ({"n_people": 1000}, "n_people"),
        ({"passage_words": 5}, "passage_words"),
        ({"relations": ("birthplace", "hometown")}, "relations"),
        ({"relations": ()}, "relations"),
        ({"relations": ("associate",)}, "relations"),
        ({"relations": ("employer",), "n_neighbours": 2}, "n_neighbours"),
        ({"name": ""}, "name"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_configs_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        WorldConfig(**kwargs)  # type: ignore[arg-type]


def test_unknown_relation_suggests_a_fix() -> None:
    with pytest.raises(ValueError, match="did you mean 'birthplace'"):
        WorldConfig(relations=("birthplce",))


def test_general_knowledge_resource() -> None:
    items = load_general()
    assert len(items) >= 150
    assert len({g.id for g in items}) == len(items)
    assert len({g.question for g in items}) == len(items)
    for g in items:
        assert g.key.strip() and g.key.lower() in g.answer.lower()
        assert len(set(g.mcq.choices)) == 4 and g.mcq.choices[g.mcq.answer] == g.key
    assert len({g.category for g in items}) >= 8


def test_world_carries_general_knowledge(world: World) -> None:
    assert world.general == load_general()
