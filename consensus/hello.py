"""Validator hellos: which network peer speaks for which validator.

Validators are named in genesis by their account keys; the network knows
peers by node keys (libp2p peer ids), a separate key pair as in CometBFT's
``node_key``. To send proposals and votes straight to the other validators,
a validator needs their peer ids. Each validator signs, with its account
key, the statement "the peer ``peer_id`` speaks for the validator with
public key ``pub_key`` on chain ``chain_id``" and hands it to every peer it
connects to (``node/consensus_links.py`` does the exchange).

Why this is sound:

* only the holder of a validator's account key can make such a statement;
* the receiver accepts a hello only from the peer it names: libp2p's Noise
  handshake authenticates the sending peer's id, so a hello replayed by
  anyone else is refused;
* the map is only used to decide *where to send*; every proposal and vote
  is still verified by its own signature when it arrives, however it came.
  A wrong entry can at worst waste a send, never forge a message.

Sans-IO: :class:`ValidatorHello` is the signed statement; :class:`ValidatorBook`
the receiver's map from peer ids to validator addresses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .crypto import PUBKEY_SIZE, SIGNATURE_SIZE, Signer, address_of, verify
from .encoding import DecodeError, decode, encode, expect_bytes, expect_list, expect_text
from .errors import ConsensusMisuseError, InvalidMessageError

HELLO_DOMAIN = b"oml/validator-hello/v1"
#: libp2p peer ids in base58 are about 52 characters; leave room for other key types.
MAX_PEER_ID_BYTES = 128
MAX_HELLO_BYTES = 512


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidatorHello:
    """``pub_key``'s signed claim that network peer ``peer_id`` speaks for it."""

    pub_key: bytes
    peer_id: str
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.pub_key, bytes) or len(self.pub_key) != PUBKEY_SIZE:
            raise ConsensusMisuseError(f"pub_key must be {PUBKEY_SIZE} bytes")
        if not isinstance(self.peer_id, str) or not self.peer_id \
                or len(self.peer_id.encode()) > MAX_PEER_ID_BYTES:
            raise ConsensusMisuseError("peer_id must be a non-empty str of at most "
                                       f"{MAX_PEER_ID_BYTES} bytes")
        if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_SIZE:
            raise ConsensusMisuseError(f"signature must be {SIGNATURE_SIZE} bytes")

    @property
    def address(self) -> bytes:
        return address_of(self.pub_key)

    @staticmethod
    def sign_body(pub_key: bytes, peer_id: str) -> bytes:
        return encode([pub_key, peer_id.encode()])

    @classmethod
    def create(cls, signer: Signer, chain_id: str, peer_id: str) -> ValidatorHello:
        body = cls.sign_body(signer.public_key, peer_id)
        return cls(pub_key=signer.public_key, peer_id=peer_id,
                   signature=signer.sign(HELLO_DOMAIN, chain_id, body))

    def verify(self, chain_id: str, sender: str) -> None:
        """Check the signature, and that ``sender`` (the authenticated peer) is the peer named.

        Raises:
            InvalidMessageError: it names another peer, or the signature is not
                ``pub_key``'s on ``chain_id``.
        """
        if sender != self.peer_id:
            raise InvalidMessageError(f"hello names peer {self.peer_id[-8:]}, "
                                      f"came from {sender[-8:]}")
        if not verify(self.pub_key, HELLO_DOMAIN, chain_id,
                      self.sign_body(self.pub_key, self.peer_id), self.signature):
            raise InvalidMessageError("hello signature does not verify")

    def encode(self) -> bytes:
        return encode([self.pub_key, self.peer_id.encode(), self.signature])

    @classmethod
    def decode(cls, data: bytes) -> ValidatorHello:
        """Raises DecodeError for anything but a well-formed hello."""
        if not isinstance(data, bytes) or len(data) > MAX_HELLO_BYTES:
            raise DecodeError("hello: not bytes, or too large")
        f = expect_list(decode(data, MAX_HELLO_BYTES), 3, what="hello")
        try:
            return cls(pub_key=expect_bytes(f[0], what="hello pub_key", size=PUBKEY_SIZE),
                       peer_id=expect_text(f[1], what="hello peer_id",
                                           max_size=MAX_PEER_ID_BYTES),
                       signature=expect_bytes(f[2], what="hello signature",
                                              size=SIGNATURE_SIZE))
        except ConsensusMisuseError as exc:
            raise DecodeError(f"hello: {exc}") from None


class ValidatorBook:
    """Peer id -> validator address, learnt from verified hellos; one entry per peer.

    Only hellos of current validators are kept (the caller passes the set),
    so the book stays as small as the validator set's peers. Several peers
    may speak for one validator (e.g. after it changed its node key): all
    of them get its messages; an unreachable one just fails its sends.
    """

    def __init__(self, chain_id: str) -> None:
        self.chain_id = chain_id
        self._address_of: dict[str, bytes] = {}

    def learn(self, hello: ValidatorHello, sender: str, validators: Iterable[bytes]) -> bool:
        """Record a hello that came from ``sender``. True if ``sender`` speaks for a validator
        in ``validators`` (addresses) now.

        Raises:
            InvalidMessageError: the hello is forged, or names another peer.
        """
        hello.verify(self.chain_id, sender)
        if hello.address not in set(validators):
            self._address_of.pop(sender, None)
            return False
        self._address_of[sender] = hello.address
        return True

    def address_of(self, peer: str) -> bytes | None:
        return self._address_of.get(peer)

    def peers_for(self, validators: Iterable[bytes], *, exclude: bytes) -> list[str]:
        """Peers that speak for the given validator addresses, except ``exclude`` (ourselves)."""
        wanted = set(validators) - {exclude}
        return sorted(p for p, a in self._address_of.items() if a in wanted)

    def __len__(self) -> int:
        return len(self._address_of)


__all__ = ["HELLO_DOMAIN", "ValidatorBook", "ValidatorHello"]
