"""The gateway's :class:`PermissionSource` over libp2p: ``/oml/permission/1`` to the owner.

Which peer is the owner: ``[roles.host] owner_peer`` when set (a peer id, or
a ``/ip4/.../p2p/ID`` multiaddr dialled on first use); otherwise every
connected peer is asked in turn, the one that answers is remembered, and a
peer that answers ``NOT_OWNER``, does not speak the protocol, or cannot be
reached is skipped for the next. A typed refusal from the owner ends the
search: it is the owner's answer.
"""

from __future__ import annotations

import logging
from typing import Any

from net import ERR_UNSUPPORTED, NetError, RemoteError
from node.roles.owner.protocol import (
    PROTOCOL,
    PermissionGrant,
    PermissionProtocolError,
    PermissionRequest,
    Refusal,
    decode_grant,
    encode_request,
)

from .permits import PermissionRefused

log = logging.getLogger("node.roles.host")


class OwnerClient:
    """Asks the model's owner node for permission strings."""

    def __init__(self, transport: Any, *, owner_peer: str = "", timeout_s: float = 10.0
                 ) -> None:
        self._transport = transport
        self._configured = owner_peer
        self._owner: str | None = None
        if owner_peer and not owner_peer.startswith("/"):
            self._owner = owner_peer
        self._timeout = timeout_s

    @property
    def owner(self) -> str | None:
        """The peer that last answered as owner (or the configured one)."""
        return self._owner

    async def _candidates(self) -> list[str]:
        if self._configured:
            if self._owner is None:  # a multiaddr: dial it once
                try:
                    self._owner = await self._transport.connect(self._configured)
                except NetError as exc:
                    raise PermissionRefused(None, f"cannot reach owner_peer "
                                                  f"{self._configured}: {exc}") from None
            return [self._owner]
        peers = [p.peer_id for p in self._transport.connected_peers()]
        if self._owner in peers:
            peers.remove(self._owner)
            peers.insert(0, self._owner)
        return peers

    async def request(self, req: PermissionRequest) -> PermissionGrant:
        data = encode_request(req)
        tried: list[str] = []
        for peer in await self._candidates():
            try:
                raw = await self._transport.request(peer, PROTOCOL, data, timeout=self._timeout)
            except RemoteError as exc:
                if exc.code >= 100 and exc.code != Refusal.NOT_OWNER:
                    self._owner = peer
                    raise PermissionRefused(exc.code, exc.message) from None
                if exc.code not in (Refusal.NOT_OWNER, ERR_UNSUPPORTED):
                    log.info("permission request to %s failed: %s", peer, exc)
                tried.append(f"{peer[-8:]}: {exc.message or exc.code}")
                if peer == self._owner and not self._configured:
                    self._owner = None
                continue
            except NetError as exc:
                tried.append(f"{peer[-8:]}: {exc}")
                continue
            try:
                grant = decode_grant(raw, len(req.query_hashes))
            except PermissionProtocolError as exc:
                raise PermissionRefused(None, f"owner {peer} sent a malformed grant: "
                                              f"{exc}") from None
            self._owner = peer
            return grant
        detail = "; ".join(tried) if tried else "no peers connected"
        raise PermissionRefused(None, f"no owner of this model answered ({detail})")


__all__ = ["OwnerClient"]
