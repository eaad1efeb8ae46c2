"""libp2p transport for oml-node: identity, gossip topics, request/response, bulk streams.

Knows nothing of the ledger's meaning; it moves bytes between peers.
Importing ``net`` does not import libp2p (1.2-1.6 s and ~85 MB): the
config, errors, value types and :func:`peer_id_from_seed` load eagerly, and
``open_transport`` / ``Transport`` load libp2p on first access.
"""

from typing import TYPE_CHECKING, Any

from .config import NetConfig as NetConfig
from .config import NetConfigError as NetConfigError
from .config import parse_peer_addr as parse_peer_addr
from .errors import HandlerError as HandlerError
from .errors import ListenFailed as ListenFailed
from .errors import MessageTooLarge as MessageTooLarge
from .errors import NetError as NetError
from .errors import NetUsageError as NetUsageError
from .errors import PeerUnreachable as PeerUnreachable
from .errors import ProtocolViolation as ProtocolViolation
from .errors import RemoteError as RemoteError
from .errors import RequestTimeout as RequestTimeout
from .errors import StreamClosed as StreamClosed
from .framing import ERR_BAD_FRAME as ERR_BAD_FRAME
from .framing import ERR_BUSY as ERR_BUSY
from .framing import ERR_HANDLER_FAILED as ERR_HANDLER_FAILED
from .framing import ERR_HANDLER_TIMEOUT as ERR_HANDLER_TIMEOUT
from .framing import ERR_RESPONSE_TOO_LARGE as ERR_RESPONSE_TOO_LARGE
from .framing import ERR_UNSUPPORTED as ERR_UNSUPPORTED
from .identity import peer_id_from_seed as peer_id_from_seed
from .types import NetStats as NetStats
from .types import PeerInfo as PeerInfo
from .types import ProtocolStats as ProtocolStats
from .types import TopicStats as TopicStats

if TYPE_CHECKING:
    from .streams import FrameStream as FrameStream
    from .streams import StreamHandler as StreamHandler
    from .transport import Transport as Transport
    from .transport import open_transport as open_transport

_LAZY = {"open_transport", "Transport"}
_LAZY_STREAMS = {"FrameStream", "StreamHandler"}


def __getattr__(name: str) -> Any:
    # PEP 562: import libp2p only when the transport itself is wanted.
    if name in _LAZY:
        from . import transport

        return getattr(transport, name)
    if name in _LAZY_STREAMS:
        from . import streams

        return getattr(streams, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
