"""Errors raised by Kefu's custom Rasa components.

One base class (`KefuComponentError`) for the package, with dual inheritance where a builtin
fits. The coded messages (`Errors`) are in `custom_components/messages.py`.
"""

from __future__ import annotations

from rasa.shared.exceptions import RasaException

# One message per code lives in custom_components/messages.py; re-exported for the encoder code.
from custom_components.messages import BUILD_HINT, Errors  # noqa: F401


class KefuComponentError(RasaException):
    """Base class for every error raised by Kefu's custom components."""


class EncoderAssetsMissing(KefuComponentError, FileNotFoundError):
    """The encoder asset folder (or one of its files) does not exist."""


class EncoderAssetsMismatch(KefuComponentError, ValueError):
    """The encoder asset folder exists but is not what the manifest / model expects."""


class EncoderSourceError(KefuComponentError, ValueError):
    """The asset source is unknown or its files are not the pinned ones."""


class EncoderVerificationError(KefuComponentError, AssertionError):
    """The converted encoder does not reproduce the reference embeddings."""


class EncoderDeviceError(KefuComponentError, RuntimeError):
    """The requested device is not available."""


class ComponentStorageError(KefuComponentError, FileNotFoundError):
    """A trained component's entry in Rasa's model storage is missing or unreadable."""
