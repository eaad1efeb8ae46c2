"""A storage peer in its own OS process that misbehaves on purpose (e2e tests).

Usage: python blob_peer.py MODE FILE STORE_DIR PEER_ADDR
Puts FILE into a BlobStore at STORE_DIR, dials PEER_ADDR (a testnet node),
serves ``/oml/blob/1`` and prints one JSON line ``{"peer_id", "blob_id"}``
once the node is connected. MODE:

- ``liar``: every chunk it serves has one byte flipped (its manifest is honest);
- ``slow``: serves correct chunks, 0.2 s each, so a test can kill it mid-transfer.

Exits when stdin closes, so the test's lifetime bounds ours.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import trio

from net import NetConfig, open_transport
from node.roles.storage.store import BlobStore
from node.roles.storage.transfer import BlobServer


class Misbehaving:
    """A ChunkSource over a real store that lies about or delays every chunk."""

    def __init__(self, store: BlobStore, mode: str) -> None:
        self._store = store
        self._mode = mode

    def has_manifest(self, blob_id: bytes) -> bool:
        return self._store.has_manifest(blob_id)

    def manifest(self, blob_id: bytes):  # noqa: ANN201 - the store's Manifest
        return self._store.manifest(blob_id)

    def present_chunks(self, blob_id: bytes) -> int:
        return self._store.present_chunks(blob_id)

    def read_chunk(self, blob_id: bytes, index: int) -> bytes:
        data = self._store.read_chunk(blob_id, index)
        if self._mode == "liar":
            return bytes([data[0] ^ 0xFF]) + data[1:]
        # Fault injection, not a wait: a slow provider, so the test can kill it
        # mid-transfer (it waits on the chunks this peer served, not on time).
        # Runs in the server's worker thread, so the event loop is not blocked.
        time.sleep(0.2)
        return data


async def main(mode: str, file: str, store_dir: str, peer_addr: str) -> None:
    store = BlobStore.open(Path(store_dir), quota_bytes=1 << 34)
    manifest = store.put_file(Path(file))
    config = NetConfig(seed=hashlib.sha256(mode.encode()).digest(),
                       listen_addr="/ip4/127.0.0.1/tcp/0", persistent_peers=(peer_addr,),
                       redial_interval_s=0.2)
    async with open_transport(config) as transport:
        BlobServer(Misbehaving(store, mode)).register(transport)
        peer = peer_addr.rsplit("/", 1)[-1]
        with trio.fail_after(30):
            while not transport.is_connected(peer):
                await trio.sleep(0.05)
        print(json.dumps({"peer_id": transport.peer_id, "blob_id": manifest.blob_id.hex()}),
              flush=True)
        stdin = trio.lowlevel.FdStream(0)
        while await stdin.receive_some(1024):
            pass
    store.close()


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:5])
