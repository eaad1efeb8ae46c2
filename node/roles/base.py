"""The one shape every role service has, and the table that builds them from config.

Wiring is data: the daemon hands one :class:`RoleContext` to
:func:`build_services` and gets back the services to start; it knows no role
by name. A role needs nothing from the daemon beyond the context, so a test can
build one around a fake chain and transport that implement the same Protocols.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import trio

from node.config import Config, ConfigError

if TYPE_CHECKING:
    from node.rpc.methods import Method

log = logging.getLogger("node.roles")


class Service(Protocol):
    """A role's long-running task plus the JSON-RPC methods it adds."""

    name: str

    def rpc_methods(self) -> Sequence[Method]:
        """Methods to add to the node's method table (names must not clash)."""
        ...

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Serve until cancelled; call ``task_status.started()`` once ready to answer RPC."""
        ...


@dataclass(frozen=True)
class RoleContext:
    """What a role may use of its node. Passed in, never read from a global."""

    config: Config
    data_dir: Path
    """The node's data directory; each role keeps its files under ``data_dir/roles/``."""
    account_seed: bytes
    """The node's Ed25519 account seed (signs the role's transactions, opens sealed blobs)."""
    account_pub: bytes
    chain: Any
    """A :class:`node.roles.cursor.ChainView` (the daemon passes its ``Chain``)."""
    transport: Any
    """The node's :class:`net.Transport`."""
    backend: Any
    """The node's RPC backend (ledger queries, ``broadcast_tx``)."""
    on_committed: Callable[[Callable[[], None]], None]
    """Register a callback run (in the trio thread) after every committed block."""
    txs: Any = None
    """The node's :class:`node.roles.txsender.TxSender` (one nonce sequence per account)."""

    def role_dir(self, name: str) -> Path:
        path = self.data_dir / "roles" / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def build_services(ctx: RoleContext) -> list[Service]:
    """The services switched on in ``[roles.*]``, in start order (storage first: others use it)."""
    roles = ctx.config.roles
    services: list[Service] = []
    storage = None
    if roles.omlizer.enabled and not roles.storage.enabled:
        raise ConfigError("[roles.omlizer] enabled = true needs [roles.storage] enabled = true: "
                          "the OMLizer fetches base models and delivers packages as blobs")
    if roles.storage.enabled:
        from .storage.service import StorageService

        storage = StorageService.from_context(ctx)
        services.append(storage)
    if roles.owner.enabled:
        from .owner.service import OwnerService

        services.append(OwnerService.from_context(ctx))
    if roles.omlizer.enabled:
        from .omlizer.service import OmlizerService

        services.append(OmlizerService.from_context(ctx, storage))
    if roles.prover.enabled:
        from .prover.service import ProverService

        services.append(ProverService.from_context(ctx))
    if roles.host.enabled:
        from .host.service import HostService

        services.append(HostService.from_context(ctx))
    return services


__all__ = ["RoleContext", "Service", "build_services"]
