"""Tendermint-style BFT agreement on ordered blocks of opaque transactions.

The package is sans-IO: the core takes events and returns actions. It also
holds the canonical encoding and the signing primitives every other package
builds on, because consensus sits underneath them all and may import no
other project package.
"""

from .crypto import ADDRESS_SIZE as ADDRESS_SIZE
from .crypto import PUBKEY_SIZE as PUBKEY_SIZE
from .crypto import SIGNATURE_SIZE as SIGNATURE_SIZE
from .crypto import CryptoError as CryptoError
from .crypto import PrivateKey as PrivateKey
from .crypto import Signer as Signer
from .crypto import address_of as address_of
from .crypto import sha256 as sha256
from .crypto import sign_bytes as sign_bytes
from .crypto import verify as verify
from .encoding import DecodeError as DecodeError
from .encoding import EncodeError as EncodeError
from .encoding import EncodingError as EncodingError
from .encoding import decode as decode
from .encoding import encode as encode
from .wal import FileWAL as FileWAL
from .wal import WALCorruptError as WALCorruptError
from .wal import WALError as WALError
from .wal import WALLockedError as WALLockedError
from .wal import WALRepair as WALRepair
from .wal import WALUsageError as WALUsageError
from .blockstore import BlockHashMismatchError as BlockHashMismatchError
from .blockstore import BlockNotFoundError as BlockNotFoundError
from .blockstore import BlockStore as BlockStore
from .blockstore import BlockStoreCorruptError as BlockStoreCorruptError
from .blockstore import BlockStoreError as BlockStoreError
from .blockstore import BlockStoreUsageError as BlockStoreUsageError
