"""Export a world in the file layouts of TOFU and MUSE, and read those layouts back.

So a synthetic world can be fed to tools written for the published benchmarks, and so the
benchmark loaders and ours agree on field names:

TOFU (Maini et al., 2024; `locuslab/TOFU`): one JSON object per line with `question`,
`answer`, `paraphrased_answer`, `paraphrased_question` and `perturbed_answer` (a list), as in
its `*_perturbed` configs. Files: `forget.jsonl`, `retain.jsonl` (retain and neighbour people),
`holdout.jsonl`, and `world_facts.jsonl` (general knowledge, with TOFU's `option1..option4`).

MUSE (Shi et al., 2025; `muse-bench/MUSE-*`): `knowmem/{forget,retain}_qa.json` and their
`_icl` few-shot files (lists of `{question, answer}`; the answer is the short key span, as in
MUSE), `verbmem/forget.json` (`{prompt, gt}`: each forget passage cut in half),
`privleak/{forget,retain,holdout}.json` (lists of texts), and `raw/{forget,retain1,holdout}`
as `.json` lists and `.txt` joined by blank lines.

Every exported QA object also carries an `obliviate` field holding the full record, and each
export writes an `obliviate.json` manifest, so `load_tofu`/`load_muse` rebuild the exact
records. Files from the real benchmarks lack both; the loaders then derive what they can (the
full benchmark loaders live elsewhere).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from obliviate.data.schema import MCQ, Fact, GeneralItem, Passage, Split, World
from obliviate.paths import atomic_dir, check_out_dir, content_hash

MANIFEST = "obliviate.json"
EXPORT_VERSION = 1
TOFU_FILES: dict[str, tuple[Split, ...]] = {
    "forget": ("forget",),
    "retain": ("retain", "neighbour"),
    "holdout": ("holdout",),
}
MUSE_RAW: dict[str, tuple[Split, ...]] = {
    "forget": ("forget",),
    "retain1": ("retain", "neighbour"),
    "holdout": ("holdout",),
}
N_ICL = 3  # few-shot demonstrations per KnowMem ICL file


def _dump_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def _dump_jsonl(rows: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _open_dir(tmp: Path) -> None:
    # atomic_dir's temporary directory is created 0700 (mkdtemp); an export is meant to be
    # read by other tools and users, so give it ordinary directory permissions.
    tmp.chmod(0o755)


def _prepare(out_dir: str | Path) -> Path:
    # A previous export is replaced; anything else that exists is refused, before any work.
    return check_out_dir(out_dir, "export", overwrite=True)


def _manifest(world: World, fmt: str, passages: dict[str, list[Passage]]) -> str:
    return _dump_json(
        {
            "format": fmt,
            "version": EXPORT_VERSION,
            "name": world.name,
            "content_hash": world.content_hash,
            "passages": {
                k: [{"id": p.id, "split": p.split, "subject": p.subject} for p in v]
                for k, v in passages.items()
            },
        }
    )


# --------------------------------------------------------------------------- TOFU


def _tofu_fact(f: Fact) -> dict[str, Any]:
    return {
        "question": f.question,
        "answer": f.answer,
        "paraphrased_answer": f.paraphrased_answer,
        "paraphrased_question": f.paraphrased_questions[0] if f.paraphrased_questions else "",
        "perturbed_answer": list(f.perturbed_answers),
        "obliviate": f.model_dump(mode="json"),
    }


def _tofu_general(g: GeneralItem) -> dict[str, Any]:
    wrong = [c for i, c in enumerate(g.mcq.choices) if i != g.mcq.answer]
    row: dict[str, Any] = {"question": g.question}
    row.update({f"option{i + 1}": c for i, c in enumerate(g.mcq.choices)})
    row.update(
        answer=g.answer,
        paraphrased_answer=g.answer,
        paraphrased_question=g.question,
        perturbed_answer=wrong,
        obliviate=g.model_dump(mode="json"),
    )
    return row


def export_tofu(world: World, out_dir: str | Path) -> Path:
    """Write `world` in TOFU's layout (see module docstring); replaces a previous export."""
    out = _prepare(out_dir)
    with atomic_dir(out, "export", overwrite=True) as tmp:
        _open_dir(tmp)
        for fname, splits in TOFU_FILES.items():
            rows = [_tofu_fact(f) for f in world.facts_in(*splits)]
            (tmp / f"{fname}.jsonl").write_text(_dump_jsonl(rows), encoding="utf-8")
        rows = [_tofu_general(g) for g in world.general]
        (tmp / "world_facts.jsonl").write_text(_dump_jsonl(rows), encoding="utf-8")
        (tmp / MANIFEST).write_text(_manifest(world, "tofu", {}), encoding="utf-8")
    return out


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _fact_from_qa(row: dict[str, Any], split: Split, rid: str, key: str | None = None) -> Fact:
    if "obliviate" in row:
        return Fact.model_validate(row["obliviate"])
    para_q = row.get("paraphrased_question")
    return Fact(
        id=rid,
        split=split,
        subject=rid,
        subject_name="",
        relation="qa",
        question=row["question"],
        answer=row["answer"],
        # TOFU answers are full sentences with no marked span: the whole answer is the key.
        key=key or row["answer"],
        paraphrased_questions=[para_q] if para_q else [],
        paraphrased_answer=row.get("paraphrased_answer", ""),
        perturbed_answers=list(row.get("perturbed_answer", [])),
    )


def _general_from_tofu(row: dict[str, Any], rid: str) -> GeneralItem:
    if "obliviate" in row:
        return GeneralItem.model_validate(row["obliviate"])
    options = [row[f"option{i}"] for i in range(1, 5) if f"option{i}" in row]
    if len(options) != 4 or row["answer"] not in options:
        options = [row["answer"], *row.get("perturbed_answer", [])][:4]
    if len(options) != 4:
        raise ValueError(f"{rid}: need option1..option4 or 3 perturbed answers to build an MCQ")
    mcq = MCQ(question=row["question"], choices=options, answer=options.index(row["answer"]))
    return GeneralItem(
        id=rid,
        category="world_facts",
        question=row["question"],
        answer=row["answer"],
        key=row["answer"],
        mcq=mcq,
    )


def _read_manifest(d: Path) -> dict[str, Any]:
    p = d / MANIFEST
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}


def _files_hash(d: Path, names: Sequence[str]) -> str:
    return content_hash({n: (d / n).read_text("utf-8") for n in names if (d / n).is_file()})


def load_tofu(directory: str | Path) -> World:
    """Read a TOFU-layout directory (ours or the benchmark's, as `<split>.jsonl`) as a World."""
    d = Path(directory)
    names = [f"{k}.jsonl" for k in TOFU_FILES] + ["world_facts.jsonl"]
    if not any((d / n).is_file() for n in names):
        raise FileNotFoundError(f"{d} holds none of {names}: not a TOFU-layout directory")
    facts: list[Fact] = []
    for fname, splits in TOFU_FILES.items():
        for i, row in enumerate(_read_jsonl(d / f"{fname}.jsonl")):
            facts.append(_fact_from_qa(row, splits[0], f"tofu:{fname}:{i}"))
    general = [
        _general_from_tofu(row, f"tofu:world_facts:{i}")
        for i, row in enumerate(_read_jsonl(d / "world_facts.jsonl"))
    ]
    m = _read_manifest(d)
    return World(
        name=m.get("name", d.name),
        content_hash=m.get("content_hash") or _files_hash(d, names),
        facts=facts,
        general=general,
    )


# --------------------------------------------------------------------------- MUSE


def _muse_qa(f: Fact) -> dict[str, Any]:
    # MUSE KnowMem answers are short spans scored by ROUGE-L F1: the key is that span.
    return {"question": f.question, "answer": f.key, "obliviate": f.model_dump(mode="json")}


def _split_passage(text: str) -> tuple[str, str]:
    """Cut a passage at its middle word: the prompt half and the ground-truth half (VerbMem)."""
    words = text.split(" ")
    cut = max(1, len(words) // 2)
    return " ".join(words[:cut]), " ".join(words[cut:])


def export_muse(world: World, out_dir: str | Path) -> Path:
    """Write `world` in MUSE's layout (see module docstring); replaces a previous export."""
    out = _prepare(out_dir)
    raw = {k: world.passages_in(*splits) for k, splits in MUSE_RAW.items()}
    icl = [{"question": g.question, "answer": g.key} for g in world.general[:N_ICL]]
    files: dict[str, str] = {
        "knowmem/forget_qa.json": _dump_json([_muse_qa(f) for f in world.facts_in("forget")]),
        "knowmem/retain_qa.json": _dump_json([_muse_qa(f) for f in world.retain_facts]),
        # Demonstrations come from general knowledge so the few-shot prompt never itself
        # states a forget or retain fact (MUSE draws them from its own corpus instead).
        "knowmem/forget_qa_icl.json": _dump_json(icl),
        "knowmem/retain_qa_icl.json": _dump_json(icl),
    }
    verbmem = []
    for p in raw["forget"]:
        prompt, gt = _split_passage(p.text)
        verbmem.append({"prompt": prompt, "gt": gt, "obliviate": p.model_dump(mode="json")})
    files["verbmem/forget.json"] = _dump_json(verbmem)
    for k, name in (("forget", "forget"), ("retain1", "retain"), ("holdout", "holdout")):
        files[f"privleak/{name}.json"] = _dump_json([p.text for p in raw[k]])
    for k, ps in raw.items():
        files[f"raw/{k}.json"] = _dump_json([p.text for p in ps])
        files[f"raw/{k}.txt"] = "\n\n".join(p.text for p in ps)
    with atomic_dir(out, "export", overwrite=True) as tmp:
        _open_dir(tmp)
        for rel, text in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_text(text, encoding="utf-8")
        (tmp / MANIFEST).write_text(_manifest(world, "muse", raw), encoding="utf-8")
    return out


def _read_json(path: Path) -> list[Any]:
    if not path.is_file():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        # ValueError, not TypeError: this is bad input data, which callers report as such.
        raise ValueError(f"{path}: expected a JSON list")  # noqa: TRY004
    return data


def load_muse(directory: str | Path) -> World:
    """Read a MUSE-layout directory (ours or the benchmark's) as a World: KnowMem QA as facts,
    raw corpora as passages."""
    d = Path(directory)
    if not (d / "knowmem").is_dir() and not (d / "raw").is_dir():
        raise FileNotFoundError(f"{d} has neither knowmem/ nor raw/: not a MUSE-layout directory")
    facts: list[Fact] = []
    qa_files: tuple[tuple[str, Split], ...] = (("forget", "forget"), ("retain", "retain"))
    for name, split in qa_files:
        for i, row in enumerate(_read_json(d / "knowmem" / f"{name}_qa.json")):
            rid = f"muse:{name}_qa:{i}"
            facts.append(_fact_from_qa(row, split, rid, key=row["answer"]))
    m = _read_manifest(d)
    passages: list[Passage] = []
    for k, splits in MUSE_RAW.items():
        texts = _read_json(d / "raw" / f"{k}.json")
        meta = m.get("passages", {}).get(k)
        if meta is not None and len(meta) != len(texts):
            raise ValueError(
                f"{d / MANIFEST}: lists {len(meta)} {k} passages, raw has {len(texts)}"
            )
        for i, text in enumerate(texts):
            info = meta[i] if meta else {"id": f"muse:{k}:{i}", "split": splits[0], "subject": k}
            passages.append(Passage(text=text, **info))
    names = [f"knowmem/{n}_qa.json" for n in ("forget", "retain")]
    names += [f"raw/{k}.json" for k in MUSE_RAW]
    return World(
        name=m.get("name", d.name),
        content_hash=m.get("content_hash") or _files_hash(d, names),
        facts=facts,
        passages=passages,
    )
