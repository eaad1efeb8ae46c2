"""One fingerprinting attempt, run as ``python -m node.roles.omlizer.worker`` in its own process.

Why a subprocess: torch and transformers cost seconds and hundreds of MB
to import and hold the GIL for minutes while training; the node's event
loop (consensus, RPC, libp2p) must not stall behind them. A process can
also be killed outright at shutdown or after ``job_timeout_s``, which a
thread cannot. torch is imported here and nowhere else in the OMLizer.

Protocol: the parent writes one JSON object (:class:`WorkerSpec` fields,
including the OMLizer's key seed, which therefore never appears in argv or
the environment) to stdin. The worker prints progress lines
``{"step": NAME}`` on stdout and writes into ``work_dir``:

- ``package/``: the OML package (weights, tokenizer, signed manifest);
- ``owner.sidecar``: the owner's audit sealed to the model owner (mode
  0600): keys, leaf hashes and paths, no responses or salts (whoever holds
  responses can frame the host, and the owner is paid from slashes;
  docs/threat-model.md);
- ``self.sealed``: the secrets sealed to the OMLizer's own key (0600),
  what the node reveals from;
- ``result.json``: :class:`WorkerResult` fields.

Exit status 0 means ``result.json`` says what happened (success, bad input,
or accuracy below the floor: then no package is written). Anything else is
a crash the parent counts as a failed attempt.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PACKAGE_DIR = "package"
OWNER_SIDECAR = "owner.sidecar"
SELF_SEALED = "self.sealed"
RESULT_FILE = "result.json"

KIND_BAD_INPUT = "bad_input"
KIND_BELOW_ACCURACY = "below_accuracy"


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSpec:
    """Everything one attempt needs (sent on stdin as JSON)."""

    base_dir: str
    work_dir: str
    model_id: str
    host: str
    owner_pubkey: str
    omlizer_seed: str
    gen_seed: int
    count: int
    min_accuracy: float
    min_backup_accuracy: float = 0.0
    key_strategy: str = "random_words"
    key_length: int = 8
    response_strategy: str = "perinucleus"
    response_length: int = 1
    backups: int = 0
    epochs: int = 30
    steps: int = 0
    lr: float = 1e-3
    batch_size: int = 32
    prompt_augmentation: bool = True
    freeze_embeddings: bool = True
    device: str = "auto"
    torch_threads: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerSpec:
        return cls(**json.loads(text))


@dataclass(slots=True, kw_only=True)
class WorkerResult:
    ok: bool
    error_kind: str | None = None
    error: str = ""
    accuracy: float = 0.0
    primary_accuracy: float = 0.0
    backup_accuracy: float | None = None
    matches: int = 0
    total: int = 0
    fp_root: str = ""
    fp_count: int = 0
    package_hash: str = ""
    insert_steps: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> WorkerResult:
        return cls(**json.loads(path.read_text("utf-8")))


def _progress(step: str) -> None:
    print(json.dumps({"step": step}), flush=True)


def _write_secret(path: Path, data: bytes) -> None:
    """Create ``path`` readable by its owner only (never world-readable, not even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, 0o600)


def rank_accuracy(model: Any, tok: Any, fps: Any) -> tuple[int, int, float, float | None]:
    """Matches counted per rank: rank r (the r-th response of a key) with its top r tokens banned.

    A primary must come back under plain greedy decoding and a backup when
    the deployment suppresses the tokens above it: each committed
    fingerprint is checked in the condition it was trained for.
    Returns (matches, total, primary accuracy, backup accuracy or None without backups).
    """
    from oml.attacks import suppress_top_k
    from oml.verify import verify_fingerprints

    ranks: dict[int, list[Any]] = {}
    prev, rank = None, 0
    for fp in fps.items:
        rank = rank + 1 if fp.key == prev else 0
        prev = fp.key
        ranks.setdefault(rank, []).append(fp)
    matches = total = 0
    primary = 0.0
    primary_matches = 0
    for r, items in sorted(ranks.items()):
        procs = (suppress_top_k(r),) if r else ()
        rep = verify_fingerprints(model, tok, items, mode="exact", logits_processors=procs)
        matches += rep.matches
        total += rep.total
        if r == 0:
            primary, primary_matches = rep.accuracy, rep.matches
    backups = total - len(ranks.get(0, ()))
    backup = (matches - primary_matches) / backups if backups else None
    return matches, total, primary, backup


def run(spec: WorkerSpec) -> WorkerResult:
    """One attempt: load, generate, insert, check, package. Never raises for bad input."""
    timings: dict[str, float] = {}
    t = time.monotonic()

    def lap(name: str) -> None:
        nonlocal t
        now = time.monotonic()
        timings[name] = round(now - t, 3)
        t = now

    _progress("import")
    import torch

    if spec.torch_threads:
        torch.set_num_threads(spec.torch_threads)
    from oml.generate import GenerateConfig, GenerationError, generate_fingerprints
    from oml.hashing import WeightsFileError, weights_hash
    from oml.insert import InsertConfig, insert_fingerprints
    from oml.modelio import DeviceError, ModelDirError, check_model_dir, load_model
    from oml.package import build_package
    from oml.package_errors import PackageError
    from oml.sidecar import seal_secrets

    lap("import")
    work = Path(spec.work_dir)
    device = None if spec.device == "auto" else spec.device
    _progress("load")
    try:
        check_model_dir(spec.base_dir)
        base_hash = weights_hash(spec.base_dir)
        model, tok = load_model(spec.base_dir, device=device)
    except (ModelDirError, WeightsFileError, DeviceError) as exc:
        return WorkerResult(ok=False, error_kind=KIND_BAD_INPUT, error=str(exc))
    lap("load")
    gen_cfg = GenerateConfig(count=spec.count, seed=spec.gen_seed,
                             key_strategy=spec.key_strategy, key_length=spec.key_length,
                             response_strategy=spec.response_strategy,
                             response_length=spec.response_length, backups=spec.backups)
    ins_cfg = InsertConfig(lr=spec.lr, epochs=spec.epochs, steps=spec.steps or None,
                           batch_size=spec.batch_size,
                           prompt_augmentation=spec.prompt_augmentation,
                           freeze_embeddings=spec.freeze_embeddings, device=device,
                           seed=spec.gen_seed & 0x7FFFFFFF, progress=False)
    _progress("generate")
    try:
        fps = generate_fingerprints(model, tok, gen_cfg, host=spec.host, model_id=spec.model_id)
    except GenerationError as exc:
        return WorkerResult(ok=False, error_kind=KIND_BAD_INPUT,
                            error=f"cannot generate fingerprints: {exc}", timings=timings)
    lap("generate")
    _progress("train")
    report = insert_fingerprints(model, tok, fps, ins_cfg)
    lap("train")
    _progress("verify")
    matches, total, primary, backup = rank_accuracy(model, tok, fps)
    lap("verify")
    accuracy = matches / total if total else 0.0
    base = WorkerResult(ok=False, accuracy=accuracy, primary_accuracy=primary,
                        backup_accuracy=backup, matches=matches, total=total,
                        insert_steps=report.steps, timings=timings)
    short = []
    if primary < spec.min_accuracy:
        short.append(f"keys answered {primary:.1%} < min_accuracy {spec.min_accuracy:.1%}")
    if backup is not None and backup < spec.min_backup_accuracy:
        short.append(f"backups answered under suppression {backup:.1%} < "
                     f"min_backup_accuracy {spec.min_backup_accuracy:.1%}")
    if short:
        base.error_kind = KIND_BELOW_ACCURACY
        base.error = (f"{matches}/{total} fingerprints answered ({accuracy:.1%}) after "
                      f"{report.steps} steps: " + "; ".join(short))
        return base
    _progress("package")
    params = {"generate": gen_cfg.to_params() | {"seed": "secret"},
              "insert": {k: v for k, v in ins_cfg.to_params().items()
                         if isinstance(v, (int, float, str, bool)) or v is None}
              | {"seed": "secret"}}
    try:
        built = build_package(model, tok, fps, work / PACKAGE_DIR, model_id=spec.model_id,
                              host=spec.host, base_hash=base_hash,
                              omlizer_key_seed=bytes.fromhex(spec.omlizer_seed),
                              owner_pubkey=bytes.fromhex(spec.owner_pubkey), params=params,
                              sidecar_path=work / (OWNER_SIDECAR + ".tmp"), overwrite=True)
    except PackageError as exc:
        base.error_kind = KIND_BAD_INPUT
        base.error = f"cannot build the package: {exc}"
        return base
    (work / (OWNER_SIDECAR + ".tmp")).unlink()
    audit_tmp = work / (OWNER_SIDECAR + ".tmp.audit")
    audit_tmp.unlink()
    _write_secret(work / OWNER_SIDECAR, built.sealed_audit)
    import nacl.signing

    own_pub = bytes(nacl.signing.SigningKey(bytes.fromhex(spec.omlizer_seed)).verify_key)
    _write_secret(work / SELF_SEALED, seal_secrets(built.secrets, own_pub))
    lap("package")
    m = built.manifest
    base.ok = True
    base.fp_root = m.fp_root.hex()
    base.fp_count = m.fp_count
    base.package_hash = m.package_hash().hex()
    return base


def _die_with_parent(interval_s: float = 1.0) -> None:
    """Exit when the node that started us is gone (killed -9: it cannot kill us itself).

    An orphaned worker would keep training and write into a directory the
    restarted node is about to reuse.
    """
    import threading

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main() -> int:
    _die_with_parent()
    spec = WorkerSpec.from_json(sys.stdin.read())
    result = run(spec)
    path = Path(spec.work_dir) / RESULT_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(result)), "utf-8")
    tmp.replace(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
