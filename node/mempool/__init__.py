"""The transaction pool and the helpers that gossip its transactions in batches."""

from .batch import BATCH_VERSION as BATCH_VERSION
from .batch import BatchDecodeError as BatchDecodeError
from .batch import BatchError as BatchError
from .batch import GossipBatcher as GossipBatcher
from .batch import batch_size as batch_size
from .batch import decode_batch as decode_batch
from .batch import encode_batch as encode_batch
from .pool import CODE_DUPLICATE as CODE_DUPLICATE
from .pool import CODE_FULL as CODE_FULL
from .pool import CODE_OK as CODE_OK
from .pool import CODE_OVERSPENT as CODE_OVERSPENT
from .pool import CODE_SENDER_FULL as CODE_SENDER_FULL
from .pool import CODE_TOO_LARGE as CODE_TOO_LARGE
from .pool import AddResult as AddResult
from .pool import AddStatus as AddStatus
from .pool import CheckFn as CheckFn
from .pool import CheckOutcome as CheckOutcome
from .pool import Mempool as Mempool
from .pool import MempoolError as MempoolError
from .pool import NextNonceFn as NextNonceFn
from .pool import UpdateReport as UpdateReport
from .pool import tx_hash as tx_hash
