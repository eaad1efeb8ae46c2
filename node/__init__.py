"""The oml-node daemon: config, keys, ledger, mempool, RPC, roles and CLI."""
