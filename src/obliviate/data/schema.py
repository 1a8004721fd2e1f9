"""Typed records shared by every stage: facts, passages, MCQs, and a loaded world.

A *world* is a directory of JSONL files (one record per line) plus `world.json` (config, split
lists, content hash). Synthetic worlds and real benchmarks (TOFU, MUSE, WMDP, RWKU) are both
mapped onto these records, so every method, metric and attack works on either.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Split = Literal["forget", "retain", "holdout", "neighbour", "general"]
SPLITS: tuple[Split, ...] = ("forget", "retain", "holdout", "neighbour", "general")


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MCQ(Record):
    """WMDP-format multiple choice: four choices and the index of the right one."""

    question: str
    choices: list[str] = Field(min_length=4, max_length=4)
    answer: int = Field(ge=0, le=3)


class Fact(Record):
    """One atomic fact about a subject, with every probe format derived from it.

    `key` is the span that carries the fact (a city, a year, a name): fact accuracy checks that
    it appears in a generated answer.
    """

    id: str
    split: Split
    subject: str  # person id (synthetic world) or topic id (benchmarks)
    subject_name: str
    relation: str
    question: str
    answer: str
    key: str
    paraphrased_questions: list[str] = Field(default_factory=list)
    paraphrased_answer: str = ""
    perturbed_answers: list[str] = Field(default_factory=list)
    mcq: MCQ | None = None
    cloze: str = ""  # a sentence prefix whose natural continuation is `key`

    @field_validator("key")
    @classmethod
    def _key_nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("key span must not be empty")
        return v


class Passage(Record):
    """Free text about a subject (a biography, a news article, a book chapter) for VerbMem/MIA."""

    id: str
    split: Split
    subject: str
    text: str


class MultiHop(Record):
    """A question whose answer needs facts about two subjects."""

    id: str
    split: Split
    subjects: list[str]
    question: str
    answer: str
    key: str


class GeneralItem(Record):
    """General knowledge the base model already has: a QA pair with a key span and an MCQ."""

    id: str
    category: str
    question: str
    answer: str
    key: str
    mcq: MCQ


RecordT = Fact | Passage | MultiHop | GeneralItem


def write_jsonl(path: Path, records: Iterable[BaseModel]) -> None:
    """Write records one JSON object per line, atomically (write to a temp file, then rename)."""
    from obliviate.paths import atomic_write_text

    atomic_write_text(path, "".join(r.model_dump_json() + "\n" for r in records))


def read_jsonl(path: Path, cls: type[Record]) -> list[Record]:
    """Read and validate a JSONL file; errors name the file and the line."""
    out: list[Record] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(cls.model_validate(json.loads(line)))
            except (ValueError, TypeError) as e:
                raise ValueError(f"{path}:{lineno}: not a valid {cls.__name__}: {e}") from e
    return out


class World(BaseModel):
    """Everything one experiment unlearns and measures, loaded from a world directory."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str
    content_hash: str
    config: dict[str, object] = Field(default_factory=dict)
    facts: list[Fact] = Field(default_factory=list)
    passages: list[Passage] = Field(default_factory=list)
    multihop: list[MultiHop] = Field(default_factory=list)
    general: list[GeneralItem] = Field(default_factory=list)

    def facts_in(self, *splits: Split) -> list[Fact]:
        return [f for f in self.facts if f.split in splits]

    def passages_in(self, *splits: Split) -> list[Passage]:
        return [p for p in self.passages if p.split in splits]

    def trainable_passages(self, *splits: Split) -> list[Passage]:
        """Passages of `splits` that may be trained on: all but those a benchmark marks as
        evaluation-only (e.g. MUSE's membership-inference texts, listed in
        `config["eval_only_passages"]`)."""
        banned = set(self.config.get("eval_only_passages", None) or [])  # type: ignore[call-overload]
        return [p for p in self.passages_in(*splits) if p.id not in banned]

    @property
    def trains_on_passages_only(self) -> bool:
        """Benchmarks whose QA items are probes only (MUSE, WMDP, RWKU) set `train_on=passages`."""
        return self.config.get("train_on") == "passages"

    @property
    def forget_facts(self) -> list[Fact]:
        return self.facts_in("forget")

    @property
    def retain_facts(self) -> list[Fact]:
        # Neighbours are retain subjects chosen for sharing attributes with forget subjects:
        # they are trained on like any retain subject and measured separately for locality.
        return self.facts_in("retain", "neighbour")

    def subjects_in(self, *splits: Split) -> list[str]:
        seen: dict[str, None] = {}
        for f in self.facts_in(*splits):
            seen.setdefault(f.subject, None)
        return list(seen)


WORLD_FILES: dict[str, type[Record]] = {
    "facts.jsonl": Fact,
    "passages.jsonl": Passage,
    "multihop.jsonl": MultiHop,
    "general.jsonl": GeneralItem,
}


def save_world(world: World, directory: Path, *, overwrite: bool = False) -> Path:
    """Write a world directory in one atomic step: a new directory, an empty one, or (with
    `overwrite`) an earlier obliviate world; a killed write leaves the old world whole."""
    from obliviate.paths import atomic_dir

    with atomic_dir(directory, "world", overwrite=overwrite) as tmp:
        write_jsonl(tmp / "facts.jsonl", world.facts)
        write_jsonl(tmp / "passages.jsonl", world.passages)
        write_jsonl(tmp / "multihop.jsonl", world.multihop)
        write_jsonl(tmp / "general.jsonl", world.general)
        manifest = {"name": world.name, "content_hash": world.content_hash, "config": world.config}
        (tmp / "world.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return Path(directory)


def load_world(directory: str | Path) -> World:
    """Load a world directory written by `save_world` (or by a benchmark loader)."""
    d = Path(directory)
    manifest_path = d / "world.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"{d} is not a world directory (no world.json): build one with `obliviate world --out {d}`"
        )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    parts: dict[str, Sequence[Record]] = {}
    for fname, cls in WORLD_FILES.items():
        p = d / fname
        parts[fname] = read_jsonl(p, cls) if p.is_file() else []
    return World(
        name=manifest.get("name", d.name),
        content_hash=manifest["content_hash"],
        config=manifest.get("config", {}),
        facts=list(parts["facts.jsonl"]),  # type: ignore[arg-type]
        passages=list(parts["passages.jsonl"]),  # type: ignore[arg-type]
        multihop=list(parts["multihop.jsonl"]),  # type: ignore[arg-type]
        general=list(parts["general.jsonl"]),  # type: ignore[arg-type]
    )


def iter_texts(world: World, *splits: Split) -> Iterator[tuple[str, str]]:
    """(id, text) for every trained text of the given splits: QA answers in context and passages."""
    for f in world.facts_in(*splits):
        yield f.id, f"{f.question} {f.answer}"
    for p in world.passages_in(*splits):
        yield p.id, p.text
