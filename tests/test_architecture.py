"""The house's rooms import only along its arrows (read with ``ast``, nothing is imported).

channels ─▶ Rasa; actions ─▶ commerce; everyone ─▶ contract.py. The NLU components
(custom_components) are Rasa's plugins: nothing else imports them, except that the catalog's
semantic search (commerce.services.catalog) embeds with the encoder library they are built on
(custom_components.encoder: the same weights, assets and runtime, no Rasa component). The
commerce backend knows nothing of Rasa, the actions or the channels. Analytics reads Rasa's events, never the action
server's internals. contract.py imports nothing of the project.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

PROJECT = (
    "actions",
    "analytics",
    "channels",
    "commerce",
    "custom_components",
    "contract",
    "bench",
    "scripts",
)
RASA = ("rasa", "rasa_sdk")
FORBIDDEN = {
    "channels": ("custom_components",),
    "actions": ("custom_components", "channels"),
    "commerce": ("custom_components", "actions", "analytics", "channels", *RASA, "sanic"),
    "analytics": ("custom_components", "actions"),
    "contract": (*PROJECT, *RASA, "sqlalchemy", "sanic"),
}
#: Subpackages of a forbidden package that a room may still import.
ALLOWED = {"commerce": ("custom_components.encoder",)}


def modules(room: str) -> list[Path]:
    single = ROOT / f"{room}.py"
    if single.exists():
        return [single]
    return sorted(p for p in (ROOT / room).rglob("*.py") if "migrations" not in p.parts)


def imported_modules(path: Path) -> set[str]:
    """Dotted modules a module imports anywhere (also inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; write the absolute one"
            names.add(node.module or "")
    return names


def imported(path: Path, allowed: tuple[str, ...] = ()) -> set[str]:
    """Top-level packages a module imports, leaving out the `allowed` subpackages."""
    return {
        name.split(".")[0]
        for name in imported_modules(path)
        if not any(name == a or name.startswith(a + ".") for a in allowed)
    }


CASES = [
    pytest.param(room, path, id=str(path.relative_to(ROOT)))
    for room in FORBIDDEN
    for path in modules(room)
]


@pytest.mark.parametrize("room, path", CASES)
def test_imports_follow_the_arrows(room: str, path: Path):
    wrong = imported(path, ALLOWED.get(room, ())) & set(FORBIDDEN[room])
    assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def test_every_room_was_read():
    rooms = {case.values[0] for case in CASES}
    assert rooms == set(FORBIDDEN)
    assert len(CASES) > 40


def test_the_reader_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from custom_components.x import y\n", encoding="utf-8")
    assert imported(module) == {"custom_components"}


def test_an_allowed_subpackage_is_left_out_and_its_siblings_are_not(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "from custom_components.encoder.runtime import get_runtime\n"
        "import custom_components.encoderx\n",
        encoding="utf-8",
    )
    assert imported(module, ("custom_components.encoder",)) == {"custom_components"}
    module.write_text("from custom_components.encoder import runtime\n", encoding="utf-8")
    assert imported(module, ("custom_components.encoder",)) == set()
