"""libp2p transport for oml-node: identity, gossip topics, request/response.

Knows nothing of the ledger's meaning; it moves bytes between peers.
Importing ``net`` does not import libp2p; the host module does.
"""

from .identity import peer_id_from_seed as peer_id_from_seed
