"""The pipelined signature verification gives exactly the sequential results."""

from __future__ import annotations

import hashlib

from consensus.crypto import PrivateKey, Signer
from node.genesis import Genesis, GenesisValidator
from node.ledger import Code, Ledger, TransferBody, build_tx
from node.ledger.ledger import PARALLEL_MIN_TXS

CHAIN = "par-chain"
SENDERS = [Signer(PrivateKey(hashlib.sha256(b"s%d" % i).digest())) for i in range(20)]
PROPOSER = b"\x07" * 20


def genesis() -> Genesis:
    return Genesis(chain_id=CHAIN, genesis_time_ms=0,
                   validators=(GenesisValidator("v", SENDERS[0].public_key, 1),),
                   app_state={"accounts": [{"address": s.address.hex(), "balance": 10_000}
                                           for s in SENDERS]})


def block(n: int) -> tuple[list[bytes], set[int]]:
    nonces = [0] * len(SENDERS)
    txs, forged = [], set()
    for i in range(n):
        s = i % len(SENDERS)
        raw = build_tx(SENDERS[s], CHAIN, nonces[s],
                       TransferBody(to=SENDERS[(s + 3) % len(SENDERS)].address, amount=i + 1))
        if i % 37 == 5:
            raw = raw[:-1] + bytes([raw[-1] ^ 1])  # last byte of the signature
            forged.add(i)
        elif i % 53 == 7:
            raw = b"\x93junk"
            forged.add(i)
        else:
            nonces[s] += 1
        txs.append(raw)
    return txs, forged


def test_threaded_verification_matches_sequential(tmp_path):
    txs, forged = block(3 * PARALLEL_MIN_TXS + 11)
    results = {}
    for name, kw in (("seq", {"verify_threads": 1}), ("par", {"verify_threads": 2}),
                     ("noverify", {"verify_signatures": False})):
        with Ledger.open(tmp_path / name, genesis(), durable=False, **kw) as ledger:
            r = ledger.apply_block(1, 1, PROPOSER, txs)
            results[name] = (r.app_hash, [x.code for x in r.tx_results],
                             ledger.export_state())
    assert results["seq"] == results["par"]
    codes = results["par"][1]
    assert {i for i, c in enumerate(codes) if c != Code.OK} == forged
    assert {codes[i] for i in forged} == {Code.BAD_SIGNATURE, Code.MALFORMED}
    # without verification, the forged signatures are accepted (and later nonces shift)
    assert results["noverify"][0] != results["par"][0]


def test_check_tx_verified_cache_never_changes_results(tmp_path):
    """Transactions verified by check_tx skip the second verification in the block,
    with exactly the results of a ledger that verifies everything."""
    txs, forged = block(PARALLEL_MIN_TXS + 40)
    with Ledger.open(tmp_path / "cached", genesis(), durable=False) as cached, \
            Ledger.open(tmp_path / "plain", genesis(), durable=False, verified_cache=0) as plain:
        for i, raw in enumerate(txs):
            if i % 2:  # half of them came through this node's mempool
                assert cached.stateless_check(raw).ok == (i not in forged)
        assert len(cached._verified) == len([i for i in range(len(txs))
                                             if i % 2 and i not in forged])
        a = cached.apply_block(1, 1, PROPOSER, txs)
        b = plain.apply_block(1, 1, PROPOSER, txs)
        assert a.app_hash == b.app_hash
        assert [r.code for r in a.tx_results] == [r.code for r in b.tx_results]
        assert len(cached._verified) == 0  # used entries are forgotten
        assert len(plain._verified) == 0


def test_cache_is_bounded_and_keyed_by_every_byte():
    from node.ledger.sigverify import VerifiedCache
    cache = VerifiedCache(capacity=3)
    for h in (b"a", b"b", b"c", b"d"):
        cache.add(h)
    assert len(cache) == 3 and not cache.take(b"a")  # oldest evicted
    assert cache.take(b"d") and not cache.take(b"d")
    off = VerifiedCache(capacity=0)
    off.add(b"x")
    assert not off.take(b"x")


def test_check_tx_remembers_only_admitted_txs(tmp_path):
    """Validly signed transactions that check_tx refuses (no account, used nonce) are
    not cached: they will not be proposed by this node and must not evict admitted ones."""
    stranger = Signer(PrivateKey(hashlib.sha256(b"no account").digest()))
    to = SENDERS[1].address
    with Ledger.open(tmp_path / "l", genesis(), durable=False) as ledger:
        ok = build_tx(SENDERS[0], CHAIN, 0, TransferBody(to=to, amount=1))
        ahead = build_tx(SENDERS[0], CHAIN, 5, TransferBody(to=to, amount=1))
        unknown = build_tx(stranger, CHAIN, 0, TransferBody(to=to, amount=1))
        assert ledger.check_tx(ok).ok and ledger.check_tx(ahead).ok
        assert ledger.check_tx(unknown).code == Code.UNKNOWN_SENDER
        assert len(ledger._verified) == 2
        ledger.apply_block(1, 1, PROPOSER, [ok])
        used = build_tx(SENDERS[0], CHAIN, 0, TransferBody(to=to, amount=2))
        assert ledger.check_tx(used).code == Code.BAD_NONCE
        assert len(ledger._verified) == 1  # `ok` was taken by the block; `ahead` remains
