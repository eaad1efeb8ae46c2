"""Envelope checks (signature, chain, nonce, sender) and the transfer and role kinds."""

from __future__ import annotations

from ledger_helpers import ADDR, CHAIN, KEYS, START_BALANCE, key

from consensus.encoding import U64_MAX, encode
from node.ledger import (
    Code,
    RegisterRoleBody,
    Role,
    TransferBody,
    UnregisterRoleBody,
    build_tx,
    decode_tx,
)


def test_transfer_moves_funds_and_bumps_nonce(chain):
    r = chain.ok("alice", TransferBody(to=ADDR["bob"], amount=250))
    assert chain.balance("alice") == START_BALANCE - 250
    assert chain.balance("bob") == START_BALANCE + 250
    assert chain.ledger.account(ADDR["alice"]).nonce == 1
    assert r.events[0].type == "transfer" and r.events[0].attrs["amount"] == 250
    assert r.kind == "transfer"


def test_transfer_to_a_new_address_creates_the_account(chain):
    new = key("fresh").address
    chain.ok("alice", TransferBody(to=new, amount=1))
    assert chain.ledger.account(new).balance == 1


def test_transfer_insufficient_funds_fails_and_consumes_nonce(chain):
    chain.fail("alice", TransferBody(to=ADDR["bob"], amount=START_BALANCE + 1),
               Code.INSUFFICIENT_FUNDS)
    assert chain.balance("alice") == START_BALANCE
    assert chain.ledger.account(ADDR["alice"]).nonce == 1


def test_transfer_of_max_u64_fails_without_overflow(chain):
    chain.fail("alice", TransferBody(to=ADDR["bob"], amount=U64_MAX), Code.INSUFFICIENT_FUNDS)


def test_zero_transfer_is_invalid(chain):
    chain.fail("alice", TransferBody(to=ADDR["bob"], amount=0), Code.INVALID_ARGUMENT)


def test_bad_signature_is_rejected_and_changes_nothing(chain):
    raw = build_tx(KEYS["alice"], CHAIN, 0, TransferBody(to=ADDR["bob"], amount=5))
    forged = raw[:-1] + bytes([raw[-1] ^ 1])
    assert chain.ledger.check_tx(forged).code == Code.BAD_SIGNATURE
    assert chain.ledger.stateless_check(forged).code == Code.BAD_SIGNATURE
    before = chain.ledger.export_state()["accounts"]
    r = chain.block([forged]).tx_results[0]
    assert r.code == Code.BAD_SIGNATURE
    assert chain.ledger.export_state()["accounts"] == before  # not even the nonce moved


def test_signature_by_another_key_is_rejected(chain):
    # bob signs a tx that claims alice's public key
    tx = decode_tx(build_tx(KEYS["alice"], CHAIN, 0, TransferBody(to=ADDR["bob"], amount=5)))
    sig = KEYS["bob"].sign(b"oml/tx/v1", CHAIN, tx.unsigned)
    assert chain.ledger.check_tx(encode([tx.unsigned, sig])).code == Code.BAD_SIGNATURE


def test_wrong_chain_id_is_rejected(chain):
    raw = build_tx(KEYS["alice"], "other-chain", 0, TransferBody(to=ADDR["bob"], amount=5))
    assert chain.ledger.check_tx(raw).code == Code.WRONG_CHAIN
    r = chain.fail("alice", TransferBody(to=ADDR["bob"], amount=5), Code.WRONG_CHAIN,
                   chain_id="other-chain", nonce=0)
    assert r.kind == "transfer"


def test_replayed_nonce_is_rejected(chain):
    raw = chain.tx("alice", TransferBody(to=ADDR["bob"], amount=5))
    assert chain.block([raw]).tx_results[0].code == Code.OK
    assert chain.ledger.check_tx(raw).code == Code.BAD_NONCE
    before = chain.ledger.export_state()["accounts"]
    assert chain.block([raw]).tx_results[0].code == Code.BAD_NONCE
    assert chain.ledger.export_state()["accounts"] == before
    assert chain.balance("bob") == START_BALANCE + 5


def test_skipped_nonce_passes_mempool_but_not_the_block(chain):
    raw = chain.tx("alice", TransferBody(to=ADDR["bob"], amount=5), nonce=1)
    assert chain.ledger.check_tx(raw).ok  # the mempool may hold a later nonce
    chain.fail("alice", TransferBody(to=ADDR["bob"], amount=5), Code.BAD_NONCE, nonce=1)
    assert chain.ledger.account(ADDR["alice"]).nonce == 0


def test_same_tx_twice_in_one_block_applies_once(chain):
    raw = chain.tx("alice", TransferBody(to=ADDR["bob"], amount=5))
    codes = [r.code for r in chain.block([raw, raw]).tx_results]
    assert codes == [Code.OK, Code.BAD_NONCE]


def test_consecutive_nonces_in_one_block(chain):
    txs = [chain.tx("alice", TransferBody(to=ADDR["bob"], amount=i + 1)) for i in range(3)]
    assert all(r.ok for r in chain.block(txs).tx_results)
    assert chain.balance("bob") == START_BALANCE + 6


def test_unknown_sender_is_rejected(chain):
    stranger = key("stranger")
    raw = build_tx(stranger, CHAIN, 0, TransferBody(to=ADDR["bob"], amount=0 + 1))
    assert chain.ledger.check_tx(raw).code == Code.UNKNOWN_SENDER
    assert chain.block([raw]).tx_results[0].code == Code.UNKNOWN_SENDER
    assert chain.ledger.account(stranger.address) is None


def test_malformed_tx_in_block_gets_code_and_changes_nothing(chain):
    before = chain.ledger.export_state()["accounts"]
    results = chain.block([b"\x00garbage", b""]).tx_results
    assert [r.code for r in results] == [Code.MALFORMED, Code.MALFORMED]
    assert chain.ledger.export_state()["accounts"] == before
    assert chain.ledger.check_tx(b"\x00garbage").code == Code.MALFORMED


def test_check_tx_result_names_sender_and_nonce(chain):
    raw = chain.tx("alice", TransferBody(to=ADDR["bob"], amount=5))
    check = chain.ledger.check_tx(raw)
    assert check.ok and check.sender == ADDR["alice"] and check.nonce == 0
    assert check.to_json()["sender"] == ADDR["alice"].hex()


def test_register_roles_and_top_up(chain):
    chain.ok("prover", RegisterRoleBody(role=Role.PROVER, bond=1_000))
    chain.ok("prover", RegisterRoleBody(role=Role.PROVER, bond=1))  # top-up of a valid bond
    assert chain.ledger.role(Role.PROVER, ADDR["prover"]).bond == 1_001
    assert chain.balance("prover") == START_BALANCE - 1_001
    chain.ok("omlizer", RegisterRoleBody(role=Role.OMLIZER, bond=5_000))
    assert chain.ledger.role(Role.OMLIZER, ADDR["omlizer"]).bond == 5_000
    assert chain.ledger.role(Role.PROVER, ADDR["omlizer"]) is None


def test_register_role_below_minimum(chain):
    chain.fail("prover", RegisterRoleBody(role=Role.PROVER, bond=999), Code.BELOW_MINIMUM)
    chain.fail("prover", RegisterRoleBody(role=Role.PROVER, bond=0), Code.INVALID_ARGUMENT)


def test_register_role_insufficient_funds(chain):
    chain.fail("alice", RegisterRoleBody(role=Role.OMLIZER, bond=START_BALANCE + 1),
               Code.INSUFFICIENT_FUNDS)


def test_unregister_role_refunds_and_revokes(chain):
    chain.ok("prover", RegisterRoleBody(role=Role.PROVER, bond=1_500))
    r = chain.ok("prover", UnregisterRoleBody(role=Role.PROVER))
    assert r.events[0].attrs["refund"] == 1_500
    assert chain.ledger.role(Role.PROVER, ADDR["prover"]) is None
    assert chain.balance("prover") == START_BALANCE
    chain.fail("prover", UnregisterRoleBody(role=Role.PROVER), Code.NOT_FOUND)
    chain.fail("prover", UnregisterRoleBody(role=Role.OMLIZER), Code.NOT_FOUND)


def test_credit_overflow_guard_fails_the_tx():
    """The genesis supply fits in u64, so this cannot happen through transactions;
    the guard still turns it into a failed tx instead of a corrupt record."""
    import pytest

    from node.ledger import Account, TxFailed
    from node.ledger.state import Overlay, State

    class Empty:
        def get(self, table, key):
            return None

    state = State(Overlay(Empty()))
    state.put_account(ADDR["alice"], Account(balance=U64_MAX - 1, nonce=0))
    state.credit(ADDR["alice"], 1)
    with pytest.raises(TxFailed) as info:
        state.credit(ADDR["alice"], 1)
    assert info.value.code == Code.OVERFLOW
    assert state.account(ADDR["alice"]).balance == U64_MAX


def test_amounts_at_the_u64_edge(make_chain):
    c = make_chain(balances={"alice": U64_MAX, "bob": 0})
    c.ok("alice", TransferBody(to=ADDR["bob"], amount=U64_MAX))
    assert c.balance("bob") == U64_MAX and c.balance("alice") == 0
    c.ok("bob", RegisterRoleBody(role=Role.PROVER, bond=U64_MAX))
    # a top-up that would push the bond past 2**64-1 fails with OVERFLOW, changing nothing
    c.fail("bob", RegisterRoleBody(role=Role.PROVER, bond=1), Code.OVERFLOW)
    assert c.ledger.supply_breakdown().role_bonds == U64_MAX
