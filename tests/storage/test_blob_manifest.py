"""Manifests: canonical round trip, blob id commitments, Merkle root vectors, bad input."""

from __future__ import annotations

import hashlib

import msgpack
import pytest

from consensus.encoding import encode
from node.roles.storage.errors import BadManifest
from node.roles.storage.manifest import (
    BLOB_ID_DOMAIN,
    CHUNK_SIZE,
    KIND_DIR,
    KIND_FILE,
    MAX_CHUNK_SIZE,
    MAX_CHUNKS,
    MIN_CHUNK_SIZE,
    Manifest,
    chunk_hash,
    merkle_root,
)

H = hashlib.sha256


def _sha(data: bytes) -> bytes:
    return H(data).digest()


def make(size: int = 150_000, chunk_size: int = MIN_CHUNK_SIZE, kind: int = KIND_FILE,
         encrypted: bool = False) -> Manifest:
    n = -(-size // chunk_size)
    return Manifest(size=size, chunk_size=chunk_size, kind=kind, encrypted=encrypted,
                    chunk_hashes=tuple(_sha(bytes([i])) for i in range(n)))


# --- Merkle root ------------------------------------------------------------

def test_merkle_root_hand_computed_small_trees() -> None:
    a, b, c, d, e = (_sha(bytes([i])) for i in range(5))
    leaf = {x: _sha(b"\x00" + x) for x in (a, b, c, d, e)}

    def node(left: bytes, right: bytes) -> bytes:
        return _sha(b"\x01" + left + right)

    assert merkle_root([]) == _sha(b"")
    assert merkle_root([a]) == leaf[a]
    assert merkle_root([a, b]) == node(leaf[a], leaf[b])
    # RFC 6962: split at the largest power of two below n; the odd leaf is not duplicated
    assert merkle_root([a, b, c]) == node(node(leaf[a], leaf[b]), leaf[c])
    ab_cd = node(node(leaf[a], leaf[b]), node(leaf[c], leaf[d]))
    assert merkle_root([a, b, c, d]) == ab_cd
    assert merkle_root([a, b, c, d, e]) == node(ab_cd, leaf[e])


# Certificate Transparency's reference vectors (RFC 6962 test data): roots of
# the first n of these eight leaf inputs.
CT_LEAVES = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43",
             bytes(range(0x50, 0x58)), bytes(range(0x60, 0x70))]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


@pytest.mark.parametrize("n", range(1, 9))
def test_merkle_root_matches_rfc6962_reference_vectors(n: int) -> None:
    assert merkle_root(CT_LEAVES[:n]).hex() == CT_ROOTS[n - 1]


def _recursive_mth(items: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 as written, to check the level-by-level version."""
    if not items:
        return _sha(b"")
    if len(items) == 1:
        return _sha(b"\x00" + items[0])
    k = 1
    while k * 2 < len(items):
        k *= 2
    return _sha(b"\x01" + _recursive_mth(items[:k]) + _recursive_mth(items[k:]))


def test_merkle_root_equals_the_recursive_definition() -> None:
    hashes = [_sha(i.to_bytes(2, "big")) for i in range(70)]
    for n in range(71):
        assert merkle_root(hashes[:n]) == _recursive_mth(hashes[:n]), n


# --- round trip and the blob id ---------------------------------------------

@pytest.mark.parametrize("size", [0, 1, MIN_CHUNK_SIZE - 1, MIN_CHUNK_SIZE,
                                  MIN_CHUNK_SIZE + 1, 5 * MIN_CHUNK_SIZE + 3])
def test_round_trip_is_canonical(size: int) -> None:
    m = make(size, kind=KIND_DIR, encrypted=True)
    data = m.encode()
    again = Manifest.decode(data)
    assert again == m
    assert again.encode() == data
    assert again.blob_id == m.blob_id


def test_blob_id_is_the_documented_hash() -> None:
    m = make(200_000)
    header = encode([m.size, m.chunk_size, m.kind, 0, merkle_root(m.chunk_hashes)])
    assert m.blob_id == _sha(BLOB_ID_DOMAIN + header)
    assert len(m.blob_id) == 32


def test_blob_id_commits_to_every_field() -> None:
    base = make(3 * MIN_CHUNK_SIZE)
    hashes = base.chunk_hashes
    variants = [
        make(3 * MIN_CHUNK_SIZE - 1),
        Manifest(size=base.size, chunk_size=base.chunk_size, kind=KIND_DIR, encrypted=False,
                 chunk_hashes=hashes),
        Manifest(size=base.size, chunk_size=base.chunk_size, kind=KIND_FILE, encrypted=True,
                 chunk_hashes=hashes),
        Manifest(size=base.size, chunk_size=base.chunk_size, kind=KIND_FILE, encrypted=False,
                 chunk_hashes=(hashes[1], hashes[0], hashes[2])),
        Manifest(size=base.size, chunk_size=2 * MIN_CHUNK_SIZE, kind=KIND_FILE,
                 encrypted=False, chunk_hashes=hashes[:2]),
    ]
    ids = {v.blob_id for v in variants} | {base.blob_id}
    assert len(ids) == len(variants) + 1


def test_chunk_len_last_chunk_short() -> None:
    m = make(2 * MIN_CHUNK_SIZE + 10)
    assert [m.chunk_len(i) for i in range(3)] == [MIN_CHUNK_SIZE, MIN_CHUNK_SIZE, 10]
    with pytest.raises(IndexError):
        m.chunk_len(3)
    with pytest.raises(IndexError):
        m.chunk_len(-1)


def test_chunk_hash_is_sha256() -> None:
    assert chunk_hash(b"abc") == _sha(b"abc")


def test_largest_manifest_fits_its_limit() -> None:
    m = Manifest(size=MAX_CHUNKS * MAX_CHUNK_SIZE, chunk_size=MAX_CHUNK_SIZE, kind=KIND_FILE,
                 encrypted=False, chunk_hashes=(b"\x01" * 32,) * MAX_CHUNKS)
    assert Manifest.decode(m.encode()) == m


# --- invalid manifests --------------------------------------------------------

GOOD = [150_000, MIN_CHUNK_SIZE, 0, 0, [b"\x11" * 32, b"\x22" * 32, b"\x33" * 32]]


def _with(index: int, value: object) -> bytes:
    fields = list(GOOD)
    fields[index] = value
    return msgpack.packb(fields, use_bin_type=True)


BAD_ENCODINGS = {
    "empty": b"",
    "not msgpack": b"\xc1",
    "trailing bytes": encode(GOOD) + b"\x00",
    "map": msgpack.packb({"size": 1}, use_bin_type=True),
    "four fields": msgpack.packb(GOOD[:4], use_bin_type=True),
    "six fields": msgpack.packb([*GOOD, 0], use_bin_type=True),
    # size 1 written as a uint16 instead of a positive fixint
    "non-minimal int": b"\x95\xcd\x00\x01" + encode([1, MIN_CHUNK_SIZE, 0, 0, [b"\x11" * 32]])[2:],
    "negative size": _with(0, -1),
    "string size": _with(0, "150000"),
    "chunk size not a power of two": _with(1, MIN_CHUNK_SIZE + 1),
    "chunk size too small": _with(1, MIN_CHUNK_SIZE // 2),
    "chunk size too big": _with(1, MAX_CHUNK_SIZE * 2),
    "unknown kind": _with(2, 2),
    "encrypted 2": _with(3, 2),
    "encrypted as bool": _with(3, True),
    "too few hashes": _with(4, GOOD[4][:2]),
    "too many hashes": _with(4, [*GOOD[4], b"\x44" * 32]),
    "short hash": _with(4, [b"\x11" * 32, b"\x22" * 31, b"\x33" * 32]),
    "string hash": _with(4, ["x" * 32, b"\x22" * 32, b"\x33" * 32]),
    "hashes not a list": _with(4, b"\x11" * 96),
    "float size": _with(0, 1.5),
    "nil kind": _with(2, None),
    "over the chunk limit": _with(4, [b"\x11" * 32] * (MAX_CHUNKS + 1)),
}


@pytest.mark.parametrize("name", sorted(BAD_ENCODINGS))
def test_malformed_manifests_raise_bad_manifest(name: str) -> None:
    with pytest.raises(BadManifest):
        Manifest.decode(BAD_ENCODINGS[name])


def test_good_fixture_decodes() -> None:
    """Control: the base the bad cases are derived from is itself valid."""
    assert Manifest.decode(encode(GOOD)).size == 150_000


def test_decode_refuses_oversized_input_before_parsing() -> None:
    with pytest.raises(BadManifest, match="exceeds limit"):
        Manifest.decode(b"\x00" * (3 << 20))


@pytest.mark.parametrize("fields", [
    {"size": -1},
    {"size": True},
    {"chunk_size": 3 * MIN_CHUNK_SIZE},
    {"chunk_size": CHUNK_SIZE * 8},
    {"kind": 7},
    {"encrypted": 1},
    {"chunk_hashes": [b"\x00" * 32, b"\x00" * 32, b"\x00" * 32]},
    {"chunk_hashes": (b"\x00" * 32,)},
    {"chunk_hashes": (b"\x00" * 32, b"\x00" * 32, "x" * 32)},
    {"size": MAX_CHUNKS * MIN_CHUNK_SIZE + 1, "chunk_hashes": ()},
])
def test_constructor_rejects_invalid_fields(fields: dict[str, object]) -> None:
    base: dict[str, object] = {"size": 150_000, "chunk_size": MIN_CHUNK_SIZE, "kind": KIND_FILE,
                               "encrypted": False, "chunk_hashes": (b"\x00" * 32,) * 3}
    base.update(fields)
    with pytest.raises(BadManifest):
        Manifest(**base)  # type: ignore[arg-type]
