"""What `make catalog` reads from the catalog: vocabulary for the NLU lookups, and the
description passages with their vector index for open product questions."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select

from commerce.config import VAR_DIR
from commerce.dto import CatalogProduct, CatalogTerms
from commerce.errors import ConfigurationError
from commerce.models import Product, ProductVariant
from commerce.vocabulary import CATEGORIES, COLOURS, SIZES


def list_catalog_terms(session_factory) -> CatalogTerms:
    """Product names and synonyms, sizes, colours and categories in both languages."""
    with session_factory() as session:
        products = session.execute(select(Product).order_by(Product.id)).scalars().all()
        sizes_in_use = {
            s for (s,) in session.execute(select(ProductVariant.size).distinct()) if s is not None
        }
        return CatalogTerms(
            products=tuple(
                CatalogProduct(
                    code=p.code,
                    category=p.category,
                    name_en=p.name_en,
                    name_zh=p.name_zh,
                    synonyms=tuple(s.strip() for s in p.synonyms.split(",") if s.strip()),
                )
                for p in products
            ),
            sizes=tuple(s for s in SIZES if s in sizes_in_use)
            + tuple(sorted(sizes_in_use - set(SIZES))),
            colours=tuple(COLOURS.items()),
            categories=tuple(CATEGORIES.items()),
        )


# ---------------------------------------------------------------- passages and their index
#
# Open product questions are answered by nearest-passage search over the catalog's description
# passages and the shop's FAQ answers. The vectors come from Kefu's own encoder and are built
# once at `make catalog` time (scripts/export_catalog.py); a chat only encodes the question.
# Exact search (one matrix product) is used: a few hundred passages take well under a
# millisecond, so an approximate library (faiss, hnswlib) would add a dependency and recall
# loss for nothing; reconsider past ~100k passages.

#: Env var naming the folder of the passage index; var/catalog when unset.
CATALOG_INDEX_ENV = "KEFU_CATALOG_INDEX"
INDEX_VECTORS = "passages.npz"
INDEX_META = "passages.json"
INDEX_FORMAT = 1
#: E5 models are trained with these prefixes; questions and passages must use them.
QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
PASSAGE_MAX_PIECES = 256


@dataclass(frozen=True)
class Passage:
    """One answerable text in both languages; ``code`` is "" for an FAQ answer."""

    code: str
    key: str  # "description/2" for a product's third passage, "faq/returns" for an FAQ
    text_en: str
    text_zh: str
    #: The product's name, encoded ahead of the text ("Summit hiking boots: Break them in ...")
    #: so a passage that never names its product is still found by a question that does.
    title_en: str = ""
    title_zh: str = ""

    def encoded_texts(self) -> tuple[str, str]:
        """The English and Chinese texts as the index encodes them."""
        return (
            f"{self.title_en}: {self.text_en}" if self.title_en else self.text_en,
            f"{self.title_zh}：{self.text_zh}" if self.title_zh else self.text_zh,
        )


def default_index_dir() -> Path:
    """``$KEFU_CATALOG_INDEX`` or ``var/catalog`` of the repository."""
    env = os.environ.get(CATALOG_INDEX_ENV, "").strip()
    return Path(env).expanduser() if env else VAR_DIR / "catalog"


def split_passages(description: str) -> list[str]:
    """A description's passages: its paragraphs (separated by blank lines), stripped."""
    return [p.strip() for p in description.split("\n\n") if p.strip()]


def product_passages(session_factory) -> list[Passage]:
    """Every description passage of every product, in catalog order.

    The English and Chinese descriptions are written paragraph for paragraph, so the n-th
    paragraphs are one passage; should the counts differ, the extra paragraphs are left out
    (the seed test keeps them equal).
    """
    with session_factory() as session:
        products = session.execute(select(Product).order_by(Product.id)).scalars().all()
        passages = []
        for p in products:
            en, zh = split_passages(p.description_en), split_passages(p.description_zh)
            pairs = zip(en, zh, strict=False)
            passages.extend(
                Passage(p.code, f"description/{i}", text_en, text_zh, p.name_en, p.name_zh)
                for i, (text_en, text_zh) in enumerate(pairs)
            )
        return passages


class PassageEncoder:
    """Kefu's encoder as a sentence embedder: mean-pooled, L2-normalised E5 vectors.

    Args:
        folder: a verified encoder asset folder (``make model``), e.g.
            ``.cache/kefu/encoders/multilingual-e5-small``.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        from custom_components.encoder.assets import verify_folder
        from custom_components.encoder.runtime import get_runtime

        self.folder = Path(folder).resolve()
        self.fingerprint = str(verify_folder(self.folder).get("fingerprint", ""))
        self._runtime = get_runtime(self.folder, device="auto")

    def _encode(self, texts: list[str], max_length: int) -> np.ndarray:
        encoded = self._runtime.encode(texts, max_length=max_length)
        vectors = np.stack([e.sentence for e in encoded]).astype(np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def warm_up(self) -> None:
        """Traces the forward pass now, so the first shopper's question does not wait for it."""
        self._runtime.warm_up(max_length=128)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """``[n, dim]`` unit vectors of questions."""
        return self._encode([QUERY_PREFIX + t for t in texts], max_length=128)

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        """``[n, dim]`` unit vectors of passages."""
        return self._encode([PASSAGE_PREFIX + t for t in texts], PASSAGE_MAX_PIECES)


@dataclass(frozen=True)
class PassageHit:
    passage: Passage
    score: float  # cosine similarity of question and passage, -1..1


class PassageIndex:
    """Passages with one vector per language each; exact cosine search.

    Args:
        passages: the indexed passages.
        vectors: ``[2 * len(passages), dim]`` unit vectors, English then Chinese per passage.
        encoder: what encodes questions; must be the encoder that built ``vectors``.
    """

    def __init__(self, passages: list[Passage], vectors: np.ndarray, encoder) -> None:
        if vectors.shape[0] != 2 * len(passages):
            raise ValueError(f"{vectors.shape[0]} vectors for {len(passages)} passages")
        self.passages = list(passages)
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.encoder = encoder
        codes = np.array([p.code for p in self.passages])
        self._row_codes = np.repeat(codes, 2)

    @classmethod
    def build(cls, passages: list[Passage], encoder) -> PassageIndex:
        """Encodes both languages of every passage."""
        texts = [t for p in passages for t in p.encoded_texts()]
        return cls(passages, encoder.encode_passages(texts), encoder)

    def search(self, question: str, code: str | None = None, top: int = 1) -> list[PassageHit]:
        """The ``top`` best passages for ``question``, best first (one hit per passage).

        Args:
            question: the shopper's words, either language.
            code: restrict to this product's passages and the FAQ answers.
            top: how many distinct passages to return.
        """
        query = self.encoder.encode_queries([question])[0]
        scores = self.vectors @ query
        if code is not None:
            allowed = (self._row_codes == code) | (self._row_codes == "")
            scores = np.where(allowed, scores, -np.inf)
        hits: list[PassageHit] = []
        seen: set[int] = set()
        for row in np.argsort(-scores, kind="stable"):
            if not np.isfinite(scores[row]):
                break
            index = int(row) // 2
            if index not in seen:
                seen.add(index)
                hits.append(PassageHit(self.passages[index], float(scores[row])))
            if len(hits) >= top:
                break
        return hits

    def save(self, folder: str | os.PathLike) -> Path:
        """Writes the vectors and the passages (with the encoder's fingerprint) to ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / INDEX_VECTORS, vectors=self.vectors)
        meta = {
            "format": INDEX_FORMAT,
            "encoder_folder": str(self.encoder.folder),
            "encoder_fingerprint": self.encoder.fingerprint,
            "passages": [asdict(p) for p in self.passages],
        }
        (folder / INDEX_META).write_text(
            json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, encoder=None) -> PassageIndex:
        """Reads an index written by :meth:`save`, with the encoder it was built with.

        Raises:
            ConfigurationError: no index in ``folder``, or ``encoder`` is not the one that
                built it (rebuild with ``make catalog``).
        """
        folder = Path(folder)
        if not (folder / INDEX_META).is_file() or not (folder / INDEX_VECTORS).is_file():
            raise ConfigurationError(
                f"no product passage index in {folder}: build it with `make catalog`"
            )
        meta = json.loads((folder / INDEX_META).read_text(encoding="utf-8"))
        encoder = encoder or PassageEncoder(meta["encoder_folder"])
        if meta.get("format") != INDEX_FORMAT or (
            meta.get("encoder_fingerprint") != encoder.fingerprint
        ):
            raise ConfigurationError(
                f"the passage index in {folder} was built with another encoder or format: "
                "rebuild it with `make catalog`"
            )
        with np.load(folder / INDEX_VECTORS) as data:
            vectors = data["vectors"]
        return cls([Passage(**p) for p in meta["passages"]], vectors, encoder)


_LOADED: dict[tuple[str, int], PassageIndex] = {}
_LOADED_LOCK = threading.Lock()


def passage_index(folder: str | os.PathLike | None = None) -> PassageIndex:
    """The process-wide index of ``folder`` (default :func:`default_index_dir`), loaded once
    and again whenever `make catalog` rewrites it."""
    folder = Path(folder) if folder is not None else default_index_dir()
    meta = folder / INDEX_META
    key = (str(folder.resolve()), meta.stat().st_mtime_ns if meta.is_file() else 0)
    with _LOADED_LOCK:
        if key not in _LOADED:
            _LOADED.clear()
            index = PassageIndex.load(folder)
            index.encoder.warm_up()
            _LOADED[key] = index
        return _LOADED[key]
