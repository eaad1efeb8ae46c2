"""The demo's view of the chain: JSON-RPC only, as any outside observer would see it.

Every wait has a deadline taken from the demo's overall budget, so the
story cannot hang: a step that does not happen in time fails loudly,
naming what it waited for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from consensus.crypto import PrivateKey
from node.ledger import build_tx
from node.rpc_client import RpcClient, RpcClientError, RpcError
from node.testnet import Testnet

from .net import CHAIN_ID, DemoError

T = TypeVar("T")
NOT_FOUND = -32001


class ChainView:
    """RPC calls to the demo's nodes, with one deadline for the whole story."""

    def __init__(self, net: Testnet, deadline: float) -> None:
        self.net = net
        self.deadline = deadline

    def call(self, node: str, method: str, **params: Any) -> Any:
        with RpcClient(self.net.spec(node).rpc_url, timeout=30.0) as c:
            return c.call(method, params)

    def find(self, node: str, method: str, **params: Any) -> Any | None:
        """Like :meth:`call`, but a record that does not exist is None."""
        try:
            return self.call(node, method, **params)
        except RpcError as exc:
            if exc.code == NOT_FOUND:
                return None
            raise

    def height(self, node: str = "node0") -> int:
        try:
            return int(self.call(node, "status")["sync_info"]["latest_block_height"])
        except RpcClientError:
            return 0

    def balance(self, address: str) -> int:
        acct = self.find("node0", "account", address=address)
        return int(acct["balance"]) if acct else 0

    def send(self, key: PrivateKey, body: Any, what: str) -> int:
        """Sign and send one transaction through node0; returns the height it is in.

        Raises:
            DemoError: the mempool or the ledger refused it.
        """
        acct = self.find("node0", "account", address=key.address.hex())
        nonce = int(acct["nonce"]) if acct else 0
        res = self.call("node0", "broadcast_tx_commit",
                        tx=build_tx(key, CHAIN_ID, nonce, body).hex())
        if res["check_tx"]["code"] != 0 or (res.get("tx_result") or {}).get("code") != 0:
            raise DemoError(f"{what} was refused: {res}")
        return int(res["height"])

    def wait(self, predicate: Callable[[], T | None], what: str, *,
             timeout: float | None = None, interval: float = 0.5) -> T:
        """Poll until ``predicate`` is truthy; RPC errors count as "not yet".

        Raises:
            DemoError: the deadline (``timeout`` or the story's) passed.
        """
        end = self.deadline if timeout is None else min(self.deadline,
                                                        time.monotonic() + timeout)
        last: Exception | None = None
        while True:
            self.check_alive()
            try:
                value = predicate()
                if value:
                    return value
            except RpcClientError as exc:
                last = exc
            if time.monotonic() >= end:
                raise DemoError(f"timed out waiting for {what}"
                                + (f" (last error: {last})" if last else ""))
            time.sleep(interval)

    def check_alive(self) -> None:
        """A node that crashed fails the story at once, with its log's tail.

        Raises:
            DemoError: a node exited with a non-zero status.
        """
        for name, proc in self.net.procs.items():
            code = proc.proc.poll()
            if code not in (None, 0):
                raise DemoError(f"{name} exited with status {code}:\n{proc.log_tail(15)}")

    def host(self, model: str, address: str) -> dict[str, Any] | None:
        return self.find("node0", "host", model_id=model.encode().hex(), host=address)

    def claims(self) -> list[dict[str, Any]]:
        """Every claim on the ledger, by id (ids count up from 0)."""
        out = []
        while (c := self.find("node0", "claim", claim_id=len(out))) is not None:
            out.append(c)
        return out


__all__ = ["ChainView"]
