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


def test_output_lines_split_at_newlines_and_tqdm_carriage_returns():
    from scripts.train_if_changed import output_lines

    han = "训练".encode()  # a character split across two chunks stays whole
    chunks = [
        b"first li",
        b"ne " + han[:2],
        han[2:] + b"\nEpochs:  50%|",
        b"# | 1/2 [00:01]\rEpochs: 100%|",
        b"## | 2/2\n",
    ]

    assert list(output_lines(chunks)) == [
        "first line 训练",
        "Epochs:  50%|# | 1/2 [00:01]",
        "Epochs: 100%|## | 2/2",
    ]


def test_progress_shows_components_epochs_and_quarters_only():
    from scripts.train_if_changed import Progress

    ticks = iter([0.0, 42.0])
    progress = Progress(clock=lambda: next(ticks))
    log = [
        "2026-12-05 INFO rasa.engine.training.hooks - Starting to train component 'DIETClassifier'.",
        "UserWarning: The utterance 'utter_x' is not used in any story or rule.",
        *(f"Epochs:  {e * 10}%|#| {e}/8 [00:01, t_loss=1.0]" for e in range(1, 9)),
        "2026-12-05 INFO custom_components.encoder.finetune - fine-tune epoch "
        "{'epoch': 3, 'loss': 0.4, 'val_accuracy': 0.8726591760299626, 'seconds': 84.1}",
        "2026-12-05 INFO custom_components.encoder.finetune - fine-tune early stop after epoch 8:"
        " best held-out accuracy 0.9064 at epoch 5",
        "2026-12-05 INFO rasa.engine.training.hooks - Finished training component 'DIETClassifier'.",
    ]

    shown = [line for line in map(progress.read, log) if line is not None]

    assert shown == [
        "    DIETClassifier ...",
        "      epoch 2/8",
        "      epoch 4/8",
        "      epoch 6/8",
        "      epoch 8/8",
        "      epoch 3: validation accuracy 0.873",
        "      early stop after epoch 8: best held-out accuracy 0.9064 at epoch 5",
        "    DIETClassifier done in 42 s",
    ]
