"""Typed errors of the OML package format.

Every failure names the part of the package that failed (``part``), so an
OMLizer, host or storage peer can say *what* was wrong with a package it was
handed, and a caller can tell its own misuse (:class:`PackageInputError`)
from a package that is broken or tampered with (every other subclass).
"""

from __future__ import annotations


class PackageError(Exception):
    """Base class: something is wrong with an OML package or how it was built.

    Attributes:
        part: which part failed: ``"input"``, ``"manifest"``, ``"signature"``,
            ``"weights"``, ``"files"``, ``"sidecar"`` or ``"commitment"``.
    """

    part = "package"

    def __init__(self, message: str) -> None:
        super().__init__(f"{self.part}: {message}")
        self.detail = message


class PackageInputError(PackageError, ValueError):
    """The caller passed bad arguments (our misuse, not a bad package)."""

    part = "input"


class ManifestError(PackageError):
    """manifest.json is missing, not JSON, or has missing/extra/ill-typed fields."""

    part = "manifest"


class SignatureError(PackageError):
    """The OMLizer signature does not verify, or was made by an unexpected key."""

    part = "signature"


class WeightsMismatch(PackageError):
    """The package's weights do not hash to the manifest's ``weights_hash``."""

    part = "weights"


class FileMismatch(PackageError):
    """A package file is missing, extra, or does not match its manifest hash."""

    part = "files"


class SidecarError(PackageError):
    """A sealed sidecar is malformed, sealed to another key, or does not decrypt."""

    part = "sidecar"


class CommitmentMismatch(PackageError):
    """Opened secrets do not reproduce the manifest's ``fp_root``/``fp_count``."""

    part = "commitment"
