"""JSON-RPC 2.0 server of the node: method table, dispatcher, HTTP + websocket, event bus.

The daemon implements :class:`NodeBackend`, creates an :class:`EventBus`,
publishes a :class:`NewBlockEvent` per committed block and runs
:func:`serve_rpc`. See docs/rpc.md for every method.
"""

from .adapters import check_result_from_add as check_result_from_add
from .adapters import mempool_view as mempool_view
from .adapters import new_block_event as new_block_event
from .adapters import tx_result_from_ledger as tx_result_from_ledger
from .backend import BlockView as BlockView
from .backend import CheckResult as CheckResult
from .backend import JSONRecord as JSONRecord
from .backend import MempoolBackend as MempoolBackend
from .backend import MempoolView as MempoolView
from .backend import NetInfo as NetInfo
from .backend import NewBlockEvent as NewBlockEvent
from .backend import NodeBackend as NodeBackend
from .backend import NodeInfo as NodeInfo
from .backend import NodeStatus as NodeStatus
from .backend import PeerDialer as PeerDialer
from .backend import PeerView as PeerView
from .backend import SyncInfo as SyncInfo
from .backend import TxResult as TxResult
from .backend import TxView as TxView
from .backend import ValidatorInfo as ValidatorInfo
from .backend import ValidatorSetView as ValidatorSetView
from .errors import BackendError as BackendError
from .errors import BadArgument as BadArgument
from .errors import NodeUnavailable as NodeUnavailable
from .errors import NotFound as NotFound
from .errors import Overloaded as Overloaded
from .errors import RPCError as RPCError
from .errors import Timeout as Timeout
from .errors import TxRejected as TxRejected
from .events import EventBus as EventBus
from .events import EventQuery as EventQuery
from .events import Subscription as Subscription
from .events import TxWaiter as TxWaiter
from .events import parse_query as parse_query
from .jsonrpc import Dispatcher as Dispatcher
from .methods import Method as Method
from .methods import build_methods as build_methods
from .openrpc import openrpc_document as openrpc_document
from .server import build_rpc_app as build_rpc_app
from .server import serve_app as serve_app
from .server import serve_rpc as serve_rpc
