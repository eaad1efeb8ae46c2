"""Load and save causal LMs from local directories only.

Fingerprinting runs on nodes that must never reach a model hub, so every
load passes ``local_files_only=True`` and the path must be an existing
directory; a typo can therefore not turn into a download. Loading fails
loudly (:class:`ModelDirError`) when the directory lacks a config, weights or
tokenizer, when weights miss keys or carry unexpected ones, or when a tensor's
shape disagrees with the config (nanoGPT's habit: assert every key and shape).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .hashing import UnsafeWeightsError, WeightsFileError, load_torch_weights, torch_weight_files

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json",
                "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model", "vocab.json", "vocab.txt")


class ModelDirError(ValueError):
    """A model directory is missing or malformed (the message says what is wrong)."""


class DeviceError(ValueError):
    """A device was requested that this machine does not have."""


class UnsafeModelWeights(ModelDirError, UnsafeWeightsError):
    """The model's ``pytorch_model.bin`` is a pickle that could run code; it is never loaded."""


class TokenizerMismatch(ValueError):
    """Two models that must share a tokenizer do not (comparing them would be meaningless)."""


# texts whose encodings tell tokenizers apart beyond their vocabularies:
# case, accents, digits, punctuation, leading/inner whitespace, non-Latin
_PROBES = ("The Quick brown fox, 42 times!", "  café naïve résumé", "don't stop\nnow",
           "hello   world", "日本語 テキスト", "x")


def pick_device(requested: str | None = None) -> torch.device:
    """The torch device to run on: ``cuda`` when available if ``requested`` is None.

    Raises:
        DeviceError: ``requested`` names CUDA and none is available, or is not a device.
    """
    if requested is None or requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(requested)
    except (RuntimeError, ValueError) as e:
        raise DeviceError(f"not a device: {requested!r}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError("CUDA was requested but is not available on this machine")
    return dev


def check_model_dir(path: Path | str) -> Path:
    """Check that ``path`` looks like a saved causal LM; return it as a Path.

    Raises:
        ModelDirError: with the first problem found.
    """
    p = Path(path)
    if not p.exists():
        raise ModelDirError(f"model directory does not exist: {p}")
    if not p.is_dir():
        raise ModelDirError(f"model path is not a directory: {p}")
    cfg = p / "config.json"
    if not cfg.is_file():
        raise ModelDirError(f"{p}: no config.json (not a saved transformers model)")
    try:
        conf = json.loads(cfg.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelDirError(f"{p}: config.json is not valid JSON: {e}") from e
    if not isinstance(conf, dict) or "model_type" not in conf:
        raise ModelDirError(f"{p}: config.json has no model_type")
    if not any((p / f).is_file() for f in WEIGHT_FILES):
        raise ModelDirError(f"{p}: no weights (expected one of {', '.join(WEIGHT_FILES)})")
    if not any((p / f).is_file() for f in TOKENIZER_FILES):
        expected = ", ".join(TOKENIZER_FILES)
        raise ModelDirError(f"{p}: no tokenizer files (expected one of {expected})")
    return p


def load_tokenizer(path: Path | str) -> PreTrainedTokenizerBase:
    """The tokenizer saved in ``path``, with a pad token (EOS if none was set)."""
    from transformers import AutoTokenizer

    p = Path(path)
    try:
        tok = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
        raise ModelDirError(f"{p}: cannot load tokenizer: {e}") from e
    except Exception as e:  # tokenizers raises its own Exception type on corrupt JSON
        raise ModelDirError(f"{p}: cannot load tokenizer: {e}") from e
    if tok.pad_token_id is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    # without pad and EOS the tokenizer stays as it is: oml.decoding.pad_id_of
    # pads with another id under the attention mask
    return tok


def check_torch_weights(path: Path) -> None:
    """Refuse ``.bin`` weights that ``torch.load(weights_only=True)`` cannot load.

    Only for a directory without safetensors (transformers prefers those).
    Each file is opened memory-mapped and dropped, so the check costs little
    memory; transformers then loads it the same safe way.

    Raises:
        UnsafeModelWeights: a pickle that would run code.
        ModelDirError: a malformed ``.bin`` file or index.
    """
    if any(f.is_file() for f in path.glob("*.safetensors")):
        return
    try:
        for f in torch_weight_files(path):
            load_torch_weights(f)
    except UnsafeWeightsError as exc:
        raise UnsafeModelWeights(str(exc)) from exc
    except WeightsFileError as exc:
        raise ModelDirError(str(exc)) from exc


def load_model(path: Path | str, device: str | None = None,
               dtype: torch.dtype | None = None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer from a local directory.

    Args:
        path: a directory written by ``save_pretrained`` (or :func:`save_model`).
        device: ``"cpu"``, ``"cuda"`` or None for CUDA when present.
        dtype: parameter dtype; float32 by default (training needs fp32 master weights).

    Returns:
        ``(model, tokenizer)``, the model in eval mode on ``device``.

    Raises:
        ModelDirError: the directory is missing or malformed, weights miss or
            add keys, or a tensor's shape disagrees with the config.
        UnsafeModelWeights: ``pytorch_model.bin`` is a pickle that could run code
            (a :class:`ModelDirError` and an :class:`oml.hashing.UnsafeWeightsError`).
        DeviceError: the device is not available.
    """
    from transformers import AutoModelForCausalLM

    p = check_model_dir(path)
    dev = pick_device(device)
    check_torch_weights(p)
    tok = load_tokenizer(p)
    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            str(p), local_files_only=True, dtype=dtype or torch.float32,
            output_loading_info=True)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as e:
        raise ModelDirError(f"{p}: cannot load model: {e}") from e
    except Exception as e:  # safetensors' SafetensorError, json errors in sub-files
        raise ModelDirError(f"{p}: cannot load model: {type(e).__name__}: {e}") from e
    problems = {k: v for k, v in info.items() if v and k in
                ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")}
    if problems:
        raise ModelDirError(f"{p}: weights do not match the config: {_short(problems)}")
    emb = model.get_input_embeddings().weight.shape[0]
    if len(tok) > emb:
        raise ModelDirError(f"{p}: tokenizer has {len(tok)} tokens, model embeds only {emb}")
    model.to(dev)
    model.eval()
    return model, tok


def tokenizer_digest(tokenizer: PreTrainedTokenizerBase) -> str:
    """A hex SHA-256 of what a tokenizer does: vocabulary, special tokens, probe encodings.

    Two tokenizers with the same digest turn text into the same ids and back,
    so perplexities or fingerprints measured with one mean the same with the
    other. The pad token is left out: :func:`load_tokenizer` may fill it in.
    """
    import hashlib

    vocab = sorted(tokenizer.get_vocab().items())
    specials = {name: getattr(tokenizer, f"{name}_token_id", None)
                for name in ("bos", "eos", "unk")}
    enc = tokenizer(list(_PROBES), add_special_tokens=True)["input_ids"]
    dec = [tokenizer.decode(r, skip_special_tokens=True, clean_up_tokenization_spaces=False)
           for r in enc]
    blob = json.dumps({"vocab": vocab, "size": len(tokenizer), "specials": specials,
                       "encodings": [list(r) for r in enc], "decodings": dec},
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def check_same_tokenizer(a: PreTrainedTokenizerBase, b: PreTrainedTokenizerBase, *,
                         names: tuple[str, str] = ("model", "base")) -> None:
    """Raise :class:`TokenizerMismatch` unless ``a`` and ``b`` tokenize identically."""
    if tokenizer_digest(a) != tokenizer_digest(b):
        sizes = f"{len(a)} vs {len(b)} tokens"
        raise TokenizerMismatch(f"{names[0]} and {names[1]} use different tokenizers ({sizes}); "
                                "their figures are not comparable")


def _short(problems: dict[str, Any]) -> str:
    parts = []
    for k, v in problems.items():
        v = list(v)
        parts.append(f"{k}={v[:5]}{' ...' if len(v) > 5 else ''}")
    return "; ".join(parts)


def save_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
               path: Path | str) -> None:
    """Save model (safetensors) and tokenizer so :func:`load_model` reads them back."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(p), safe_serialization=True)
    tokenizer.save_pretrained(str(p))
