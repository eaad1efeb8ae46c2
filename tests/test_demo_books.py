"""The demo's books and front, without a testnet: the arithmetic the closing table is checked
against, and the TCP front that gives the honest host a stable registered endpoint."""

from __future__ import annotations

import socket
import threading

import pytest

from node.demo.books import Account, balance_checks, expected_changes
from node.demo.relay import TcpFront
from node.demo.settings import DemoSettings
from node.ledger.params import BP


def test_one_query_splits_exactly_and_sums_to_the_price() -> None:
    s = DemoSettings()
    one = s.per_query()
    assert sum(one.values()) == s.price
    assert one["fee"] == s.price * 100 // BP and one["split_a"] == 2 * one["split_b"]


def test_a_price_that_leaves_dust_is_refused_before_anything_runs() -> None:
    with pytest.raises(ValueError, match="whole units"):
        DemoSettings(price=10_001).per_query()


def test_expected_changes_conserve_the_supply() -> None:
    """What accounts gain and lose, plus what is locked or burned, is zero: the expected
    amounts cannot themselves create or destroy money."""
    s = DemoSettings()
    q, funded = 23, 3 * s.fund_amount_queries * s.price
    want = expected_changes(s, q=q, funded=funded)
    slash = s.slash()
    locked = (s.host_collateral + (funded - q * s.price)  # honest: collateral, escrow left
              + s.cheater_collateral - slash["slashed"]  # cheater: what the slash left
              + s.omlizer_bond + s.prover_bond)
    assert sum(want.values()) + locked + slash["burned"] == 0


def test_a_balance_off_by_one_fails_its_check() -> None:
    s = DemoSettings()
    want = expected_changes(s, q=5, funded=40 * s.price)
    accounts = [Account(label, "", "", 1_000, 1_000 + change) for label, change in want.items()]
    assert all(c.ok for c in balance_checks(s, accounts, q=5, funded=40 * s.price))
    accounts[0] = Account(accounts[0].label, "", "", 1_000, accounts[0].after + 1)
    failed = [c for c in balance_checks(s, accounts, q=5, funded=40 * s.price) if not c.ok]
    assert [c.name for c in failed] == [f"balance change of {accounts[0].label}"]


def _echo_server() -> tuple[socket.socket, int]:
    srv = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data.upper())

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def test_front_refuses_without_a_target_then_forwards_to_it() -> None:
    front = TcpFront()
    try:
        with socket.create_connection(("127.0.0.1", front.port), timeout=5) as c:
            c.settimeout(5)
            assert c.recv(10) == b""  # closed at once: no backend yet
        srv, port = _echo_server()
        front.point_at(f"http://127.0.0.1:{port}/v1")
        with socket.create_connection(("127.0.0.1", front.port), timeout=5) as c:
            c.settimeout(5)
            c.sendall(b"hello")
            assert c.recv(10) == b"HELLO"
        srv.close()
        assert front.url == f"http://127.0.0.1:{front.port}/v1"
    finally:
        front.close()
