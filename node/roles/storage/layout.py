"""Where a node keeps its blobs: one place, shared by the daemon and the CLI.

The CLI writes blobs straight into the store (``blob put`` of a 20 GB folder
must not travel through JSON-RPC) while the daemon serves them; LMDB lets
both processes open the same index safely.
"""

from __future__ import annotations

from pathlib import Path


def store_root(data_dir: Path) -> Path:
    """The blob store under a node's data directory."""
    return data_dir / "roles" / "storage" / "blobs"


def role_root(data_dir: Path) -> Path:
    """The storage role's own state (its chain cursor, replication records)."""
    return data_dir / "roles" / "storage" / "state"
