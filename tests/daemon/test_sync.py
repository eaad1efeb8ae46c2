"""node.sync: the block-sync codec, the serving side, and the fetching loop."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from consensus.encoding import decode, encode
from node import sync
from node.sync import (
    BlockSyncer,
    SyncProtocolError,
    decode_blocks,
    decode_status,
    encode_blocks_request,
    encode_status_request,
    follower_committer,
    serve_request,
)

from ._chainkit import Producer, close_chain, make_genesis, open_chain, sign_commit
from ._fakes import FakeTransport


@pytest.fixture
def producer(tmp_path: Path) -> Producer:
    genesis, signers, accounts = make_genesis()
    chain = open_chain(tmp_path / "producer", genesis)
    p = Producer(chain, signers, accounts)
    for i in range(6):
        p.produce((p.transfer(0, accounts[1].address, 1 + i),))
    yield p
    close_chain(chain)


def test_status_request_and_answer(producer: Producer) -> None:
    assert decode_status(serve_request(producer.chain.blocks, encode_status_request())) == (1, 6)


def test_block_range_is_clipped_to_what_is_stored(producer: Producer) -> None:
    raw = serve_request(producer.chain.blocks, encode_blocks_request(5, 50))
    pairs = decode_blocks(raw, 5, 50, 1 << 22)
    assert [p[0] for p in pairs] == [producer.chain.blocks.block_bytes(h)[1] for h in (5, 6)]
    assert decode_blocks(serve_request(producer.chain.blocks, encode_blocks_request(7, 9)),
                         7, 9, 1 << 22) == []


def test_answer_holds_at_most_the_page_size(producer: Producer,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync, "MAX_BLOCKS_PER_RESPONSE", 4)
    pairs = decode(serve_request(producer.chain.blocks, encode_blocks_request(1, 6)))
    assert isinstance(pairs, list) and len(pairs) == 4


@pytest.mark.parametrize("request_bytes", [
    b"", b"\xc1", encode([]), encode([9]), encode([1, 0, 3]), encode([1, 5, 2]),
    encode([0, 1]), b"\x00" * 100, encode([1, 1, 2, 3]),
])
def test_malformed_requests_get_an_error_answer_not_an_exception(
        producer: Producer, request_bytes: bytes) -> None:
    answer = serve_request(producer.chain.blocks, request_bytes)
    with pytest.raises(SyncProtocolError):
        decode_status(answer)
    with pytest.raises(SyncProtocolError):
        decode_blocks(answer, 1, 10, 1 << 20)


def test_answer_with_more_blocks_than_asked_is_refused() -> None:
    too_many = encode([[b"b", b"c"]] * 3)
    with pytest.raises(SyncProtocolError):
        decode_blocks(too_many, 1, 2, 1 << 20)


async def test_syncer_fetches_in_pages_and_bans_a_lying_peer(
        producer: Producer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync, "MAX_BLOCKS_PER_RESPONSE", 4)
    net: dict[str, FakeTransport] = {}
    honest = FakeTransport("honest", net)
    liar = FakeTransport("liar", net)
    me = FakeTransport("me", net)

    async def serve_honest(_peer: str, data: bytes) -> bytes:
        return serve_request(producer.chain.blocks, data)

    async def serve_lies(_peer: str, data: bytes) -> bytes:
        req = decode(data)
        if req == [0]:
            return encode([1, 100])  # claims to be far ahead
        # a well-formed block 1 whose commit has too little power
        block = producer.chain.block(1)
        weak = sign_commit(producer.chain, producer.signers, 1, block.id(), who=[0])
        return encode([[block.encode(), weak.encode()]])

    honest.set_handler(sync.SYNC_PROTOCOL, serve_honest)
    liar.set_handler(sync.SYNC_PROTOCOL, serve_lies)
    follower = open_chain(tmp_path / "follower", producer.chain.genesis)
    try:
        syncer = BlockSyncer(me, lambda: follower.height, follower_committer(follower))
        with trio.fail_after(20):
            await syncer.poll_status()
            assert syncer.best_peer_height() == 100
            applied = await syncer.sync_once()
        assert applied == 6
        assert follower.height == 6
        assert follower.ledger.app_hash == producer.chain.ledger.app_hash
        assert syncer.peers["liar"].banned_until > 0
        assert syncer.best_peer_height() == 6  # the banned liar no longer counts
    finally:
        close_chain(follower)


async def test_syncer_survives_unreachable_and_garbage_peers(tmp_path: Path) -> None:
    net: dict[str, FakeTransport] = {}
    me = FakeTransport("me", net)
    FakeTransport("mute", net)  # no handler: requests fail with PeerUnreachable
    junk = FakeTransport("junk", net)

    async def garbage(_peer: str, _data: bytes) -> bytes:
        return b"\xc1\xc1"

    junk.set_handler(sync.SYNC_PROTOCOL, garbage)
    genesis, _, _ = make_genesis()
    follower = open_chain(tmp_path / "f", genesis)
    try:
        syncer = BlockSyncer(me, lambda: follower.height, follower_committer(follower))
        with trio.fail_after(10):
            await syncer.poll_status()
            assert await syncer.sync_once() == 0
        assert syncer.peers["junk"].banned_until > 0
        assert follower.height == 0
    finally:
        close_chain(follower)
