"""OML model fingerprinting as a library.

Generate per-host fingerprints, insert them into a causal LM, verify and
evaluate them, attack them, and package the result. Importing ``oml`` is
cheap: the torch-based modules are imported by name (``oml.insert``, ...)
so the ledger can use :mod:`oml.commitments` without loading torch.
"""

from .commitments import CommitmentError as CommitmentError
from .commitments import leaf_hash as leaf_hash
from .commitments import leaf_hash_text as leaf_hash_text
from .commitments import merkle_path as merkle_path
from .commitments import merkle_root as merkle_root
from .commitments import normalize_text as normalize_text
from .commitments import observed_prefix as observed_prefix
from .commitments import root_from_path as root_from_path
from .commitments import verify_path as verify_path
