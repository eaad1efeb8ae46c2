"""A transport in its own OS process, driven by tests/net/test_net_process.py.

Usage: python net_peer_proc.py SEED_HEX [PERSISTENT_PEER...]
Listens on port 0 and prints one JSON line {"peer_id", "addrs"} (the port it
got) once listening, then serves:
``/oml/test/echo/1`` answers ``b"echo:" + data``; every message on topic
``oml/test/in`` is republished on ``oml/test/out`` with an ``echo:`` prefix.
Exits when stdin closes (the parent's lifetime bounds ours).
"""

from __future__ import annotations

import json
import sys

import trio

from net import NetConfig, open_transport


async def main(seed_hex: str, peers: tuple[str, ...]) -> None:
    config = NetConfig(
        seed=bytes.fromhex(seed_hex),
        listen_addr="/ip4/127.0.0.1/tcp/0",
        persistent_peers=peers,
        redial_interval_s=0.2,
    )
    async with open_transport(config) as t:

        async def echo(peer: str, data: bytes) -> bytes:
            return b"echo:" + data

        t.set_handler("/oml/test/echo/1", echo)
        inbox = t.subscribe("oml/test/in")
        print(json.dumps({"peer_id": t.peer_id, "addrs": t.listen_addrs}), flush=True)

        async def relay() -> None:
            async for _origin, data in inbox:
                await t.publish("oml/test/out", b"echo:" + data)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(relay)
            stdin = trio.lowlevel.FdStream(0)
            while await stdin.receive_some(1024):
                pass
            nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main, sys.argv[1], tuple(sys.argv[2:]))
