"""The OML ledger: transactions, the deterministic state machine and its LMDB store.

The daemon calls :class:`Ledger` (``open``, ``check_tx``, ``apply_block``,
queries); clients build transactions with :func:`build_tx` and the body
classes; services sign vouchers and permission strings with the helpers
from :mod:`.vouchers`. See ``docs/ledger.md``.
"""

from .apphash import next_app_hash as next_app_hash
from .apphash import write_set_hash as write_set_hash
from .claimhash import CLAIM_DOMAIN as CLAIM_DOMAIN
from .claimhash import claim_commitment as claim_commitment
from .claims import required_claim_bond as required_claim_bond
from .claims import slash_split as slash_split
from .errors import Code as Code
from .errors import GenesisStateError as GenesisStateError
from .errors import InvariantError as InvariantError
from .errors import LedgerError as LedgerError
from .errors import LedgerUsageError as LedgerUsageError
from .errors import TxDecodeError as TxDecodeError
from .errors import TxFailed as TxFailed
from .genesis import AppState as AppState
from .genesis import parse_app_state as parse_app_state
from .ledger import Ledger as Ledger
from .ledger import SupplyBreakdown as SupplyBreakdown
from .params import Params as Params
from .records import Account as Account
from .records import Claim as Claim
from .records import ClaimStatus as ClaimStatus
from .records import HostRecord as HostRecord
from .records import HostStatus as HostStatus
from .records import ItemState as ItemState
from .records import Model as Model
from .records import RoleRecord as RoleRecord
from .refs import referenced_blobs as referenced_blobs
from .results import BlockResult as BlockResult
from .results import TxCheck as TxCheck
from .results import TxResult as TxResult
from .state import Event as Event
from .txs import MAX_TX_BYTES as MAX_TX_BYTES
from .txs import TX_DOMAIN as TX_DOMAIN
from .txs import BeginWithdrawalBody as BeginWithdrawalBody
from .txs import CommitClaimBody as CommitClaimBody
from .txs import CommitOmlizationBody as CommitOmlizationBody
from .txs import CompleteWithdrawalBody as CompleteWithdrawalBody
from .txs import FundChannelBody as FundChannelBody
from .txs import Kind as Kind
from .txs import OpenClaimBody as OpenClaimBody
from .txs import RebutBody as RebutBody
from .txs import RedeemBody as RedeemBody
from .txs import RegisterModelBody as RegisterModelBody
from .txs import RegisterRoleBody as RegisterRoleBody
from .txs import RequestAccessBody as RequestAccessBody
from .txs import RevealBody as RevealBody
from .txs import Role as Role
from .txs import TransferBody as TransferBody
from .txs import Tx as Tx
from .txs import UnregisterRoleBody as UnregisterRoleBody
from .txs import UpdateModelBody as UpdateModelBody
from .txs import build_tx as build_tx
from .txs import decode_tx as decode_tx
from .txs import tx_hash as tx_hash
from .vouchers import PERMISSION_DOMAIN as PERMISSION_DOMAIN
from .vouchers import VOUCHER_DOMAIN as VOUCHER_DOMAIN
from .vouchers import query_hash as query_hash
from .vouchers import sign_permission as sign_permission
from .vouchers import sign_voucher as sign_voucher
from .vouchers import verify_permission as verify_permission
from .vouchers import verify_voucher as verify_voucher
