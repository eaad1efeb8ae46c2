"""The one place that imports py-libp2p; everything libp2p-facing goes through here.

Why a choke point: the library's tuning knobs are set here, once, before any
host exists. LIBP2P.md measured that yamux sends a window update on
every read unless ``PY_YAMUX_RELEASE_ON_READ=0`` (half the gossip latency,
+40% stream throughput). The library reads the variable at call time, so
setting it before any host exists is enough; ``setdefault`` leaves an
operator's explicit choice alone. Importing libp2p costs 1.2-1.6 s, which is
why ``net/__init__`` does not import this module eagerly.
"""

from __future__ import annotations

import os

os.environ.setdefault("PY_YAMUX_RELEASE_ON_READ", "0")

from libp2p import new_host
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee
from libp2p.custom_types import TProtocol
from libp2p.exceptions import BaseLibp2pError
from libp2p.identity_utils import create_identity_from_seed
from libp2p.network.config import ConnectionConfig
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo as LibPeerInfo
from libp2p.protocol_muxer.exceptions import (
    MultiselectClientError,
    ProtocolNotSupportedError,
)
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pb.rpc_pb2 import Message as PubsubMessage
from libp2p.pubsub.pubsub import Pubsub
from libp2p.security.noise.io import MAX_PLAINTEXT_LENGTH
from libp2p.stream_muxer.yamux import yamux as _yamux
from libp2p.tools.anyio_service import background_trio_service

# A yamux DATA frame (12-byte header + up to 64 KiB - 12) is 65536 bytes,
# 17 more than one Noise message carries (65535 - 16 bytes of MAC), so
# py-libp2p sends every full frame as two Noise messages, the second of 17
# bytes: twice the encryptions, socket writes and length-prefixed reads.
# Frames that fit one Noise message cut CPU per MB by about 15% on each side
# of a bulk stream (measured with bench/blob.py). The constant is read at
# call time and only bounds what we send, so peers notice nothing.
if _yamux.MAX_MESSAGE_SIZE > MAX_PLAINTEXT_LENGTH:
    _yamux.MAX_MESSAGE_SIZE = MAX_PLAINTEXT_LENGTH

__all__ = [
    "ID",
    "PROTOCOL_ID_V11",
    "BaseLibp2pError",
    "ConnectionConfig",
    "GossipSub",
    "IHost",
    "INetConn",
    "INetStream",
    "INetwork",
    "INotifee",
    "LibPeerInfo",
    "MultiselectClientError",
    "ProtocolNotSupportedError",
    "Pubsub",
    "PubsubMessage",
    "TProtocol",
    "background_trio_service",
    "create_identity_from_seed",
    "new_host",
]
