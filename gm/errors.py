"""One error tree for gm: catch `GMError` for anything this package refuses.

Errors about malformed input also subclass `ValueError`, so callers that only know the standard
library still catch them.
"""

from __future__ import annotations


class GMError(Exception):
    """Base class of every error raised by gm."""


class BackendUnavailable(GMError):
    """The requested SM2 backend cannot be loaded (no libcrypto with SM2, gmssl missing…)."""


class InvalidKey(GMError, ValueError):
    """Key material that does not parse, or is not a valid SM2 key."""


class InvalidSignature(GMError, ValueError):
    """A signature that is not a valid raw r‖s or DER encoding (verification itself returns False)."""


class IntegrityError(GMError):
    """Authentication failed: a tag, hash or signature did not match, so the data was altered."""


class DecryptionError(IntegrityError, ValueError):
    """An SM2 ciphertext that is malformed or whose C3 check failed."""


class EnvelopeError(GMError):
    """Base class for digital-envelope failures."""


class EnvelopeFormatError(EnvelopeError, ValueError):
    """Not an envelope of a version this code reads."""


class EnvelopeIntegrityError(EnvelopeError, IntegrityError):
    """The envelope was tampered with, truncated or reordered."""


class NotARecipient(EnvelopeError):
    """The private key does not match any recipient of the envelope."""


class CertificateError(GMError, ValueError):
    """A certificate that does not parse or is not an SM2 certificate."""
