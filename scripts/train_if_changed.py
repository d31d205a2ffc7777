"""Trains the Rasa model only when what it is trained from has changed.

The fingerprint covers config.yml, domain/, data/, the custom components, contract.py (which
they read) and the pinned requirements; it is stored next to the model. `make train` calls this, so `make run` on an
unchanged checkout starts in seconds.

Training prints one line per stage instead of Rasa's wall of warnings: the data check (the
same one as `make validate`: responses that actions utter are not "unused"), then each
component as it starts and finishes, with the encoder's epochs and validation accuracy and
DIET's / TED's progress by quarters. Rasa's whole output goes to ``var/log/train.log``
(``KEFU_TRAIN_LOG``); on a failure its last lines are printed. ``KEFU_TRAIN_VERBOSE=1`` shows
Rasa's output as it is instead.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import hashlib
import io
import os
import re
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INPUTS = ["config.yml", "domain", "data", "custom_components", "contract.py", "requirements.lock"]


def fingerprint(root: Path = ROOT, inputs: list[str] = INPUTS) -> str:
    """Hashes every file under `inputs` (paths and contents, in a stable order)."""
    digest = hashlib.sha256()
    for name in inputs:
        path = root / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if "__pycache__" in file.parts or not file.exists():
                continue
            digest.update(str(file.relative_to(root)).encode())
            digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


STARTED = re.compile(r"Starting to train component '([^']+)'")
FINISHED = re.compile(r"Finished training component '([^']+)'")
ENCODER_EPOCH = re.compile(r"fine-tune epoch \{'epoch': (\d+).*?'val_accuracy': ([0-9.]+)")
ENCODER_STOP = re.compile(r"(early stop[^\n]*|stopped[^\n]*epoch[^\n]*)", re.IGNORECASE)
#: tqdm's bar of DIET, TED and the ResponseSelector: "Epochs:  37%|███▋ | 37/100 [...]".
TQDM_EPOCHS = re.compile(r"Epochs:\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)")
TAIL_LINES = 30


def output_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Lines of a process's output, split at newlines and at tqdm's carriage returns."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # chunks split characters
    pending = ""
    for chunk in chunks:
        pending += decoder.decode(chunk)
        *complete, pending = re.split(r"[\r\n]", pending)
        yield from (line for line in complete if line.strip())
    if pending.strip():
        yield pending


class Progress:
    """Turns Rasa's training output into one short line per stage."""

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self.started: dict[str, float] = {}
        self.quarters: dict[str, int] = {}
        self.component = ""

    def read(self, line: str) -> str | None:
        """The progress line ``line`` is worth, or None."""
        if found := STARTED.search(line):
            self.component = found.group(1)
            self.started[self.component] = self.clock()
            return f"    {self.component} ..."
        if found := FINISHED.search(line):
            name = found.group(1)
            now = self.clock()
            seconds = now - self.started.get(name, now)
            return f"    {name} done in {seconds:.0f} s"
        if found := ENCODER_EPOCH.search(line):
            epoch, accuracy = found.groups()
            return f"      epoch {epoch}: validation accuracy {float(accuracy):.3f}"
        if "finetune" in line and (found := ENCODER_STOP.search(line)):
            return f"      {found.group(1).strip()}"
        if found := TQDM_EPOCHS.search(line):
            done, total = int(found.group(1)), int(found.group(2))
            quarter = 4 * done // max(total, 1)
            if quarter > self.quarters.get(self.component, 0):
                self.quarters[self.component] = quarter
                return f"      epoch {done}/{total}"
        return None


def check_data() -> bool:
    """Prints what `make validate` would find; False when Rasa would refuse to train."""
    from scripts.validate_data import find_problems

    # Rasa's loaders print warnings and a progress bar while reading; `make validate` shows them.
    with contextlib.redirect_stderr(io.StringIO()) as rasa_output:
        findings = find_problems()
    if findings.errors:
        print(rasa_output.getvalue(), end="", file=sys.stderr)
    for problem in findings.errors:
        print(f"    error: {problem}")
    for problem in findings.warnings:
        print(f"    warning: {problem}")
    if findings.errors:
        print("error: the domain or data is invalid; `make validate` shows why", file=sys.stderr)
        return False
    print("==> domain and data checked")
    return True


def run_quietly(command: list[str], log_path: Path) -> int:
    """Runs ``command`` with its output in ``log_path``, printing only progress lines."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    progress = Progress()
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    with (
        log_path.open("wb") as log,
        subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        ) as process,
    ):
        assert process.stdout is not None

        def chunks() -> Iterator[bytes]:
            while chunk := process.stdout.read1(65536):
                log.write(chunk)
                yield chunk

        for line in output_lines(chunks()):
            tail.append(line)
            if (shown := progress.read(line)) is not None:
                print(shown, flush=True)
        code = process.wait()
    if code != 0:
        print(f"error: rasa train failed; the last lines of {log_path}:", file=sys.stderr)
        for line in tail:
            print(f"  {line}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="models/kefu.tar.gz")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)

    model = ROOT / args.out
    stamp = model.with_name(model.name + ".fingerprint")
    current = fingerprint()
    if not args.force and model.exists() and stamp.exists() and stamp.read_text() == current:
        print(f"==> {args.out} is up to date (config, domain and data unchanged)")
        return 0
    if not check_data():
        return 1
    print(f"==> training {args.out}")
    started = time.monotonic()
    command = [
        str(Path(sys.executable).parent / "rasa"),
        "train",
        "--config",
        "config.yml",
        "--domain",
        "domain",
        "--data",
        "data",
        "--out",
        str(model.parent),
        "--fixed-model-name",
        model.name.removesuffix(".tar.gz"),
        "--skip-validation",  # check_data did it, without the warnings about responses in use
    ]
    if os.environ.get("KEFU_TRAIN_VERBOSE") == "1":
        code = subprocess.call(command, cwd=ROOT)
    else:
        code = run_quietly(
            command, Path(os.environ.get("KEFU_TRAIN_LOG", ROOT / "var/log/train.log"))
        )
    if code != 0 or not model.exists():
        print("error: rasa train failed", file=sys.stderr)
        return code or 1
    stamp.write_text(current)
    print(f"==> trained {args.out} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
