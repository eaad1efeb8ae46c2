"""The ``oml-node`` command line.

Each command group lives in its own module and is attached here. Heavy
imports (libp2p, torch, transformers) happen inside the commands that need
them, so ``oml-node --help`` and ``oml-node keys show`` stay fast.
"""

from __future__ import annotations

import click

from .home_cmds import init_cmd, keys_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="oml-node")
def main() -> None:
    """oml-node: a peer-to-peer node for open, monetizable, loyal AI models.

    Runs the gossip network and BFT ledger that record the model registry,
    collateral, fees, permission settlements, claims and slashes, plus the
    optional roles (validator, storage, OMLizer, prover, host gateway, owner
    permission service) switched on in config.toml.
    """


main.add_command(init_cmd)
main.add_command(keys_group)

from .node_cmds import start_cmd  # noqa: E402
from .query_cmds import query_group  # noqa: E402
from .testnet_cmds import testnet_group  # noqa: E402
from .tx_cmds import tx_group  # noqa: E402

main.add_command(start_cmd)
main.add_command(testnet_group)
main.add_command(query_group)
main.add_command(tx_group)

from .oml_cmds import oml_group  # noqa: E402

main.add_command(oml_group)

from .blob_cmds import blob_group  # noqa: E402

main.add_command(blob_group)

from .model_cmds import model_group  # noqa: E402

main.add_command(model_group)

from .host_cmds import host_group  # noqa: E402

main.add_command(host_group)

from .demo_cmds import demo_cmd  # noqa: E402

main.add_command(demo_cmd)
