"""Where obliviate keeps things, atomic writes, and content hashes for stage caching."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def home() -> Path:
    """The cache root: `$OBLIVIATE_HOME`, default `~/.cache/obliviate`. Checked for writability."""
    root = Path(os.environ.get("OBLIVIATE_HOME", Path.home() / ".cache" / "obliviate")).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-probe-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise PermissionError(
            f"cache directory {root} is not writable ({e.strerror}); "
            "set OBLIVIATE_HOME to a directory you can write to"
        ) from e
    return root


def content_hash(obj: Any, length: int = 16) -> str:
    """A stable hash of a JSON-able object (dict keys sorted), used to key cached stages."""
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file so that readers see either the old content or the new, never a partial one."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so that readers see either the old content or the new, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600 files; give the result the permissions a normal write would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached_on_disk(
    path: Path | None, make: Callable[[], T], dump: Callable[[T], bytes], load: Callable[[bytes], T]
) -> T:
    """`make()`, written to `path` (atomically) the first time and read back from it after;
    `path=None` (nothing on disk identifies what `make` depends on) computes it every time."""
    if path is None:
        return make()
    if path.is_file():
        return load(path.read_bytes())
    value = make()
    atomic_write_bytes(path, dump(value))
    return value


# ----- outputs: obliviate replaces only what it wrote itself -------------------------------------
# Every directory obliviate writes carries this marker (JSON: {"kind": ...}); a directory without
# it is the user's and is never replaced. A marker inside a `.tmp` directory is flock-ed while
# the directory is being written, so a sweeper can tell a live writer from a killed one.
MARKER = ".obliviate"
RESUMABLE = frozenset({"run"})  # kinds whose outputs are written into again, never replaced
ORPHAN_AGE_S = 3600.0  # a `.tmp` without a marker (older versions) is swept after this long

# What each kind of output held before outputs carried the marker; such a directory counts as
# obliviate's own. (name -> (files one of which must be present, every entry allowed))
_LEGACY: dict[str, tuple[frozenset[str], frozenset[str] | None]] = {
    "run": (frozenset({"spec.yaml", "stages"}),
            frozenset({"spec.yaml", "stages", "experiment.json", "report.html", ".lock"})),
    "world": (frozenset({"world.json"}), frozenset(
        {"world.json", "facts.jsonl", "passages.jsonl", "multihop.jsonl", "general.jsonl"})),
    "model": (frozenset({"unlearn_log.json", "finetune_log.json"}), None),
    "stage": (frozenset({"stage.json"}), None),
    "export": (frozenset({"obliviate.json"}), None),
}


class OutputExistsError(ValueError):
    """An output path that obliviate may not write: the message says how to proceed."""


def output_kind(path: Path) -> str | None:
    """The kind of obliviate output directory `path` is (its marker, or the layout an older
    version wrote), or None when it is not one of obliviate's outputs."""
    try:
        kind = json.loads((path / MARKER).read_text(encoding="utf-8")).get("kind")
        return kind if isinstance(kind, str) else None
    except (OSError, ValueError, AttributeError):
        pass
    try:
        names = {p.name for p in path.iterdir()}
    except OSError:
        return None
    for kind, (signature, allowed) in _LEGACY.items():
        if names & signature and (allowed is None or names <= allowed):
            return kind
    return None


def check_out_dir(
    out: str | Path, kind: str, *, overwrite: bool = False, inputs: Sequence[str | Path] = ()
) -> Path:
    """Refuse, before any work, an output directory obliviate may not write; return it resolved.

    Writable: a new path, an empty directory, or an earlier obliviate output of the same `kind`
    (with `overwrite`, or always for resumable kinds). Never the current directory or one
    holding it, and never a directory that is or holds one of `inputs`.
    """
    path = Path(out).expanduser().resolve()
    how = "choose a new path"
    cwd = Path.cwd().resolve()
    if kind not in RESUMABLE and (path == cwd or path in cwd.parents):  # replaced, not written in
        raise OutputExistsError(f"{out} is the current directory or holds it: {how}")
    for i in inputs:
        ip = Path(i).expanduser().resolve()
        if path == ip or path in ip.parents:
            raise OutputExistsError(f"{out} would replace the input {i}: {how}")
    if not path.exists() and not path.is_symlink():
        return path
    if not path.is_dir():
        raise OutputExistsError(f"{out} exists and is not a directory: {how}")
    entries = sorted(p.name for p in path.iterdir())
    if not entries:
        return path
    have = output_kind(path)
    if have == kind:
        if overwrite or kind in RESUMABLE:
            return path
        raise OutputExistsError(
            f"{out} holds an earlier obliviate {kind} output: choose a new path, or pass "
            "--overwrite to replace it"
        )
    what = f"an obliviate {have}, not an obliviate {kind}" if have else f"not an obliviate {kind}"
    raise OutputExistsError(
        f"{out} exists and is {what} (it holds {', '.join(entries[:3])}"
        f"{', ...' if len(entries) > 3 else ''}): {how}; --overwrite only ever replaces "
        f"obliviate's own {kind} outputs"
    )


def check_out_file(
    out: str | Path, *, keys: Sequence[str], overwrite: bool = False
) -> Path:
    """Refuse, before any work, an output file obliviate may not write: an existing file is
    replaced only with `overwrite` and only when it is obliviate's (a JSON object with `keys`).
    Creates the parent directory, so an unwritable place fails now, not after the work."""
    path = Path(out).expanduser()
    if path.is_dir() or (path.exists() and not path.is_file()):
        raise OutputExistsError(f"{out} exists and is not a file: choose a new path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputExistsError(
            f"cannot create the output directory {path.parent} ({e.strerror}): choose a new path"
        ) from None
    if not os.access(path.parent, os.W_OK):
        raise OutputExistsError(f"{path.parent} is not writable: choose a new path")
    if path.exists():
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
            ours = isinstance(obj, dict) and all(k in obj for k in keys)
        except (OSError, ValueError):
            ours = False
        if not ours:
            raise OutputExistsError(
                f"{out} exists and was not written by obliviate: choose a new path"
            )
        if not overwrite:
            raise OutputExistsError(
                f"{out} exists (an earlier obliviate output): choose a new path, or pass "
                "--overwrite to replace it"
            )
    return path


def claim_dir(out: str | Path, kind: str) -> Path:
    """Make `out` (checked with `check_out_dir`) an obliviate output of `kind` written in place."""
    path = check_out_dir(out, kind)
    path.mkdir(parents=True, exist_ok=True)
    if not (path / MARKER).is_file():
        atomic_write_text(path / MARKER, json.dumps({"kind": kind}) + "\n")
    return path


def sweep_orphans(parent: Path) -> list[Path]:
    """Remove the `.tmp` directories that killed writers left in `parent`: those whose marker is
    not locked (its writer is dead), and markerless ones of older versions once stale."""
    removed: list[Path] = []
    try:
        candidates = [p for p in parent.iterdir() if p.name.startswith(".")
                      and p.name.endswith(".tmp") and p.is_dir() and not p.is_symlink()]
    except OSError:
        return removed
    for p in candidates:
        try:
            if (p / MARKER).is_file():
                with open(p / MARKER, "rb") as fh:
                    try:
                        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # a live writer
            elif not (_LEGACY_TMP.fullmatch(p.name) and _only_output_files(p)
                      and time.time() - p.stat().st_mtime > ORPHAN_AGE_S):
                continue
        except OSError:
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


_LEGACY_TMP = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")  # tempfile.mkdtemp's names


def _only_output_files(d: Path) -> bool:
    return all(p.is_file() and p.suffix in (*_MODEL_FILE_SUFFIXES, ".jsonl") for p in d.iterdir())


@contextmanager
def atomic_dir(final: Path, kind: str, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces `final` in one step.

    `final` must be writable by `check_out_dir(final, kind, overwrite=...)`, checked before
    and again just before the swap. A run killed half way leaves only a `.tmp` directory
    behind, never a half-written `final`, and the next write into the same parent sweeps it.
    """
    final = check_out_dir(final, kind, overwrite=overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_orphans(final.parent)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    lock = open(tmp / MARKER, "a+", encoding="utf-8")  # noqa: SIM115 (held until the swap)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.write(json.dumps({"kind": kind}) + "\n")
        lock.flush()
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700 directories
        check_out_dir(final, kind, overwrite=overwrite)
        if final.is_dir() and any(final.iterdir()):
            shutil.rmtree(final)
        elif final.is_dir():
            final.rmdir()
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        lock.close()


# Files that describe a model (weights, config, tokenizer, chat template); run logs and other
# by-products in the same directory are not part of its identity.
_MODEL_FILE_SUFFIXES = (".safetensors", ".json", ".jinja", ".model", ".txt", ".gguf")


def file_digests(paths: Sequence[Path]) -> list[str]:
    """sha256 of each file's bytes, memoised in `$OBLIVIATE_HOME/digests.json` by (path, size,
    mtime_ns): a model's weights are hashed once per version of the file (~0.4 s per 0.5 GB
    here), and every later cache-key lookup is a stat."""
    memo_path = home() / "digests.json"
    try:
        memo: dict[str, str] = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    out, changed = [], False
    for path in (Path(p).resolve() for p in paths):
        st = path.stat()
        key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
        if key not in memo:
            h = hashlib.sha256()
            with open(path, "rb") as fh:
                while block := fh.read(1 << 24):
                    h.update(block)
            # Earlier versions of this file are dropped, so the memo cannot grow without bound.
            memo = {k: v for k, v in memo.items() if not k.startswith(f"{path}|")}
            memo[key], changed = h.hexdigest(), True
        out.append(memo[key])
    if changed:
        # So are files that no longer exist (deleted run directories).
        memo = {k: v for k, v in memo.items() if Path(k.split("|", 1)[0]).exists()}
        atomic_write_text(memo_path, json.dumps(memo, indent=0, sort_keys=True))
    return out


def content_fingerprint(path: str | Path) -> str:
    """Identity of a model (a directory or a single file) by content, not by location or time: a
    reinstalled copy of the same weights gets the same fingerprint, a changed weight a new one."""
    p = Path(path)
    files = [p] if p.is_file() else sorted(
        f for f in p.iterdir()
        if f.is_file() and f.suffix in _MODEL_FILE_SUFFIXES and not f.name.startswith(".")
        and not f.name.endswith("_log.json")
    )
    return content_hash(list(zip([f.name for f in files], file_digests(files), strict=True)))
