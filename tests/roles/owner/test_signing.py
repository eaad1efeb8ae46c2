"""The fast batch signer produces exactly the ledger's permission strings."""

from __future__ import annotations

import pytest

from consensus.crypto import PrivateKey, sign_bytes
from node.ledger.vouchers import (
    PERMISSION_DOMAIN,
    permission_body,
    query_hash,
    sign_permission,
    verify_permission,
)
from node.roles.owner.signing import PermissionSigner

KEY = PrivateKey(b"\x07" * 32)
U64 = 2**64 - 1


@pytest.mark.parametrize("first_seq", [0, 1, 126, 127, 128, 255, 256, 65_535, 2**32 - 1,
                                       2**32, U64 - 3])
@pytest.mark.parametrize("height", [0, 1, 200, 70_000, U64])
def test_sign_bytes_match_the_ledger_encoding(first_seq: int, height: int) -> None:
    signer = PermissionSigner(KEY.seed, "chain-x")
    hashes = [bytes([i]) * 32 for i in range(4)]
    for model_id in (b"m", b"x" * 64):
        got = signer.sign_bytes_batch(model_id, b"h" * 20, first_seq, hashes, height)
        want = [sign_bytes(PERMISSION_DOMAIN, "chain-x",
                           permission_body(model_id, b"h" * 20, first_seq + i, q, height))
                for i, q in enumerate(hashes)]
        assert got == want


def test_signatures_verify_and_equal_the_library_signer() -> None:
    signer = PermissionSigner(KEY.seed, "chain-y")
    assert signer.public_key == KEY.public_key
    qhash = bytes(range(32))
    (sig,) = signer.sign_batch(b"model", b"h" * 20, 9, [qhash], 77)
    assert verify_permission(KEY.public_key, "chain-y", b"model", b"h" * 20, 9, qhash, sig,
                             issued_height=77)
    assert not verify_permission(KEY.public_key, "chain-y", b"model", b"h" * 20, 10, qhash,
                                 sig, issued_height=77)
    # Ed25519 is deterministic: the library's signer gives the same bytes for the same body
    body_sig = KEY.sign(PERMISSION_DOMAIN, "chain-y",
                        permission_body(b"model", b"h" * 20, 9, qhash, 77))
    assert sig == body_sig
    assert sign_permission(KEY, "chain-y", b"model", b"h" * 20, 9, "q", issued_height=1) == \
        signer.sign_batch(b"model", b"h" * 20, 9,
                          [query_hash("q")], 1)[0]


def test_seqs_past_u64_are_refused() -> None:
    signer = PermissionSigner(KEY.seed, "c")
    with pytest.raises(ValueError):
        signer.sign_bytes_batch(b"m", b"h" * 20, U64, [b"\x00" * 32] * 2, 1)
