"""Role services: optional jobs a node runs beside consensus, switched on in ``[roles.*]``.

Every role is a :class:`~node.roles.base.Service` built by :func:`build_services`
from the config and a :class:`~node.roles.base.RoleContext` (the node's chain,
transport, backend and keys). The daemon starts each as a trio task, adds its
JSON-RPC methods to the one method table, and cancels it at shutdown. Roles
that react to the chain follow it through a durable
:class:`~node.roles.cursor.ChainFollower`, never through the RPC event bus.

Heavy libraries (torch, transformers) are imported inside the roles that need
them, so a validator never loads them.
"""

from .base import RoleContext as RoleContext
from .base import Service as Service
from .base import build_services as build_services
from .cursor import ChainFollower as ChainFollower
from .cursor import CommittedBlock as CommittedBlock
from .cursor import CommittedTx as CommittedTx
from .cursor import RoleDB as RoleDB
