from scripts.train_if_changed import fingerprint


def test_fingerprint_changes_with_content_and_ignores_caches(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "config.yml").write_text("pipeline: []")
    (tmp_path / "data" / "nlu.yml").write_text("nlu: []")
    inputs = ["config.yml", "data", "missing_dir"]
    first = fingerprint(tmp_path, inputs)
    assert fingerprint(tmp_path, inputs) == first

    (tmp_path / "data" / "__pycache__").mkdir()
    (tmp_path / "data" / "__pycache__" / "x.pyc").write_bytes(b"\x00")
    assert fingerprint(tmp_path, inputs) == first

    (tmp_path / "data" / "nlu.yml").write_text("nlu: [changed]")
    assert fingerprint(tmp_path, inputs) != first
