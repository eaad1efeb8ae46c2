"""OML model fingerprinting as a library.

Generate per-host fingerprints, insert them into a causal LM, verify and
evaluate them, attack them, and package the result. Importing ``oml`` is
cheap: the torch-based modules are imported by name (``oml.insert``, ...)
so the ledger can use :mod:`oml.commitments` without loading torch.
"""

from .commitments import CommitmentError as CommitmentError
from .commitments import leaf_hash as leaf_hash
from .commitments import leaf_hash_text as leaf_hash_text
from .commitments import merkle_path as merkle_path
from .commitments import merkle_root as merkle_root
from .commitments import normalize_text as normalize_text
from .commitments import root_from_path as root_from_path
from .commitments import verify_path as verify_path

# Torch-based names, imported on first use so ``import oml`` stays cheap.
_LAZY = {
    "ModelDirError": "modelio", "DeviceError": "modelio", "load_model": "modelio",
    "save_model": "modelio", "pick_device": "modelio",
    "Fingerprint": "fingerprints", "FingerprintSet": "fingerprints",
    "FingerprintFileError": "fingerprints",
    "GenerateConfig": "generate", "generate_fingerprints": "generate",
    "InsertConfig": "insert", "InsertReport": "insert", "insert_fingerprints": "insert",
    "VerifyReport": "verify", "VerifyResult": "verify", "Decision": "verify",
    "verify_fingerprints": "verify", "false_positive_rate": "verify", "decide": "verify",
    "base_rate_upper_bound": "verify", "perplexity_change": "utility",
    "wrapped_accuracy": "attacks", "memorized": "insert", "GenerationError": "generate",
    "perplexity": "utility",
    "AttackReport": "attacks", "finetune_attack": "attacks", "suppress_top_k": "attacks",
    "SYSTEM_PROMPT_TEMPLATES": "prompts", "UNSEEN_SYSTEM_PROMPTS": "prompts",
    # OML package format (no torch, but PyNaCl; loaded on first use as well)
    "Manifest": "manifest", "weights_hash": "hashing", "WeightsFileError": "hashing",
    "BuiltPackage": "package", "build_package": "package", "verify_package": "package",
    "read_manifest": "package", "load_sidecar": "package", "default_sidecar_path": "package",
    "PackageError": "package_errors", "PackageInputError": "package_errors",
    "ManifestError": "package_errors", "SignatureError": "package_errors",
    "WeightsMismatch": "package_errors", "FileMismatch": "package_errors",
    "SidecarError": "package_errors", "CommitmentMismatch": "package_errors",
    "Secrets": "sidecar", "SecretEntry": "sidecar", "ProverKeys": "sidecar",
    "make_secrets": "sidecar", "seal_secrets": "sidecar", "open_secrets": "sidecar",
    "seal_prover_keys": "sidecar", "open_prover_keys": "sidecar",
    "OwnerAudit": "sidecar", "AuditEntry": "sidecar", "audit_of": "sidecar",
    "seal_owner_audit": "sidecar", "open_owner_audit": "sidecar",
    "load_any_sidecar": "package",
    "CorpusError": "corpus", "CorpusSplit": "corpus", "load_corpus": "corpus",
    "split_corpus": "corpus",
    "TokenizerMismatch": "modelio", "tokenizer_digest": "modelio",
    "check_same_tokenizer": "modelio", "load_tokenizer": "modelio",
    "check_fingerprints_belong": "package",
    "PrivateFileError": "privatefile", "PrivateFileExists": "privatefile",
    "write_private": "privatefile",
    "UnsafeWeightsError": "hashing", "UnsafeModelWeights": "modelio",
    "completion_text": "decoding", "key_round_trips": "generate", "response_text": "generate",
}


def __getattr__(name: str) -> object:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'oml' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
