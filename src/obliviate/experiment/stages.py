"""The stage engine: content-hashed, atomically written, resumable units of work.

A `Stage` is one unit (build the world, fine-tune target and oracle, one unlearning run, one
evaluation, one audit, the report). Its key is a content hash of its kind, its kind's version,
its config and the keys of the stages it consumes, so changing one method's hyperparameter
changes that method's key and, through the dependency keys, exactly its downstream stages.

Each stage's output is a directory `OUT/stages/<kind>-<key>/` written inside `atomic_dir`: it
appears complete, with its `stage.json` manifest, or not at all. Re-running loads every stage
whose directory exists instead of recomputing it, so a run killed at any point (even SIGKILL)
resumes at the first unfinished stage. Leftover `.tmp` directories of a killed stage are
removed on the next run (under the output directory's lock, so never from a live run).

Stage kinds register with `@stage_kind(name, requires=...)`. `requires` names the library
functions a kind calls ("module:attr"); an experiment that needs a kind whose functions are not
importable is refused before any work starts, with a message naming what is missing.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from obliviate.paths import atomic_dir, atomic_write_text, content_hash

STAGE_FORMAT = 1  # bump when the stage directory layout changes: every stage recomputes
MANIFEST = "stage.json"


class StageUnavailableError(NotImplementedError, ValueError):
    """An experiment asks for a stage kind whose library functions are not available. Also a
    ValueError: the user can fix it (drop that part of the experiment), so the CLI prints it as
    a one-line error."""


class StageFailedError(RuntimeError):
    """A stage raised; finished stages are kept and a re-run resumes at this one."""


class StageInputError(ValueError):
    """A stage refused its input (a ValueError from the library), named with the stage."""


_RESUME_HINT = " (finished stages are kept: fix the cause and run again to resume here)"


class Reporter(Protocol):
    """Where the engine reports progress (rich bars on a terminal; nothing in tests)."""

    def stage_begin(self, stage: Stage, index: int, total: int, cached: bool) -> None: ...
    def stage_end(self, stage: Stage, wall_s: float, cached: bool) -> None: ...
    def message(self, text: str) -> None: ...
    def advance(self, done: float, total: float | None, what: str = "") -> None: ...


class NullReporter:
    def stage_begin(self, stage: Stage, index: int, total: int, cached: bool) -> None:
        pass

    def stage_end(self, stage: Stage, wall_s: float, cached: bool) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def advance(self, done: float, total: float | None, what: str = "") -> None:
        pass


@dataclass
class StageOutput:
    """A finished stage: its directory and the JSON `data` its function returned. File paths in
    `data` are relative to `dir` (the function wrote them into a temp dir that was renamed)."""

    name: str
    kind: str
    key: str
    dir: Path
    data: dict[str, Any]
    wall_s: float
    computed: bool  # True if computed in this process, False if loaded from a previous run

    def path(self, field_name: str) -> Path:
        value = self.data.get(field_name)
        if not isinstance(value, str):
            raise KeyError(f"stage {self.name} has no file output '{field_name}'")
        p = Path(value)
        return p if p.is_absolute() else self.dir / p


@dataclass
class StageContext:
    """What a stage function gets besides its config and inputs."""

    out_dir: Path
    reporter: Reporter
    inputs: dict[str, StageOutput]

    def input(self, role: str) -> StageOutput:
        return self.inputs[role]


StageFn = Callable[["Stage", StageContext, Path], dict[str, Any]]


@dataclass
class StageKind:
    name: str
    fn: StageFn
    version: int
    requires: tuple[str, ...]
    valid: Callable[[StageOutput], bool]

    def missing(self) -> list[str]:
        """The required "module:attr" functions that cannot be imported now."""
        out = []
        for req in self.requires:
            module, _, attr = req.partition(":")
            try:
                mod = importlib.import_module(module)
            except ImportError:
                out.append(req)
                continue
            if attr and not hasattr(mod, attr):
                out.append(req)
        return out


STAGE_KINDS: dict[str, StageKind] = {}


def stage_kind(
    name: str,
    *,
    version: int = 1,
    requires: Sequence[str] = (),
    valid: Callable[[StageOutput], bool] | None = None,
) -> Callable[[StageFn], StageFn]:
    """Register a stage kind. Bump `version` when the kind's output for the same inputs
    changes, so stale cached outputs are recomputed rather than reused."""

    def deco(fn: StageFn) -> StageFn:
        STAGE_KINDS[name] = StageKind(
            name, fn, version, tuple(requires), valid or (lambda _o: True)
        )
        return fn

    return deco


@dataclass
class Stage:
    """One planned unit of work. `name` is unique within a run and readable ("unlearn/npo");
    `deps` maps the role an input plays (e.g. "world", "models") to the stage producing it."""

    kind: str
    name: str
    config: dict[str, Any]
    deps: dict[str, Stage] = field(default_factory=dict)

    @cached_property
    def key(self) -> str:
        kind = STAGE_KINDS.get(self.kind)
        version = kind.version if kind else 0
        deps = {role: dep.key for role, dep in sorted(self.deps.items())}
        return content_hash([STAGE_FORMAT, self.kind, version, self.config, deps])


def check_available(stages: Sequence[Stage]) -> None:
    """Refuse, before any work, a plan that needs stage kinds that are unknown or unavailable."""
    problems: dict[str, list[str]] = {}
    for s in stages:
        kind = STAGE_KINDS.get(s.kind)
        if kind is None:
            raise StageUnavailableError(
                f"stage '{s.name}' has unknown kind '{s.kind}'; known: {', '.join(STAGE_KINDS)}"
            )
        missing = kind.missing()
        if missing:
            problems.setdefault(s.kind, missing)
    if problems:
        lines = [f"  {k}: needs {', '.join(v)}" for k, v in problems.items()]
        raise StageUnavailableError(
            "this experiment needs stages whose library functions are not available in this "
            "install:\n" + "\n".join(lines) + "\nRemove those parts from the experiment (or "
            "update obliviate); nothing was run."
        )


class Engine:
    """Runs planned stages in order, loading each one whose output already exists."""

    def __init__(
        self,
        out_dir: Path,
        *,
        reporter: Reporter | None = None,
        store: Any = None,
        run_id: str = "",
        on_done: Callable[[Stage, StageOutput], None] | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.on_done = on_done
        self.stages_dir = self.out_dir / "stages"
        self.reporter: Reporter = reporter or NullReporter()
        self.store = store
        self.run_id = run_id
        self.outputs: dict[str, StageOutput] = {}

    def stage_dir(self, stage: Stage) -> Path:
        return self.stages_dir / f"{stage.kind}-{stage.key}"

    def load(self, stage: Stage) -> StageOutput | None:
        """The stage's finished output, or None if it must be (re)computed."""
        d = self.stage_dir(stage)
        try:
            manifest = json.loads((d / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        out = StageOutput(
            stage.name,
            stage.kind,
            stage.key,
            d,
            manifest.get("data", {}),
            float(manifest.get("wall_s", 0.0)),
            computed=False,
        )
        return out if STAGE_KINDS[stage.kind].valid(out) else None

    def run_all(self, stages: Sequence[Stage]) -> dict[str, StageOutput]:
        check_available(stages)
        for i, stage in enumerate(stages):
            self.run(stage, i, len(stages))
        return self.outputs

    def run(self, stage: Stage, index: int = 0, total: int = 1) -> StageOutput:
        missing = [d.name for d in stage.deps.values() if d.name not in self.outputs]
        if missing:
            raise RuntimeError(f"stage {stage.name} planned before its inputs {missing}")
        cached = self.load(stage)
        self.reporter.stage_begin(stage, index, total, cached is not None)
        if self.store is not None:
            self.store.stage_started(self.run_id, stage.name, stage.kind, stage.key)
        if cached is not None:
            out = cached
        else:
            _fire("start", stage)
            try:
                out = self._compute(stage)
            except BaseException as e:
                self._record_failure(stage, e)
                wrapped = _explain(stage, e)
                if wrapped is e:
                    raise
                raise wrapped from e
            _fire("computed", stage)
        if self.store is not None:
            self.store.stage_finished(
                self.run_id,
                stage.name,
                status="done" if out.computed else "cached",
                wall_s=out.wall_s,
                output=out.dir,
            )
        self.reporter.stage_end(stage, out.wall_s, not out.computed)
        self.outputs[stage.name] = out
        if self.on_done is not None:
            self.on_done(stage, out)
        return out

    def _record_failure(self, stage: Stage, e: BaseException) -> None:
        if self.store is not None:
            status = "failed" if isinstance(e, Exception) else "interrupted"
            self.store.stage_finished(
                self.run_id,
                stage.name,
                status=status,
                wall_s=None,
                output=None,
                error=f"{type(e).__name__}: {e}",
            )

    def _compute(self, stage: Stage) -> StageOutput:
        kind = STAGE_KINDS[stage.kind]
        ctx = StageContext(
            self.out_dir, self.reporter, {r: self.outputs[d.name] for r, d in stage.deps.items()}
        )
        final = self.stage_dir(stage)
        t0 = time.perf_counter()
        with atomic_dir(final, "stage", overwrite=True) as tmp:  # OUT/stages is the run's own
            data = kind.fn(stage, ctx, tmp)
            wall = time.perf_counter() - t0
            manifest = {
                "format": STAGE_FORMAT,
                "name": stage.name,
                "kind": stage.kind,
                "key": stage.key,
                "version": kind.version,
                "config": stage.config,
                "deps": {r: d.key for r, d in stage.deps.items()},
                "data": data,
                "wall_s": wall,
            }
            # The manifest is written last inside the temp dir: its presence marks completion.
            atomic_write_text(
                tmp / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True, default=str)
            )
        return StageOutput(stage.name, stage.kind, stage.key, final, data, wall, computed=True)


def _explain(stage: Stage, e: BaseException) -> BaseException:
    """The exception to raise for a failed stage: the stage's name and how to resume added."""
    if isinstance(e, StageInputError | StageUnavailableError) or not isinstance(e, Exception):
        return e  # already explained, or KeyboardInterrupt / SystemExit: pass through
    if isinstance(e, ValueError):
        # Bad input the user can fix: stays a ValueError (a one-line CLI error).
        return StageInputError(f"stage {stage.name}: {e}{_RESUME_HINT}")
    return StageFailedError(f"stage {stage.name} failed: {type(e).__name__}: {e}{_RESUME_HINT}")


# ----- fault-injection hooks (tests kill the process at exact points with these) ----------------
HOOKS: list[Callable[[str, Stage], None]] = []


def _fire(event: str, stage: Stage) -> None:
    for hook in HOOKS:
        hook(event, stage)


# ----- the output directory's lock and crash leftovers -------------------------------------------
class RunLockedError(ValueError):
    """Another process is writing to the same output directory (choose another, or wait)."""


@contextmanager
def locked_out_dir(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on OUT for the run, then sweep crash leftovers under it.

    The kernel drops a flock when its process dies, even by SIGKILL, so a killed run never
    leaves a stale lock behind.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    fh = open(out_dir / ".lock", "a+", encoding="utf-8")  # noqa: SIM115 (held for the run)
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            raise RunLockedError(
                f"another obliviate run (pid {holder}) is writing to {out_dir}; wait for it or "
                "choose another output directory"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        sweep_leftovers(out_dir / "stages")
        yield
    finally:
        fh.close()


def sweep_leftovers(stages_dir: Path) -> list[Path]:
    """Remove the temp directories of stages a killed run was computing."""
    removed = []
    if stages_dir.is_dir():
        for p in stages_dir.iterdir():
            if p.name.startswith(".") and p.name.endswith(".tmp"):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                removed.append(p)
    return removed
