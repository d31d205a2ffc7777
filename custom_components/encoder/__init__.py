"""Multilingual Transformer encoder shared by Kefu's NLU components.

Public API:
    get_runtime(folder, device="auto", mixed_precision=False) -> EncoderRuntime
        The process-wide loaded encoder for a folder; `.encode(texts, max_length, batch_size,
        buckets, layer)` returns one `EncodedText` (piece offsets, hidden states, sentence
        vector) per text. `.model` is the TFBertModel, `.tokenizer_for(n)` the fast tokenizer.
    resolve_model_path(name_or_path) -> Path     registered name -> cache folder
    verify_folder(folder) -> manifest dict        hash check, raises KefuComponentError
    align_pieces_to_tokens / pool_pieces_to_tokens  sub-word pieces -> Rasa tokens
"""

from custom_components.encoder.alignment import (
    align_pieces_to_tokens,
    overlap_matrix,
    pool_pieces_to_tokens,
)
from custom_components.encoder.assets import (
    DEFAULT_MODEL,
    SOURCES,
    cache_root,
    read_manifest,
    registered_name,
    resolve_model_path,
    verify_folder,
)
from custom_components.encoder.runtime import (
    DEFAULT_BUCKETS,
    EncodedText,
    EncoderRuntime,
    clear_runtimes,
    get_runtime,
)

__all__ = [
    "DEFAULT_BUCKETS",
    "DEFAULT_MODEL",
    "SOURCES",
    "EncodedText",
    "EncoderRuntime",
    "align_pieces_to_tokens",
    "cache_root",
    "clear_runtimes",
    "get_runtime",
    "overlap_matrix",
    "pool_pieces_to_tokens",
    "read_manifest",
    "registered_name",
    "resolve_model_path",
    "verify_folder",
]
