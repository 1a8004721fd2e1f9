"""Where obliviate keeps things, atomic writes, and content hashes for stage caching."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
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


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it is renamed to `final` in one step.

    A run killed half way leaves only a `.tmp` directory behind, never a half-written `final`.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700 directories
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
