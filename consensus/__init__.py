"""Tendermint-style BFT agreement on ordered blocks of opaque transactions.

The package is sans-IO: the core takes events and returns actions. It also
holds the canonical encoding and the signing primitives every other package
builds on, because consensus sits underneath them all and may import no
other project package.
"""

# --- sans-IO core, events/actions, WAL interface (consensus-core helper) ---
from .app import Application as Application

# --- consensus core types, core and simulator (consensus-core helper) ---
from .block import Block as Block
from .block import Commit as Commit
from .block import Header as Header
from .block import commit_hash as commit_hash
from .blockstore import BlockHashMismatchError as BlockHashMismatchError
from .blockstore import BlockNotFoundError as BlockNotFoundError
from .blockstore import BlockStore as BlockStore
from .blockstore import BlockStoreCorruptError as BlockStoreCorruptError
from .blockstore import BlockStoreError as BlockStoreError
from .blockstore import BlockStoreUsageError as BlockStoreUsageError
from .catchup import BlockRequest as BlockRequest
from .catchup import CatchUp as CatchUp
from .catchup import Rejection as Rejection
from .catchup import SyncBlockError as SyncBlockError
from .catchup import SyncFault as SyncFault
from .catchup import SyncResult as SyncResult
from .catchup import VerifiedBlock as VerifiedBlock
from .catchup import verify_synced_block as verify_synced_block
from .core import Core as Core
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
from .errors import ConsensusError as ConsensusError
from .errors import ConsensusMisuseError as ConsensusMisuseError
from .errors import InvalidBlockError as InvalidBlockError
from .errors import InvalidCommitError as InvalidCommitError
from .errors import InvalidEvidenceError as InvalidEvidenceError
from .errors import InvalidMessageError as InvalidMessageError
from .errors import InvariantError as InvariantError
from .events import Action as Action
from .events import Broadcast as Broadcast
from .events import CommitBlock as CommitBlock
from .events import CommittedBlockReceived as CommittedBlockReceived
from .events import Event as Event
from .events import Persist as Persist
from .events import ProposalReceived as ProposalReceived
from .events import ReportEvidence as ReportEvidence
from .events import RequestSync as RequestSync
from .events import ScheduleTimeout as ScheduleTimeout
from .events import Start as Start
from .events import Step as Step
from .events import TimeoutFired as TimeoutFired
from .events import TxsAvailable as TxsAvailable
from .events import VoteReceived as VoteReceived
from .events import WaitForTxs as WaitForTxs
from .evidence import DuplicateVoteEvidence as DuplicateVoteEvidence
from .memwal import MemWAL as MemWAL
from .merkle import merkle_root as merkle_root
from .merkle import txs_root as txs_root
from .messages import Message as Message
from .messages import ProposalMessage as ProposalMessage
from .messages import VoteMessage as VoteMessage
from .messages import decode_message as decode_message
from .messages import encode_message as encode_message
from .state import ChainState as ChainState
from .state import ConsensusParams as ConsensusParams
from .validators import Validator as Validator
from .validators import ValidatorSet as ValidatorSet
from .validators import verify_commit as verify_commit
from .vote import NIL as NIL
from .vote import Proposal as Proposal
from .vote import Vote as Vote
from .vote import VoteType as VoteType
from .wal import FileWAL as FileWAL
from .wal import WALCorruptError as WALCorruptError
from .wal import WALError as WALError
from .wal import WALLockedError as WALLockedError
from .wal import WALRepair as WALRepair
from .wal import WALUsageError as WALUsageError
from .wal_api import WAL as WAL
from .wal_api import event_record as event_record
from .wal_api import record_event as record_event
from .wal_api import record_height as record_height
