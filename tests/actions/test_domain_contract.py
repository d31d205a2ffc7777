"""The action server and the domain agree: actions, error answers, and both languages."""

from __future__ import annotations

import yaml
from rasa_sdk.executor import ActionExecutor

from commerce.errors import ERROR_CODES
from tests.helpers import ROOT

FILES = tuple(sorted(path.stem for path in (ROOT / "domain").glob("*.yml")))


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "domain" / f"{name}.yml").read_text(encoding="utf-8"))


def test_every_domain_action_is_served_and_every_served_action_is_declared():
    declared = {a for name in FILES for a in load(name).get("actions", [])}
    executor = ActionExecutor()
    executor.register_package("actions")
    assert declared == set(executor.actions)


def test_every_commerce_error_code_has_an_answer():
    responses = {r for name in FILES for r in load(name).get("responses", {})}
    assert {f"utter_error_{code}" for code in ERROR_CODES} <= responses


def test_every_response_has_one_english_and_one_chinese_variation():
    for name in FILES:
        for response, variations in load(name).get("responses", {}).items():
            languages = [v["condition"][0]["value"] for v in variations]
            assert sorted(languages) == ["en", "zh"], response
            for v in variations:
                assert v["condition"][0]["name"] == "language", response
