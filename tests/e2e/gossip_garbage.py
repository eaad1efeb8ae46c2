"""A hostile peer for the e2e tests: joins the testnet and sends garbage everywhere.

Run as its own process (``python gossip_garbage.py PEER_ADDR...``) so the
test process never imports libp2p. It connects to the given nodes, waits
until they announce the transaction topic, then publishes malformed messages
on it (random bytes, valid msgpack of the wrong shape, a forged vote), sends
the same as direct consensus messages and validator hellos (consensus
travels on direct links between validators, not gossip) and sends malformed
block-sync requests. Prints
``published N`` and exits 0 if it could do all that; the test then checks
that every node is still alive and committing.
"""

from __future__ import annotations

import os
import sys

import trio

from consensus.encoding import encode
from net import NetConfig, open_transport
from node.consensus_links import CONSENSUS_PROTOCOL, HELLO_PROTOCOL
from node.sync import SYNC_PROTOCOL
from node.txgossip import TX_TOPIC


async def main(peers: list[str]) -> int:
    config = NetConfig(seed=os.urandom(32), listen_addr="/ip4/127.0.0.1/tcp/0",
                       persistent_peers=tuple(peers))
    garbage = [
        b"\x00not msgpack at all",
        os.urandom(200),
        encode([1, [b"x" * 10]]),            # right outer shape, junk inside
        encode([2, [1, 2, 3]]),              # a "vote" that is not one
        encode([7, b"unknown tag"]),
        b"\xc1",                              # never-used msgpack byte
        encode([1, [], [], []]),
    ]
    sent = 0
    async with open_transport(config) as transport:
        await transport.wait_for_topic_peers(TX_TOPIC, 1, timeout=30)
        targets = [p.rsplit("/p2p/", 1)[1] for p in peers]
        for _ in range(3):
            for data in garbage:
                await transport.publish(TX_TOPIC, data)
                failed = await transport.send_all(targets, CONSENSUS_PROTOCOL, data)
                sent += 1 + len(targets) - len(failed)
        for data in garbage:
            try:
                await transport.request(targets[0], HELLO_PROTOCOL, data, timeout=5)
            except Exception as exc:  # noqa: BLE001 - any typed refusal is fine here
                print(f"hello refused: {type(exc).__name__}")
            sent += 1
        target = targets[0]
        for data in (b"", b"\xff\xff", encode([1, 5, 2]), encode([9]), os.urandom(40)):
            try:
                await transport.request(target, SYNC_PROTOCOL, data or b"\x90", timeout=5)
            except Exception as exc:  # noqa: BLE001 - any typed refusal is fine here
                print(f"sync request refused: {type(exc).__name__}")
            sent += 1
        await trio.sleep(1.0)  # let gossip flush before closing the host
    print(f"published {sent}")
    return 0


if __name__ == "__main__":
    sys.exit(trio.run(main, sys.argv[1:]))
