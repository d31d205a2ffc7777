"""Fixtures for the custom component tests: a tiny random BERT encoder and Rasa plumbing.

The tiny encoder (hidden 32, 2 layers, a WordPiece vocabulary trained on a few English and
Chinese sentences) goes through the real asset builder, so tests exercise the same code path
as `make model` in seconds. Tests that need the real multilingual-e5-small are marked `slow`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.training_data.message import Message

TINY_CORPUS = [
    "where is my order",
    "i want to return these shoes",
    "cancel my order please",
    "track order number A-10023",
    "what is the refund policy for shoes",
    "do you ship to hong kong",
    "我想退货",
    "我的订单在哪里",
    "请帮我取消订单",
    "这个手机壳有红色的吗",
    "退款政策是什么",
    "iPhone 的保修期多长",
]


def _build_tiny_bert_source(folder: Path) -> Path:
    """Writes a random tiny BERT + trained WordPiece tokenizer as a plain HF folder."""
    import tensorflow as tf
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import WordPieceTrainer
    from transformers import BertConfig, BertTokenizerFast, TFBertModel

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    # BertNormalizer puts spaces around CJK characters, so Chinese becomes one piece per char.
    backend.normalizer = normalizers.BertNormalizer(lowercase=True, handle_chinese_chars=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    backend.train_from_iterator(
        TINY_CORPUS * 3, WordPieceTrainer(vocab_size=300, special_tokens=specials)
    )
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[
            ("[CLS]", backend.token_to_id("[CLS]")),
            ("[SEP]", backend.token_to_id("[SEP]")),
        ],
    )
    folder.mkdir(parents=True, exist_ok=True)
    BertTokenizerFast(tokenizer_object=backend, model_max_length=64).save_pretrained(str(folder))

    config = BertConfig(
        vocab_size=backend.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    tf.keras.utils.set_random_seed(7)
    model = TFBertModel(config)
    model(model.dummy_inputs)
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def tiny_source_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain Hugging Face BERT folder (no Kefu manifest)."""
    return _build_tiny_bert_source(tmp_path_factory.mktemp("tiny-src") / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_encoder_dir(tiny_source_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT built into a verified Kefu asset folder by the real asset builder."""
    from custom_components.encoder.assets import build

    folder, _manifest, built = build(
        str(tiny_source_dir), out=tmp_path_factory.mktemp("tiny-assets") / "tiny-bert"
    )
    assert built
    return folder


@pytest.fixture()
def model_storage(tmp_path: Path) -> LocalModelStorage:
    (tmp_path / "model-storage").mkdir()
    return LocalModelStorage(tmp_path / "model-storage")


@pytest.fixture()
def execution_context() -> ExecutionContext:
    return ExecutionContext(GraphSchema({}), node_name="transformer_featurizer")


@pytest.fixture()
def resource() -> Resource:
    return Resource("transformer_featurizer")


@pytest.fixture(scope="session")
def whitespace_tokenize() -> Callable[[list[str]], list[Message]]:
    """Turns texts into messages tokenized by Rasa's WhitespaceTokenizer."""
    from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer

    tokenizer = WhitespaceTokenizer(WhitespaceTokenizer.get_default_config())

    def tokenize(texts: list[str]) -> list[Message]:
        messages = [Message(data={"text": text}) for text in texts]
        tokenizer.process(messages)
        return messages

    return tokenize


@pytest.fixture(scope="session")
def jieba_tokenize(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[list[str]], list[Message]]:
    """Turns texts into messages tokenized by Rasa's JiebaTokenizer."""
    pytest.importorskip("jieba")
    from rasa.nlu.tokenizers.jieba_tokenizer import JiebaTokenizer

    storage = LocalModelStorage(tmp_path_factory.mktemp("jieba-storage"))
    tokenizer = JiebaTokenizer(JiebaTokenizer.get_default_config(), storage, Resource("jieba"))

    def tokenize(texts: list[str]) -> list[Message]:
        messages = [Message(data={"text": text}) for text in texts]
        tokenizer.process(messages)
        return messages

    return tokenize
