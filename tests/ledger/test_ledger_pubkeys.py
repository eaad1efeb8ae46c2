"""Account public keys: recorded the first time an account's transaction is applied.

Confidential blobs are encrypted to a recipient's Ed25519 key, and users name
recipients by address; the chain is where an address's key can be looked up.
"""

from __future__ import annotations

import msgpack
import pytest
from ledger_helpers import ADDR, CHAIN, KEYS, START_BALANCE, key

from consensus.crypto import address_of
from consensus.encoding import encode
from node.ledger import Account, Code, TransferBody, build_tx, decode_tx
from node.ledger.errors import InvariantError, LedgerUsageError


def pub_key(chain, who: str | bytes) -> bytes:
    acct = chain.ledger.account(ADDR[who] if isinstance(who, str) else who)
    assert acct is not None
    return acct.pub_key


def test_genesis_accounts_have_no_key(chain):
    assert all(pub_key(chain, name) == b"" for name in ("alice", "bob", "owner", "poor"))


def test_first_applied_tx_records_the_key_and_later_ones_keep_it(chain):
    chain.ok("alice", TransferBody(to=ADDR["bob"], amount=5))
    assert pub_key(chain, "alice") == KEYS["alice"].public_key
    assert address_of(pub_key(chain, "alice")) == ADDR["alice"]
    chain.ok("alice", TransferBody(to=ADDR["bob"], amount=5))
    acct = chain.ledger.account(ADDR["alice"])
    assert acct.nonce == 2 and acct.pub_key == KEYS["alice"].public_key


def test_receiving_accounts_get_no_key(chain):
    fresh = key("fresh").address
    chain.ok("alice", TransferBody(to=ADDR["bob"], amount=5))
    chain.ok("alice", TransferBody(to=fresh, amount=5))
    assert pub_key(chain, "bob") == b""
    assert pub_key(chain, fresh) == b""
    assert chain.ledger.account(fresh).to_json() == {"balance": 5, "nonce": 0, "pub_key": ""}


def test_failed_tx_that_consumes_the_nonce_records_the_key(chain):
    chain.fail("alice", TransferBody(to=ADDR["bob"], amount=START_BALANCE + 1),
               Code.INSUFFICIENT_FUNDS)
    acct = chain.ledger.account(ADDR["alice"])
    assert (acct.balance, acct.nonce) == (START_BALANCE, 1)
    assert acct.pub_key == KEYS["alice"].public_key


def test_rejected_txs_record_no_key(chain):
    body = TransferBody(to=ADDR["bob"], amount=5)
    raw = build_tx(KEYS["alice"], CHAIN, 0, body)
    forged = raw[:-1] + bytes([raw[-1] ^ 1])
    # bob signs a tx that names alice's key: it must not become alice's key
    tx = decode_tx(raw)
    by_bob = encode([tx.unsigned, KEYS["bob"].sign(b"oml/tx/v1", CHAIN, tx.unsigned)])
    skipped = build_tx(KEYS["alice"], CHAIN, 1, body)
    other_chain = build_tx(KEYS["alice"], "other-chain", 0, body)
    results = chain.block([forged, by_bob, skipped, other_chain]).tx_results
    assert [r.code for r in results] == [Code.BAD_SIGNATURE, Code.BAD_SIGNATURE,
                                         Code.BAD_NONCE, Code.WRONG_CHAIN]
    acct = chain.ledger.account(ADDR["alice"])
    assert (acct.nonce, acct.pub_key) == (0, b"")


def test_replayed_tx_does_not_change_the_recorded_key(chain):
    raw = chain.tx("alice", TransferBody(to=ADDR["bob"], amount=5))
    assert chain.block([raw]).tx_results[0].ok
    before = chain.ledger.export_state()["accounts"]
    assert chain.block([raw]).tx_results[0].code == Code.BAD_NONCE
    assert chain.ledger.export_state()["accounts"] == before


@pytest.mark.parametrize("pk", [b"", KEYS["alice"].public_key])
def test_account_record_round_trip(pk):
    acct = Account(balance=7, nonce=3, pub_key=pk)
    raw = acct.encode()
    assert msgpack.unpackb(raw) == [7, 3, pk]  # pub_key is the last field
    assert Account.decode(raw) == acct
    assert acct.to_json() == {"balance": 7, "nonce": 3, "pub_key": pk.hex()}


@pytest.mark.parametrize("size", [1, 20, 31, 33])
def test_account_pub_key_is_empty_or_32_bytes(size):
    with pytest.raises(LedgerUsageError, match="pub_key"):
        Account(balance=1, pub_key=b"k" * size)
    with pytest.raises(InvariantError, match="pub_key"):
        Account(balance=1).but(pub_key=b"k" * size)
    with pytest.raises(InvariantError, match="Account"):
        Account.decode(msgpack.packb([1, 0, b"k" * size]))


def test_account_in_the_old_two_field_layout_does_not_decode():
    with pytest.raises(InvariantError, match="expected 3 fields"):
        Account.decode(msgpack.packb([1, 0]))
