"""OMLizer benchmark: one access request to an active host and a fetched, verified model.

Usage:
    python bench/omlize.py [--count 64] [--backups 1] [--epochs 30] [--device cpu]
                           [--threads 2] [--base DIR] [--json FILE] [--keep]

Setup (not timed): the 10.2M-parameter base model of bench/fingerprint.py
(pretrained on the fortunes corpus and cached under ``bench/.cache/``; see
``bench/_pretrain.py``; ``--base DIR`` uses another local model folder), and
a local testnet of two real node processes: node0 is the only validator and
the host, node1 a full node running storage and the OMLizer role, and the
model's owner. The owner publishes the base as a blob encrypted to the
OMLizer, registers it, and the OMLizer registers its bond.

Timed: from the host's ``oml-node tx request-access`` to the host holding a
fetched package whose signature, file and weights hashes check and whose
package hash is the one on chain. Phases come from the job's record
(``omlizer_jobs``: seconds per phase and per worker step) and from the
bench's own clock (the request transaction, the host's fetch). The
fingerprint accuracy is the one the OMLizer measured on its own keys before
it committed (primaries plainly, backups with the top token banned).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# bench/consensus.py would shadow the consensus package: the repo root goes first
sys.path[:] = [str(ROOT)] + [p for p in sys.path
                             if Path(p or ".").resolve() not in (ROOT, ROOT / "bench")]

MODEL_ID = "bench-base"
CONSENSUS = {"timeout_propose_ms": 1500, "timeout_propose_delta_ms": 500,
             "timeout_prevote_ms": 500, "timeout_prevote_delta_ms": 500,
             "timeout_precommit_ms": 500, "timeout_precommit_delta_ms": 500,
             "timeout_commit_ms": 300}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cli(*args: str, timeout: float = 600) -> str:
    proc = subprocess.run([sys.executable, "-m", "node", *args], check=False,
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit(f"oml-node {' '.join(args[:2])} failed: {proc.stdout}{proc.stderr}")
    return proc.stdout


def base_model(args: argparse.Namespace) -> Path:
    if args.base:
        return args.base
    import torch

    from bench._pretrain import PretrainConfig, get_base
    from bench.fingerprint import ensure_corpus
    from oml.corpus import split_corpus
    from oml.modelio import pick_device

    if args.threads:
        torch.set_num_threads(args.threads)
    split = split_corpus(ensure_corpus(True))
    path, _ = get_base(split.train, PretrainConfig(), pick_device(None if args.device == "auto"
                                                                  else args.device), log=log)
    return path


def omlizer_config(args: argparse.Namespace) -> dict[str, Any]:
    cfg: dict[str, Any] = {"enabled": True, "fingerprints": args.count, "backups": args.backups,
                           "epochs": args.epochs, "device": args.device,
                           "torch_threads": args.threads, "min_accuracy": args.min_accuracy,
                           "job_timeout_s": 3600}
    if args.lr is not None:
        cfg["lr"] = args.lr
    if args.no_freeze_embeddings:
        cfg["freeze_embeddings"] = False
    return cfg


def start_testnet(root: Path, args: argparse.Namespace) -> Any:
    from node.config import load_config, render_config, with_changes
    from node.home import Home
    from node.testnet import AUTO_PORTS, Testnet, init_testnet

    out = root / "testnet"
    init_testnet(out, validators=1, non_validators=1, base_port=AUTO_PORTS,
                 chain_id="oml-bench", consensus=CONSENSUS)
    net = Testnet(out)
    home = Home(net.spec("node1").home)
    config = with_changes(load_config(home.config_file), roles={"omlizer": omlizer_config(args)})
    home.config_file.write_text(render_config(config))
    net.start_all(["node0", "node1"], timeout=120)
    return net


def call(net: Any, name: str, method: str, **params: Any) -> Any:
    with net.client(name) as c:
        return c.call(method, params)


def tx(net: Any, who: str, *args: str) -> None:
    out = json.loads(cli("tx", *args, "--home", str(net.spec(who).home),
                         "--rpc", net.spec("node0").rpc_url))
    if out["tx_result"]["code"] != 0:
        raise SystemExit(f"tx {args[0]} failed: {out['tx_result']}")


def pubkey(net: Any, name: str) -> str:
    from node.home import Home

    home = Home(net.spec(name).home)
    return home.account_key(home.config()).public_key.hex()


def publish(net: Any, base: Path) -> None:
    from oml.hashing import weights_hash

    owner = net.spec("node1")
    blob = cli("blob", "put", str(base), "--home", str(owner.home),
               "--to", pubkey(net, "node1")).strip()
    tx(net, "node1", "register-role", "--role", "omlizer", "--bond", "5000")
    tx(net, "node1", "register-model", "--model-id", MODEL_ID, "--weights-hash",
       weights_hash(base).hex(), "--omlizer", owner.address, "--blob-id", blob,
       "--min-collateral", "10")


def wait_active(net: Any, host: str, timeout: float) -> dict[str, Any]:
    from node.rpc_client import wait_until

    model_hex = MODEL_ID.encode().hex()

    def failed_job() -> str | None:
        jobs = call(net, "node1", "omlizer_jobs")["jobs"]
        return jobs[0]["error"] if jobs and jobs[0]["state"] == "failed" else None

    def active() -> Any:
        if (error := failed_job()) is not None:
            raise SystemExit(f"the OMLizer job failed: {error}")
        rec = call(net, "node0", "host", model_id=model_hex, host=host)
        return rec if rec["status"] == "active" else None

    return wait_until(active, timeout=timeout, interval=0.2, what="the host to become active")


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from oml.package import verify_package

    base = base_model(args)
    params = _params(base)
    log(f"base {base}: {params / 1e6:.1f}M parameters; starting a 2-node testnet")
    net = start_testnet(root, args)
    try:
        publish(net, base)
        host = net.spec("node0")
        log(f"requesting access: {args.count} keys x {1 + args.backups} fingerprints, "
            f"{args.epochs} epochs, device {args.device}")
        t0 = time.monotonic()
        tx(net, "node0", "request-access", "--model-id", MODEL_ID, "--collateral", "1000")
        t_req = time.monotonic()
        rec = wait_active(net, host.address, timeout=3600)
        t_active = time.monotonic()
        out = root / "fetched"
        cli("blob", "get", rec["package_blob"], "--home", str(host.home), "--out", str(out))
        manifest = verify_package(out, bytes.fromhex(pubkey(net, "node1")))
        if manifest.package_hash().hex() != rec["package_hash"]:
            raise SystemExit("the fetched package is not the committed one")
        t_done = time.monotonic()
        job = call(net, "node1", "omlizer_jobs")["jobs"][0]
    finally:
        net.stop_all()
    return {"params": params, "job": job, "request_s": t_req - t0,
            "to_active_s": t_active - t0, "fetch_s": t_done - t_active, "total_s": t_done - t0,
            "settings": vars(args) | {"base": str(base)}}


def _params(base: Path) -> int:
    from oml.hashing import weight_files

    total = 0
    for f in weight_files(base):
        with f.open("rb") as fh:
            header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
        for name, t in header.items():
            if name != "__metadata__":
                n = 1
                for d in t["shape"]:
                    n *= d
                total += n
    return total


def table(r: dict[str, Any]) -> str:
    t = r["job"]["timings"]
    worker = {k: t.get(k, 0.0)
              for k in ("import", "load", "generate", "train", "verify", "package")}
    start = max(0.0, t.get("fingerprinting", 0.0) - sum(worker.values()))
    rows = [
        ("request tx (sign, submit, commit; CLI)", r["request_s"]),
        ("queued (follower picks it up)", t.get("queued", 0.0)),
        ("fetch base (blob fetch + decrypt)", t.get("fetching_base", 0.0)),
        ("worker start (python interpreter)", start),
        ("worker: import torch, transformers", worker["import"]),
        ("worker: load base", worker["load"]),
        ("generate fingerprints", worker["generate"]),
        ("train (insert)", worker["train"]),
        ("verify on own keys", worker["verify"]),
        ("package (save, sign, seal)", worker["package"]),
        ("package check + file secrets (node)", t.get("packaging", 0.0)),
        ("store (encrypt to host, pin)", t.get("storing", 0.0)),
        ("commit (sign, submit, block, follower)", t.get("committing", 0.0)),
        ("host fetch + verify (blob get, hashes)", r["fetch_s"]),
    ]
    other = r["total_s"] - sum(s for _, s in rows)
    rows.append(("other (polling, CLI start-up)", max(0.0, other)))
    total = r["total_s"]
    job = r["job"]
    lines = [f"OMLizer bench: {r['params'] / 1e6:.1f}M-parameter base, "
             f"{r['settings']['count']} keys x {1 + r['settings']['backups']} = "
             f"{job['fp_count']} fingerprints, {r['settings']['epochs']} epochs, "
             f"device {r['settings']['device']}, threads {r['settings']['threads']}",
             "", "| phase | seconds | share |", "|---|---:|---:|"]
    for name, s in rows:
        lines.append(f"| {name} | {s:.1f} | {s / total:.0%} |")
    lines.append(f"| **total** | **{total:.1f}** | |")
    non_train = total - worker["train"]
    backups = job.get("backup_accuracy")
    lines += ["", f"fingerprint accuracy on own keys: {job['accuracy']:.1%} "
                  f"(keys answered plainly {job['primary_accuracy']:.1%}"
                  + (f", backups under top-1 suppression {backups:.1%}"
                     if backups is not None else "")
                  + f"), attempts {job['attempts']}",
              f"training share: {worker['train'] / total:.0%}; everything else "
              f"{non_train:.1f} s ({non_train / total:.0%})"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=64, help="fingerprint keys (N)")
    ap.add_argument("--backups", type=int, default=1, help="backup responses per key")
    ap.add_argument("--epochs", type=int, default=30, help="insertion epochs")
    ap.add_argument("--lr", type=float, help="insertion learning rate (default: the node's)")
    ap.add_argument("--min-accuracy", type=float, default=0.95)
    ap.add_argument("--no-freeze-embeddings", action="store_true",
                    help="train the embeddings too (tiny models with a tied head)")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads in the worker")
    ap.add_argument("--base", type=Path, help="a local model folder instead of the cached base")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the testnet directory")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="oml-omlize-"))
    try:
        result = run(args, root)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            log(f"kept {root}")
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
