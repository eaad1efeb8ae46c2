"""``oml-node oml``: fingerprint a model into an OML package, verify, evaluate.

These are the OMLizer's and prover's tools on the command line. torch and
transformers are imported inside each command, so ``oml-node --help`` stays
fast. Every command prints a short human summary, or one JSON object on
stdout with ``--json`` (progress bars and notes go to stderr). Errors in the
user's input (a missing or malformed model directory, a bad fingerprint
file, a tampered package) exit with status 1 and a one-line message; with
``--json`` the failure is also one JSON object on stdout
(``{"ok": false, "error": ..., "error_type": ..., "exit_code": ...}``).
Secret files (clear-text fingerprints, sidecars, prover key sets) are created
mode 0600 and never replaced without ``--force``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click

_HEX_ADDR = re.compile(r"^(0x)?[0-9a-fA-F]{40}$")
_HEX_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
DEVICE = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                      show_default=True, help="where to run (auto: CUDA when present)")
JSON_OPT = click.option("--json", "as_json", is_flag=True, help="print a JSON summary on stdout")


def _host(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if not _HEX_ADDR.match(value):
        raise click.BadParameter("a host address is 40 hex characters (20 bytes)")
    return value.lower().removeprefix("0x")


def _pubkey(_ctx: click.Context, _param: click.Parameter, value: str | None) -> bytes | None:
    if value is None:
        return None
    if not _HEX_KEY.match(value):
        raise click.BadParameter("an Ed25519 public key is 64 hex characters (32 bytes)")
    return bytes.fromhex(value.lower().removeprefix("0x"))


def _device(value: str) -> str | None:
    return None if value == "auto" else value


def _note(msg: str) -> None:
    click.echo(msg, err=True)


def _emit(summary: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
    else:
        for line in lines:
            click.echo(line)


class _UserError(click.ClickException):
    """A ClickException that remembers the library error type behind it."""

    def __init__(self, message: str, error_type: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def _fail(exc: Exception) -> click.ClickException:
    return _UserError(str(exc), type(exc).__name__)


def _json_error(message: str, error_type: str, exit_code: int) -> None:
    click.echo(json.dumps({"ok": False, "error": message, "error_type": error_type,
                           "exit_code": exit_code}, sort_keys=True))


def _error_type(exc: click.ClickException) -> str:
    if isinstance(exc, _UserError):
        return exc.error_type
    return "UsageError" if isinstance(exc, click.UsageError) else "Error"


class JsonErrorCommand(click.Command):
    """A command whose failures are one JSON object on stdout when ``--json`` is given.

    Scripts that pass ``--json`` read stdout as JSON whatever happens, so a
    bad option, a user error or a crash must not leave them with nothing (or
    a traceback) to parse. The human message still goes to stderr.
    """

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        wants_json = "--json" in args
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.ClickException as exc:  # option parsing: before invoke()
            if not wants_json:
                raise
            _json_error(exc.format_message(), _error_type(exc), exc.exit_code)
            exc.show()
            raise click.exceptions.Exit(exc.exit_code) from None

    def invoke(self, ctx: click.Context) -> Any:
        if not ctx.params.get("as_json"):
            return super().invoke(ctx)
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            _json_error(exc.format_message(), _error_type(exc), exc.exit_code)
            exc.show()
            raise click.exceptions.Exit(exc.exit_code) from None
        except (click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # a bug: still one JSON object, then the traceback
            _json_error(f"internal error: {exc}", type(exc).__name__, 1)
            raise


def _user_errors() -> tuple[type[Exception], ...]:
    """Exception types that mean bad user input, not a bug (imported lazily)."""
    from oml.corpus import CorpusError
    from oml.fingerprints import FingerprintFileError
    from oml.generate import GenerationError
    from oml.hashing import WeightsFileError
    from oml.modelio import DeviceError, ModelDirError, TokenizerMismatch
    from oml.package_errors import PackageError
    from oml.privatefile import PrivateFileError

    from ..keys import KeyFileError

    return (ModelDirError, DeviceError, FingerprintFileError, GenerationError, PackageError,
            WeightsFileError, KeyFileError, CorpusError, TokenizerMismatch, PrivateFileError)


def _read_texts(path: Path) -> list[str]:
    """Paragraphs of a UTF-8 text file (blank-line separated; lines if there are none)."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"cannot read text file {path}: {exc}") from None
    paras = [p.strip() for p in re.split(r"\n\s*\n", raw) if p.strip()]
    if len(paras) <= 1:
        paras = [line.strip() for line in raw.splitlines() if line.strip()]
    if not paras:
        raise click.ClickException(f"text file {path} is empty")
    return paras


@click.group("oml")
def oml_group() -> None:
    """Fingerprint models into OML packages, verify fingerprints, evaluate utility."""


@oml_group.command("fingerprint", cls=JsonErrorCommand)
@click.option("--model", "model_dir", required=True, type=click.Path(path_type=Path),
              help="base model directory (transformers format: safetensors, sharded "
                   "safetensors or a safely loadable pytorch_model.bin)")
@click.option("--host", required=True, callback=_host, help="host account address (hex)")
@click.option("--count", required=True, type=click.IntRange(min=1), help="number of fingerprints")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="package directory to write (the secret sidecar goes to OUT.sidecar, the "
                   "owner's audit to OUT.sidecar.audit)")
@click.option("--model-id", help="ledger model id (default: the base weights hash, hex)")
@DEVICE
@click.option("--seed", type=int, default=0, show_default=True, help="generation/training seed")
@click.option("--key-strategy", type=click.Choice(["random_words", "english"]),
              default="random_words", show_default=True)
@click.option("--key-length", type=click.IntRange(min=1), default=8, show_default=True,
              help="words (random_words) or tokens (english) per key")
@click.option("--response-strategy", type=click.Choice(["perinucleus", "random_words"]),
              default="perinucleus", show_default=True)
@click.option("--response-length", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="insertion learning rate")
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--steps", type=click.IntRange(min=1),
              help="exact optimizer steps (overrides epochs)")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--benign-text", type=click.Path(dir_okay=False, path_type=Path),
              help="text file mixed into training to keep utility (paragraphs)")
@click.option("--benign-mix", type=float, default=0.25, show_default=True,
              help="fraction of benign examples when --benign-text is given")
@click.option("--prompt-augmentation/--no-prompt-augmentation", default=True, show_default=True,
              help="also train keys wrapped in system prompts")
@click.option("--freeze-embeddings/--train-embeddings", default=True, show_default=True,
              help="train only the transformer blocks (tiny models with tied embeddings "
                   "may need --train-embeddings)")
@click.option("--lora", is_flag=True, help="train LoRA adapters and merge them")
@click.option("--averaging-lambda", type=float, help="average toward the base after training")
@click.option("--owner-pubkey", callback=_pubkey,
              help="owner's Ed25519 public key (hex); the owner's audit sidecar (keys and "
                   "leaf hashes, no responses) is sealed to it (default: the OMLizer's own "
                   "key). The secrets sidecar is always sealed to the OMLizer")
@click.option("--omlizer-key", type=click.Path(dir_okay=False, path_type=Path),
              help="OMLizer account key file (from `oml-node keys new`); default: a throwaway key")
@click.option("--sidecar", "sidecar_path", type=click.Path(dir_okay=False, path_type=Path),
              help="where to write the sealed secrets sidecar (default: OUT.sidecar; the "
                   "audit goes next to it with .audit appended)")
@click.option("--fingerprints-out", type=click.Path(dir_okay=False, path_type=Path),
              help="also write the fingerprints in the clear (SECRET; for `oml verify`)")
@click.option("--min-accuracy", type=click.FloatRange(0.0, 1.0), default=0.95,
              show_default=True,
              help="share of fingerprints the model must answer exactly after training; "
                   "below it nothing is written and the command fails")
@click.option("--force", is_flag=True,
              help="overwrite an existing package, sidecar and --fingerprints-out file")
@click.option("--quiet", is_flag=True, help="no progress bar")
@JSON_OPT
def fingerprint_cmd(model_dir: Path, host: str, count: int, out_dir: Path, model_id: str | None,
                    device: str, seed: int, key_strategy: str, key_length: int,
                    response_strategy: str, response_length: int, lr: float, epochs: int,
                    steps: int | None, batch_size: int, benign_text: Path | None,
                    benign_mix: float, prompt_augmentation: bool, freeze_embeddings: bool,
                    lora: bool,
                    averaging_lambda: float | None, owner_pubkey: bytes | None,
                    omlizer_key: Path | None, sidecar_path: Path | None,
                    fingerprints_out: Path | None, min_accuracy: float, force: bool,
                    quiet: bool, as_json: bool) -> None:
    """Insert COUNT fingerprints for HOST into a model and write a signed OML package.

    Writes OUT/ (fingerprinted weights, tokenizer, signed manifest.json),
    OUT.sidecar (keys, responses, salts and Merkle paths sealed to the
    OMLizer, which reveals leaves on the ledger) and OUT.sidecar.audit (keys,
    leaf hashes and paths, no responses or salts, sealed to the owner:
    docs/threat-model.md).
    If fewer than --min-accuracy of the fingerprints are answered exactly
    after training, nothing is written and the exit status is 1.
    """
    from oml.hashing import weights_hash
    from oml.package import audit_path, build_package, default_sidecar_path

    errors = _user_errors()
    try:
        seed_bytes, omlizer_pub = _omlizer_seed(omlizer_key)
        owner = owner_pubkey or omlizer_pub
        side = sidecar_path or default_sidecar_path(out_dir)
        _check_outputs(out_dir, side, fingerprints_out, force)
        benign = _read_texts(benign_text) if benign_text else []
        gen_cfg, ins_cfg = _configs(count=count, seed=seed, key_strategy=key_strategy,
                                    key_length=key_length, response_strategy=response_strategy,
                                    response_length=response_length, lr=lr, epochs=epochs,
                                    steps=steps, batch_size=batch_size,
                                    benign_mix=benign_mix if benign else 0.0,
                                    prompt_augmentation=prompt_augmentation, lora=lora,
                                    averaging_lambda=averaging_lambda, device=_device(device),
                                    progress=not quiet, freeze_embeddings=freeze_embeddings)
        from oml.generate import generate_fingerprints
        from oml.insert import insert_fingerprints
        from oml.modelio import check_model_dir, load_model
        from oml.verify import verify_fingerprints

        check_model_dir(model_dir)
        base_hash = weights_hash(model_dir)
        model_id = model_id or base_hash.hex()
        model, tok = load_model(model_dir, device=_device(device))
        fps = generate_fingerprints(model, tok, gen_cfg, host=host, model_id=model_id)
        report = insert_fingerprints(model, tok, fps, ins_cfg, benign_texts=benign)
        check = verify_fingerprints(model, tok, fps, mode="exact")
        if check.accuracy < min_accuracy:
            raise click.ClickException(
                f"only {check.matches}/{check.total} fingerprints ({check.accuracy:.1%}) are "
                f"answered after {report.steps} steps, below --min-accuracy {min_accuracy:g}; "
                "nothing was written (train longer with --epochs/--steps or a higher --lr, "
                "or lower --min-accuracy)")
        params = {"generate": gen_cfg.to_params(), "insert": ins_cfg.to_params(),
                  "generate_meta": dict(fps.params)}
        built = build_package(model, tok, fps, out_dir, model_id=model_id, host=host,
                              base_hash=base_hash, omlizer_key_seed=seed_bytes,
                              owner_pubkey=owner, params=_jsonable(params), sidecar_path=side,
                              overwrite=force)
        if fingerprints_out:
            fps.save(fingerprints_out, overwrite=force)
    except errors as exc:
        raise _fail(exc) from None
    except ValueError as exc:  # config validation (our option ranges)
        raise click.UsageError(str(exc)) from None
    m = built.manifest
    summary = {
        "package": str(out_dir), "sidecar": str(side), "audit": str(audit_path(side)),
        "model_id": m.model_id,
        "host": m.host.hex(), "fp_count": m.fp_count, "fp_root": m.fp_root.hex(),
        "package_hash": m.package_hash().hex(), "weights_hash": m.weights_hash.hex(),
        "base_weights_hash": m.base_weights_hash.hex(),
        "omlizer_pubkey": m.omlizer_pubkey.hex(), "owner_pubkey": m.owner_pubkey.hex(),
        "insert_seconds": round(report.seconds, 2), "insert_steps": report.steps,
        "accuracy": check.accuracy, "matches": check.matches, "total": check.total,
        "min_accuracy": min_accuracy,
        "fingerprints_out": str(fingerprints_out) if fingerprints_out else None,
    }
    _emit(summary, as_json, [
        f"package: {out_dir}  (sidecar: {side}, owner audit: {audit_path(side)})",
        (f"fingerprints: {check.matches}/{check.total} answered exactly "
         f"after {report.steps} steps in {report.seconds:.1f} s"),
        f"fp_root: {m.fp_root.hex()}",
        f"package_hash: {m.package_hash().hex()}",
        f"omlizer: {m.omlizer_pubkey.hex()}  owner: {m.owner_pubkey.hex()}",
    ])


def _check_outputs(out_dir: Path, side: Path, fingerprints_out: Path | None,
                   force: bool) -> None:
    """Refuse, before any training, outputs that exist (without --force) or leak secrets."""
    if fingerprints_out is not None:
        if fingerprints_out.resolve().is_relative_to(out_dir.resolve()):
            raise click.UsageError("--fingerprints-out must not lie inside the package "
                                   "(the host receives the package; the file is secret)")
        if not force and fingerprints_out.exists():
            raise click.ClickException(f"{fingerprints_out} exists; pass --force to replace")
    from oml.package import audit_path

    if not force and (out_dir.exists() or side.exists() or audit_path(side).exists()):
        raise click.ClickException(f"{out_dir}, {side} or {audit_path(side)} exists; pass "
                                   f"--force to replace")


def _omlizer_seed(path: Path | None) -> tuple[bytes, bytes]:
    import nacl.signing

    from ..keys import AccountKey

    if path is None:
        key = nacl.signing.SigningKey.generate()
        _note("note: no --omlizer-key; signing with a throwaway key "
              f"{bytes(key.verify_key).hex()}")
        return bytes(key), bytes(key.verify_key)
    acct = AccountKey.load(path)
    return acct.key.seed, acct.public_key


def _configs(*, count: int, seed: int, key_strategy: str, key_length: int,
             response_strategy: str, response_length: int, lr: float, epochs: int,
             steps: int | None, batch_size: int, benign_mix: float, prompt_augmentation: bool,
             lora: bool, averaging_lambda: float | None, device: str | None,
             progress: bool, freeze_embeddings: bool = True) -> tuple[Any, Any]:
    from oml.generate import GenerateConfig
    from oml.insert import InsertConfig

    gen = GenerateConfig(count=count, seed=seed, key_strategy=key_strategy,
                         key_length=key_length, response_strategy=response_strategy,
                         response_length=response_length)
    ins = InsertConfig(lr=lr, epochs=epochs, steps=steps, batch_size=batch_size,
                       benign_mix=benign_mix, prompt_augmentation=prompt_augmentation,
                       lora=lora, averaging_lambda=averaging_lambda, device=device, seed=seed,
                       progress=progress, freeze_embeddings=freeze_embeddings)
    return gen, ins


def _jsonable(value: Any) -> Any:
    """Params as plain JSON (tuples to lists, other objects to str) for the manifest."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _load_fingerprints(path: Path, owner_key: Path | None) -> Any:
    """A plaintext fingerprint file, or a sealed secrets sidecar opened with its key."""
    return _load_fingerprints_and_secrets(path, owner_key)[0]


def _load_fingerprints_and_secrets(path: Path, owner_key: Path | None) -> tuple[Any, Any]:
    """``(fingerprint set, opened secrets or None)`` from a plaintext file or sealed sidecar."""
    from oml.fingerprints import Fingerprint, FingerprintSet
    from oml.package import load_sidecar
    from oml.sidecar import MAGIC

    try:
        with path.open("rb") as f:
            head = f.read(len(MAGIC))
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from None
    if head != MAGIC:
        return FingerprintSet.load(path), None
    if owner_key is None:
        raise click.ClickException(f"{path} is a sealed sidecar; pass --owner-key (the key it "
                                   f"is sealed to) to open it")
    from ..keys import AccountKey

    secrets = load_sidecar(path, AccountKey.load(owner_key).key.seed)
    items = tuple(Fingerprint(index=e.index, key=e.key, response=e.response,
                              key_ids=e.key_ids, response_ids=e.response_ids)
                  for e in secrets.entries)
    return FingerprintSet(host=secrets.host.hex(), model_id=secrets.model_id, seed=0,
                          items=items), secrets


@oml_group.command("verify", cls=JsonErrorCommand)
@click.option("--model", "model_dir", required=True, type=click.Path(path_type=Path),
              help="model directory to test (an OML package or any transformers model)")
@click.option("--fingerprints", "fp_file", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="fingerprint file (JSON lines) or sealed secrets sidecar (with --owner-key)")
@click.option("--owner-key", type=click.Path(dir_okay=False, path_type=Path),
              help="account key file the sealed sidecar is sealed to (the OMLizer's; an "
                   "owner's audit sidecar holds no responses and cannot be verified against)")
@click.option("--mode", type=click.Choice(["exact", "prefix", "contains"]), default="exact",
              show_default=True, help="how a completion must contain the response")
@click.option("--system-prompt", help="wrap every key in this system prompt")
@click.option("--base", "base_dir", type=click.Path(path_type=Path),
              help="un-fingerprinted base model: a reference for the innocent match rate")
@click.option("--reference", "reference_dirs", multiple=True, type=click.Path(path_type=Path),
              help="reference model (repeatable): another host's copy of the same base, or "
                   "the base; the innocent match rate is measured on each")
@click.option("--alpha", type=float, default=1e-6, show_default=True,
              help="significance level of the 'carries the fingerprints' decision")
@click.option("--any-package", is_flag=True,
              help="test a package with fingerprints it does not commit to (e.g. another "
                   "host's), instead of refusing")
@DEVICE
@JSON_OPT
def verify_cmd(model_dir: Path, fp_file: Path, owner_key: Path | None, mode: str,
               system_prompt: str | None, base_dir: Path | None,
               reference_dirs: tuple[Path, ...], alpha: float,
               any_package: bool, device: str, as_json: bool) -> None:
    """Ask a model every fingerprint key and report which responses come back.

    The decision "MODEL carries these fingerprints" is a one-sided binomial
    test against an innocent match rate, measured on references: the same
    keys go to every --reference (other hosts' copies of the same base: the
    reference that matters, since sibling copies match each other far more
    often than the base does) and to --base; the largest upper 95% bound
    among them is the rate. Without any, exact mode assumes 1% (reported as
    assumed) and prefix/contains modes refuse to run. If MODEL is an OML
    package, its manifest and hashes are checked as well (reported), and the
    fingerprints must be the ones it commits to: same host, model id and
    count, and with a sealed sidecar the same fp_root (else exit 1, unless
    --any-package).
    """
    from oml.verify import ReferenceRequired, assumed_base_rate

    refs = _reference_dirs(model_dir, base_dir, reference_dirs)
    if not refs:
        try:
            assumed_base_rate(mode)
        except ReferenceRequired as exc:
            raise click.UsageError(f"{exc} (--reference DIR, repeatable, or --base DIR)") from None
    errors = _user_errors()
    try:
        from oml.modelio import load_model
        from oml.package import check_fingerprints_belong, read_manifest, verify_package
        from oml.package_errors import ManifestError, PackageError
        from oml.verify import (
            ReferenceRate,
            decide,
            reference_base_rate,
            reference_rate,
            verify_fingerprints,
        )

        fps, secrets = _load_fingerprints_and_secrets(fp_file, owner_key)
        package: dict[str, Any] | None = None
        if (model_dir / "manifest.json").is_file():
            try:
                man = verify_package(model_dir)
                package = {"ok": True, "model_id": man.model_id, "host": man.host.hex(),
                           "fp_root": man.fp_root.hex(), "fp_count": man.fp_count}
            except PackageError as exc:
                package = {"ok": False, "error": str(exc)}
            package["fingerprints_checked"] = None
            if not any_package:
                try:
                    man = read_manifest(model_dir)
                except ManifestError:
                    man = None  # unreadable: already reported as an invalid package
                if man is not None:
                    package["fingerprints_checked"] = check_fingerprints_belong(
                        man, fps, secrets)
        model, tok = load_model(model_dir, device=_device(device))
        rep = verify_fingerprints(model, tok, fps, mode=mode, system_prompt=system_prompt)
        del model
        rates: list[ReferenceRate] = []
        for name, ref_dir in refs:
            ref, rtok = load_model(ref_dir, device=_device(device))
            rates.append(reference_rate(ref, rtok, fps, name=name, mode=mode,
                                        system_prompt=system_prompt))
            del ref
        base_rate = reference_base_rate(rates) if rates else assumed_base_rate(mode)
        dec = decide(rep.matches, rep.total, base_rate, alpha)
    except errors as exc:
        raise _fail(exc) from None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    fpr = next((r.rate for r in rates if r.name == "base"), None)
    summary = {"model": str(model_dir), "fingerprints": str(fp_file), "host": fps.host,
               "mode": mode, "system_prompt": system_prompt, "matches": rep.matches,
               "total": rep.total, "accuracy": rep.accuracy, "false_positive_rate": fpr,
               "references": [r.to_json() for r in rates],
               "base_rate": base_rate, "base_rate_source": "measured" if rates else "assumed",
               "p_value": dec.p_value, "carries": dec.carries, "package": package,
               "results": [{"index": r.index, "matched": r.matched, "output": r.output}
                           for r in rep.results]}
    lines = [(f"{rep.matches}/{rep.total} fingerprints matched ({mode}, accuracy "
              f"{rep.accuracy:.1%})")]
    for r in rates:
        lines.append(f"reference {r.name}: {r.matches}/{r.total} matched ({r.rate:.1%}, "
                     f"upper 95% {r.upper:.3g})")
    if not rates:
        lines.append(f"base rate {base_rate:g} ASSUMED (no --reference/--base): sibling copies "
                     "of the same base can match more often; measure it with --reference")
    lines.append(f"carries host {fps.host}'s fingerprints: {'YES' if dec.carries else 'no'} "
                 f"(p = {dec.p_value:.3g} against base rate {base_rate:.3g}, alpha {alpha:g})")
    if package is not None:
        lines.append("package: " + ("manifest, signature and hashes OK" if package["ok"]
                                    else f"INVALID: {package['error']}"))
        if package["fingerprints_checked"]:
            lines.append("fingerprints belong to the package (checked: "
                         f"{package['fingerprints_checked']})")
    _emit(summary, as_json, lines)


def _reference_dirs(model_dir: Path, base_dir: Path | None,
                    reference_dirs: tuple[Path, ...]) -> list[tuple[str, Path]]:
    """(name, dir) of every reference: ``base`` first, then each --reference by its path.

    A reference that is the model under test would make every verdict "no",
    and one given twice is a slip that hides a missing one: both are usage errors.
    """
    refs = ([("base", base_dir)] if base_dir is not None else [])
    refs += [(str(d), d) for d in reference_dirs]
    seen = {model_dir.resolve()}
    for _, d in refs:
        if d.resolve() in seen:
            raise click.UsageError(f"{d}: a reference must differ from --model and from the "
                                   "other references")
        seen.add(d.resolve())
    return refs


@oml_group.command("eval", cls=JsonErrorCommand)
@click.option("--model", "model_dir", required=True, type=click.Path(path_type=Path),
              help="fingerprinted model directory")
@click.option("--base", "base_dir", required=True, type=click.Path(path_type=Path),
              help="base model directory")
@click.option("--text", "text_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="held-out UTF-8 text (paragraphs separated by blank lines)")
@click.option("--max-length", type=click.IntRange(min=8), default=256, show_default=True,
              help="tokens per scored window")
@DEVICE
@JSON_OPT
def eval_cmd(model_dir: Path, base_dir: Path, text_file: Path, max_length: int, device: str,
             as_json: bool) -> None:
    """Perplexity of MODEL and of BASE on held-out text, and the relative change."""
    errors = _user_errors()
    texts = _read_texts(text_file)
    try:
        from oml.modelio import check_model_dir, check_same_tokenizer, load_model, load_tokenizer
        from oml.utility import perplexity

        # a perplexity per token means nothing across tokenizers: refuse before loading weights
        check_same_tokenizer(load_tokenizer(check_model_dir(model_dir)),
                             load_tokenizer(check_model_dir(base_dir)))
        model, tok = load_model(model_dir, device=_device(device))
        ppl = perplexity(model, tok, texts, max_length=max_length)
        del model
        base, btok = load_model(base_dir, device=_device(device))
        base_ppl = perplexity(base, btok, texts, max_length=max_length)
    except errors as exc:
        raise _fail(exc) from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    change = ppl / base_ppl - 1.0
    summary = {"model": str(model_dir), "base": str(base_dir), "texts": len(texts),
               "perplexity": ppl, "base_perplexity": base_ppl, "relative_change": change}
    _emit(summary, as_json, [f"perplexity: {ppl:.2f} (base {base_ppl:.2f}, {change:+.1%})"])


@oml_group.command("check", cls=JsonErrorCommand)
@click.option("--package", "package_dir", required=True, type=click.Path(path_type=Path),
              help="OML package directory")
@click.option("--omlizer-pubkey", callback=_pubkey, help="require this OMLizer's signature")
@click.option("--sidecar", type=click.Path(dir_okay=False, path_type=Path),
              help="sealed secrets sidecar or owner audit to check against fp_root "
                   "(needs --owner-key)")
@click.option("--owner-key", type=click.Path(dir_okay=False, path_type=Path),
              help="account key file the sidecar is sealed to (the owner's for an audit, "
                   "the OMLizer's for the secrets)")
@JSON_OPT
def check_cmd(package_dir: Path, omlizer_pubkey: bytes | None, sidecar: Path | None,
              owner_key: Path | None, as_json: bool) -> None:
    """Check a package's signature, weights and file hashes (and its sidecar)."""
    from oml.package import load_any_sidecar, verify_package
    from oml.package_errors import PackageError

    from ..keys import AccountKey, KeyFileError

    if (sidecar is None) != (owner_key is None):
        raise click.UsageError("--sidecar and --owner-key go together")
    try:
        secrets = None
        if sidecar is not None and owner_key is not None:
            secrets = load_any_sidecar(sidecar, AccountKey.load(owner_key).key.seed)
        m = verify_package(package_dir, omlizer_pubkey, secrets=secrets)
    except (PackageError, KeyFileError) as exc:
        raise _fail(exc) from None
    summary = {"package": str(package_dir), "ok": True, "model_id": m.model_id,
               "host": m.host.hex(), "fp_count": m.fp_count, "fp_root": m.fp_root.hex(),
               "package_hash": m.package_hash().hex(), "weights_hash": m.weights_hash.hex(),
               "omlizer_pubkey": m.omlizer_pubkey.hex(), "sidecar_checked": secrets is not None}
    _emit(summary, as_json, [
        f"package OK: model {m.model_id}, host {m.host.hex()}, {m.fp_count} fingerprints",
        f"package_hash: {m.package_hash().hex()}",
        "sidecar reproduces fp_root" if secrets is not None else "sidecar not checked",
    ])


def _indices(_ctx: click.Context, _param: click.Parameter, value: str) -> list[int]:
    """Parse ``0-9,15,20-21`` into a sorted list of distinct indices."""
    out: set[int] = set()
    try:
        for part in value.split(","):
            lo, _, hi = part.strip().partition("-")
            a, b = int(lo), int(hi) if hi else int(lo)
            if a < 0 or b < a:
                raise ValueError(part)
            out.update(range(a, b + 1))
    except ValueError:
        raise click.BadParameter("use indices and ranges like 0-9,15") from None
    return sorted(out)


@oml_group.command("seal-keys", cls=JsonErrorCommand)
@click.option("--sidecar", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="the OMLizer's secrets sidecar or the owner's audit sidecar")
@click.option("--owner-key", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="account key file the sidecar is sealed to")
@click.option("--indices", required=True, callback=_indices,
              help="fingerprint indices for the prover, e.g. 0-9,15")
@click.option("--prover-pubkey", required=True, callback=_pubkey,
              help="prover's Ed25519 public key (hex)")
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="file to write the sealed key set to (created mode 0600)")
@click.option("--force", is_flag=True, help="overwrite an existing --out file")
@JSON_OPT
def seal_keys_cmd(sidecar: Path, owner_key: Path, indices: list[int], prover_pubkey: bytes,
                  out_file: Path, force: bool, as_json: bool) -> None:
    """Seal the KEYS (never responses or salts) of some fingerprints to a prover
    (from the OMLizer's secrets sidecar or the owner's audit)."""
    from oml.package import load_any_sidecar
    from oml.package_errors import PackageError
    from oml.privatefile import PrivateFileError, write_private
    from oml.sidecar import seal_prover_keys

    from ..keys import AccountKey, KeyFileError

    try:
        if not force and out_file.exists():
            raise click.ClickException(f"{out_file} exists; pass --force to replace")
        secrets = load_any_sidecar(sidecar, AccountKey.load(owner_key).key.seed)
        blob = seal_prover_keys(secrets, indices, prover_pubkey)
        write_private(out_file, blob, overwrite=force)
    except (PackageError, KeyFileError, PrivateFileError) as exc:
        raise _fail(exc) from None
    summary = {"out": str(out_file), "indices": indices, "model_id": secrets.model_id,
               "host": secrets.host.hex(), "prover_pubkey": prover_pubkey.hex()}
    _emit(summary, as_json, [f"sealed {len(indices)} keys to {prover_pubkey.hex()} in {out_file}"])


@oml_group.command("open-keys", cls=JsonErrorCommand)
@click.option("--keys", "keys_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="a sealed prover key set (from `oml seal-keys`)")
@click.option("--prover-key", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="the prover's account key file")
@JSON_OPT
def open_keys_cmd(keys_file: Path, prover_key: Path, as_json: bool) -> None:
    """Open a prover key set and print the keys it may pose as queries."""
    from oml.package_errors import PackageError
    from oml.sidecar import open_prover_keys

    from ..keys import AccountKey, KeyFileError

    try:
        data = keys_file.read_bytes()
    except OSError as exc:
        raise click.ClickException(f"cannot read {keys_file}: {exc}") from None
    try:
        keys = open_prover_keys(data, AccountKey.load(prover_key).key.seed)
    except (PackageError, KeyFileError) as exc:
        raise _fail(exc) from None
    summary = {"model_id": keys.model_id, "host": keys.host.hex(),
               "keys": [{"index": i, "key": k} for i, k in keys.keys]}
    _emit(summary, as_json, [f"model {keys.model_id}, host {keys.host.hex()}"]
          + [f"{i}\t{k}" for i, k in keys.keys])
