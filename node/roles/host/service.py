"""The host role as a daemon service: the gateway, its permissions, rebuttals and funding.

Started by :func:`node.roles.base.build_services` when ``[roles.host]
enabled = true``. It runs, in one nursery:

- the :class:`Permitter` batch loop (permissions from the owner, over
  :class:`OwnerClient` on ``/oml/permission/1``);
- the chain follower whose handler records rebuttals (:class:`Rebutter`),
  and the loop that posts them;
- the :class:`ChannelFunder` (only with a ``fund_budget``);
- the :class:`Flusher` (fsyncs the role's LMDB: answers wait for it with
  ``permit_sync_ms = 0``) and the usage flusher; and, once the engine is loaded (a model can take
  minutes), the HTTP server. Its URL is logged and added to the node's
  ``listen.json`` (``gateway``).

The service reports itself started before the engine loads, so the daemon
does not hold consensus back while a large model loads.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from consensus.crypto import PrivateKey, Signer
from node.config import ConfigError, HostRole
from node.listenfile import add_listen_urls
from node.rpc.methods import Context, Method

from ..cursor import ChainFollower
from .apikeys import ApiKey, KeyRing, UsageBook, load_key_file
from .app import Gateway, Limits
from .durability import Flusher
from .engine import Engine, TransformersEngine
from .funding import ChannelFunder
from .owner_client import OwnerClient
from .permits import PermissionRefused, Permitter
from .proxy import ProxyEngine
from .rebut import Rebutter
from .store import HostStore

if TYPE_CHECKING:
    from ..base import RoleContext

log = logging.getLogger("node.roles.host")

USAGE_FLUSH_S = 1.0


def build_keyring(cfg: HostRole, data_dir: Path) -> KeyRing:
    """The API keys of ``[roles.host]``: inline ``api_keys`` plus ``api_keys_file``.

    Raises:
        ConfigError: the key file is unreadable or malformed.
    """
    from .apikeys import KeyFileError

    keys = [(secret, ApiKey(f"config-{i}", cfg.rate_limit_rpm, cfg.budget_tokens))
            for i, secret in enumerate(cfg.api_keys, 1)]
    if cfg.api_keys_file:
        try:
            keys += load_key_file(data_dir / cfg.api_keys_file,
                                  default_rpm=cfg.rate_limit_rpm,
                                  default_budget=cfg.budget_tokens)
        except KeyFileError as exc:
            raise ConfigError(f"[roles.host] api_keys_file: {exc}") from None
    return KeyRing(keys, require=cfg.require_api_key,
                   anonymous=ApiKey("anonymous", cfg.rate_limit_rpm, cfg.budget_tokens))


async def load_engine(cfg: HostRole, data_dir: Path) -> Engine:
    """The transformers engine on ``model_dir``, or the proxy to ``upstream_url``."""
    if cfg.upstream_url:
        return ProxyEngine(cfg.upstream_url, upstream_model=cfg.upstream_model,
                           api_key=cfg.upstream_api_key)
    return await TransformersEngine.load(data_dir / cfg.model_dir, device=cfg.device,
                                         max_prompt_tokens=cfg.max_prompt_tokens)


class HostService:
    """One node's host gateway. Build with :meth:`from_context`; the daemon runs :meth:`run`."""

    name = "host"

    def __init__(self, *, config: HostRole, data_dir: Path, store: HostStore,
                 flusher: Flusher, permitter: Permitter, follower: ChainFollower,
                 rebutter: Rebutter, funder: ChannelFunder, keys: KeyRing, ledger: Any) -> None:
        self._cfg = config
        self._data_dir = data_dir
        self.store = store
        self.flusher = flusher
        self.permitter = permitter
        self._follower = follower
        self.rebutter = rebutter
        self.funder = funder
        self.keys = keys
        self.usage = UsageBook(store)
        self._ledger = ledger
        self.model_id = config.model_id.encode("utf-8")
        self.model_name = config.served_model_name or config.model_id
        self.urls: list[str] = []
        self.gateway: Gateway | None = None

    @classmethod
    def from_context(cls, ctx: RoleContext) -> HostService:
        cfg = ctx.config.roles.host
        if ctx.txs is None:
            raise ConfigError("[roles.host] needs the node's transaction sender")
        signer = Signer(PrivateKey(ctx.account_seed))
        store = HostStore.open(ctx.role_dir("host"), sync=False)  # the flusher syncs it
        flusher = Flusher(store.flush, interval_s=cfg.permit_sync_ms / 1000)
        model_id = cfg.model_id.encode("utf-8")
        funder = ChannelFunder(store=store, ledger=ctx.backend, txs=ctx.txs, model_id=model_id,
                               host=signer.address, budget=cfg.fund_budget,
                               threshold=cfg.fund_threshold, amount=cfg.fund_amount)

        def on_refused(exc: PermissionRefused) -> None:
            from node.roles.owner.protocol import Refusal

            if exc.code == Refusal.ESCROW_EXHAUSTED:
                funder.wake()

        permitter = Permitter(
            store=store, ledger=ctx.backend, signer=signer, chain_id=ctx.txs.chain_id,
            model_id=model_id, window_s=cfg.batch_window_ms / 1000, on_refused=on_refused,
            flusher=flusher, wait_durable=cfg.permit_sync_ms == 0,
            source=OwnerClient(ctx.transport, owner_peer=cfg.owner_peer,
                               timeout_s=cfg.permission_timeout_ms / 1000))
        follower = ChainFollower(store.db, ctx.chain)
        rebutter = Rebutter(store=store, chain=ctx.chain, txs=ctx.txs, host=signer.address)
        ctx.on_committed(follower.notify)
        ctx.on_committed(rebutter.notify)
        ctx.on_committed(funder.wake)
        return cls(config=cfg, data_dir=ctx.data_dir, store=store, flusher=flusher,
                   permitter=permitter,
                   follower=follower, rebutter=rebutter, funder=funder,
                   keys=build_keyring(cfg, ctx.data_dir), ledger=ctx.backend)

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.permitter.run)
                nursery.start_soon(self._follower.follow, self.rebutter.on_block)
                nursery.start_soon(self.rebutter.run)
                nursery.start_soon(self.funder.run)
                nursery.start_soon(self._flush_usage)
                nursery.start_soon(self.flusher.run)
                task_status.started()
                await self._serve(nursery)
        finally:
            self.usage.flush()
            self.store.flush()
            self.store.close()

    async def _serve(self, nursery: trio.Nursery) -> None:
        from node.rpc.server import serve_app
        from oml.modelio import DeviceError, ModelDirError

        try:
            engine = await load_engine(self._cfg, self._data_dir)
        except (ModelDirError, DeviceError, OSError) as exc:
            # permissions, rebuttals and funding keep running: a claim must still be rebutted
            log.error("gateway not serving: cannot load [roles.host] model_dir: %s", exc)
            return
        self.gateway = Gateway(engine=engine, model_name=self.model_name,
                               permits=self.permitter, keys=self.keys, usage=self.usage,
                               limits=Limits(max_body_bytes=self._cfg.max_body_bytes,
                                             max_new_tokens=self._cfg.max_new_tokens))
        try:
            bound = await nursery.start(functools.partial(serve_app, self.gateway.app(),
                                                          self._cfg.laddr))
            self.urls = [u.rstrip("/") + "/v1" for u in bound]
            log.info("gateway serving %s (%s) on %s", self.model_name,
                     "proxy to " + self._cfg.upstream_url if self._cfg.upstream_url
                     else "in-process model", ", ".join(self.urls))
            add_listen_urls(self._data_dir, gateway=tuple(self.urls))
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await engine.aclose()

    async def _flush_usage(self) -> None:
        while True:
            await trio.sleep(USAGE_FLUSH_S)
            self.usage.flush()

    # ------------------------------------------------------------------ RPC

    def usage_json(self) -> dict[str, Any]:
        return {"model": self.model_name, "gateway": self.urls,
                "keys": {name: u.to_json() for name, u in sorted(self.usage.all().items())}}

    def permissions_json(self) -> dict[str, Any]:
        voucher = self.store.voucher(self.model_id)
        rec = self._ledger.host(self.model_id, self.permitter.host)
        out: dict[str, Any] = {
            "model_id": self.model_id.hex(), "host": self.permitter.host.hex(),
            "permissions": self.store.permit_count(),
            "latest_seq": voucher.count - 1 if voucher.count else None,
            "voucher": voucher.to_json(), "batches": self.permitter.batches,
            "escrow": None, "redeemed_amount": None, "redeemed_count": None,
            "available": self.funder.available(), "funded": self.store.funded(),
            "fund_budget": self._cfg.fund_budget,
            "rebuttals": [r.to_json() for r in self.rebutter.rebuttals()]}
        if rec is not None:
            out.update(escrow=rec.escrow, redeemed_amount=rec.redeemed_amount,
                       redeemed_count=rec.redeemed_count)
        return out

    def rpc_methods(self) -> Sequence[Method]:
        async def gateway_usage(_ctx: Context) -> Any:
            return self.usage_json()

        async def host_permissions(_ctx: Context) -> Any:
            return self.permissions_json()

        return (
            Method("gateway_usage", gateway_usage, (), {
                "type": "object", "description": "model, gateway URLs, and per API key name: "
                "requests, prompt_tokens, completion_tokens, total_tokens, refused"},
                "Usage of this node's host gateway per end-user API key."),
            Method("host_permissions", host_permissions, (), {
                "type": "object", "description": "model_id, host, permissions (stored count), "
                "latest_seq, voucher (cumulative_count, cumulative_amount, signature), "
                "batches, escrow, redeemed_amount, redeemed_count, available, funded, "
                "fund_budget, rebuttals"},
                "The host gateway's permission strings, voucher, fee channel and rebuttals."),
        )


__all__ = ["HostService", "build_keyring", "load_engine"]
