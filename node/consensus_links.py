"""Direct links between validators: proposals and votes go straight to each validator.

``bench/net.py`` measured one-way direct messages on long-lived streams 3-6
times cheaper in CPU than gossip, with lower latency, and lossless where
gossip dropped half its messages under overload (docs/net.md). With a
handful of validators a full mesh of direct links is cheap; CometBFT sends
consensus messages over direct peer links too.

Two protocols:

``/oml/consensus-hello/1`` (request/response)
    Each side sends its :class:`consensus.hello.ValidatorHello` (signed with
    its validator account key, naming its own peer id) and answers with its
    own, so one exchange teaches both. Every ``HELLO_POLL_S`` the links look
    at the live connections and greet each new one (a reconnect is a new
    connection, so a restarted validator is greeted again). A peer without
    the protocol (a full node) answers ``ERR_UNSUPPORTED`` and is not asked
    again on that connection; an unreachable one is asked at the next poll.

``/oml/consensus/1`` (one-way direct messages, in order per peer)
    An encoded proposal or vote. Each validator peer has an outbox of
    ``OUTBOX_SIZE`` messages and one task that writes them with
    ``Transport.send``, so a slow or dead validator never holds up the
    consensus loop or the others. Delivery is at most once: when a send
    fails, what is queued behind it is dropped (it is stale by the time the
    peer is back). The core re-sends its own messages of the current height
    every ``gossip_interval_ms``, a later round re-proposes, and block sync
    fetches what was decided meanwhile, the same recovery Tendermint relies
    on for lost gossip.

Received messages are handed to the driver's ``on_message`` callback,
which checks them exactly as gossiped ones were (decodable, signer in the
validator set, height not finished) and queues them for the core, which
verifies every signature and drops exact duplicates before they reach the
WAL. Full nodes take no part: they follow the chain by block sync.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from consensus.crypto import Signer
from consensus.encoding import DecodeError
from consensus.errors import InvalidMessageError
from consensus.hello import ValidatorBook, ValidatorHello
from consensus.validators import ValidatorSet
from net.errors import HandlerError, NetError, RemoteError

log = logging.getLogger(__name__)

CONSENSUS_PROTOCOL = "/oml/consensus/1"
HELLO_PROTOCOL = "/oml/consensus-hello/1"
#: How often the live connections are checked for peers not greeted yet.
HELLO_POLL_S = 0.5
HELLO_TIMEOUT_S = 5.0
#: Messages queued for one validator before new ones are dropped (counted).
OUTBOX_SIZE = 256
#: HandlerError code for a hello that does not verify.
ERR_BAD_HELLO = 400

#: ``await on_message(peer_id, data)``: a direct consensus message arrived.
OnMessage = Callable[[str, bytes], Awaitable[None]]


def addresses(valset: ValidatorSet) -> list[bytes]:
    return [valset.address_at(i) for i in range(len(valset))]


class ConsensusLinks:
    """One validator's direct links to the others. ``await run()`` for the node's lifetime."""

    def __init__(self, *, transport: Any, chain_id: str, signer: Signer,
                 valset: Callable[[], ValidatorSet], on_message: OnMessage) -> None:
        self.transport = transport
        self.signer = signer
        self.valset = valset
        self.on_message = on_message
        self.book = ValidatorBook(chain_id)
        self._hello = ValidatorHello.create(signer, chain_id, transport.peer_id).encode()
        #: peer id -> connected_since of the connection already greeted
        self._greeted: dict[str, tuple[float, bytes]] = {}
        self._outboxes: dict[str, trio.MemorySendChannel[bytes]] = {}
        self._nursery: trio.Nursery | None = None
        self.stats = {"sent": 0, "received": 0, "dropped_full": 0, "dropped_failed": 0,
                      "send_errors": 0, "bad_hellos": 0}

    # --- sending ------------------------------------------------------------------------

    def targets(self) -> list[str]:
        """Peers that speak for the other validators of the current set."""
        return self.book.peers_for(addresses(self.valset()), exclude=self.signer.address)

    def broadcast(self, data: bytes) -> int:
        """Queue ``data`` for every other validator's peer; never blocks. Returns how many."""
        queued = 0
        for peer in self.targets():
            outbox = self._outboxes.get(peer)
            if outbox is None:
                outbox = self._open_outbox(peer)
                if outbox is None:
                    continue
            try:
                outbox.send_nowait(data)
                queued += 1
            except trio.WouldBlock:
                self.stats["dropped_full"] += 1
        return queued

    def _open_outbox(self, peer: str) -> trio.MemorySendChannel[bytes] | None:
        if self._nursery is None:
            return None  # not running yet: nothing can be sent
        send, recv = trio.open_memory_channel[bytes](OUTBOX_SIZE)
        self._outboxes[peer] = send
        self._nursery.start_soon(self._sender, peer, recv)
        return send

    async def _sender(self, peer: str, outbox: trio.MemoryReceiveChannel[bytes]) -> None:
        """Write one peer's messages in order; after a failure, drop what queued behind it."""
        async for data in outbox:
            try:
                await self.transport.send(peer, CONSENSUS_PROTOCOL, data)
                self.stats["sent"] += 1
            except NetError as exc:
                self.stats["send_errors"] += 1
                stale = 0
                while True:
                    try:
                        outbox.receive_nowait()
                        stale += 1
                    except trio.WouldBlock:
                        break
                self.stats["dropped_failed"] += stale
                log.debug("consensus send to %s failed (%s); dropped %d queued",
                          peer[-8:], exc, stale)

    # --- receiving ----------------------------------------------------------------------

    async def _on_direct(self, peer: str, data: bytes) -> bytes:
        self.stats["received"] += 1
        await self.on_message(peer, data)
        return b""

    async def _on_hello(self, peer: str, data: bytes) -> bytes:
        """Learn the requester's hello (if it verifies) and answer with ours."""
        self._learn(peer, data)
        self._greeted[peer] = (self._connected_since(peer), self.valset().hash())
        return self._hello

    def _learn(self, peer: str, data: bytes) -> None:
        try:
            hello = ValidatorHello.decode(data)
            if self.book.learn(hello, peer, addresses(self.valset())):
                log.info("peer %s speaks for validator %s", peer[-8:], hello.address.hex()[:12])
        except (DecodeError, InvalidMessageError) as exc:
            self.stats["bad_hellos"] += 1
            log.info("bad validator hello from %s: %s", peer[-8:], exc)
            raise HandlerError(ERR_BAD_HELLO, "bad validator hello") from None

    def _connected_since(self, peer: str) -> float:
        for info in self.transport.connected_peers():
            if info.peer_id == peer:
                return float(info.connected_since)
        return -1.0

    # --- greeting -------------------------------------------------------------------------

    async def _greet(self, peer: str, key: tuple[float, bytes]) -> None:
        try:
            answer = await self.transport.request(peer, HELLO_PROTOCOL, self._hello,
                                                  timeout=HELLO_TIMEOUT_S)
        except RemoteError:  # no such protocol (a full node), or it refused ours
            self._greeted[peer] = key
            return
        except NetError:
            return  # unreachable for now: try again at the next poll
        self._greeted[peer] = key
        try:
            self._learn(peer, answer)
        except HandlerError:
            pass  # counted and logged

    async def _greet_loop(self) -> None:
        """Greet every connection not greeted yet (new peers, reconnects, a new valset)."""
        async with trio.open_nursery() as nursery:
            busy: set[str] = set()

            async def greet(peer: str, key: tuple[float, bytes]) -> None:
                try:
                    await self._greet(peer, key)
                finally:
                    busy.discard(peer)

            while True:
                valset_hash = self.valset().hash()
                for info in self.transport.connected_peers():
                    key = (float(info.connected_since), valset_hash)
                    if self._greeted.get(info.peer_id) != key and info.peer_id not in busy:
                        busy.add(info.peer_id)
                        nursery.start_soon(greet, info.peer_id, key)
                await trio.sleep(HELLO_POLL_S)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Serve both protocols, greet peers and run the senders until cancelled.

        With ``await nursery.start(links.run)``, returns once messages can be sent.
        """
        self.transport.set_handler(HELLO_PROTOCOL, self._on_hello)
        self.transport.set_handler(CONSENSUS_PROTOCOL, self._on_direct)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                nursery.start_soon(self._greet_loop)
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._nursery = None
                for outbox in self._outboxes.values():
                    outbox.close()
                self._outboxes.clear()


__all__ = ["CONSENSUS_PROTOCOL", "HELLO_PROTOCOL", "ConsensusLinks"]
