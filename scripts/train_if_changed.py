"""Trains the Rasa model only when what it is trained from has changed.

The fingerprint covers config.yml, domain/, data/, the custom components, contract.py (which
they read) and the pinned requirements; it is stored next to the model. `make train` calls this, so `make run` on an
unchanged checkout starts in seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
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
    print(f"==> training {args.out}")
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
    ]
    code = subprocess.call(command, cwd=ROOT)
    if code != 0 or not model.exists():
        print("error: rasa train failed; see the output above", file=sys.stderr)
        return code or 1
    stamp.write_text(current)
    return 0


if __name__ == "__main__":
    sys.exit(main())
