"""The designers' checklist, checked: what a new intent, form or free-text slot must come with.

Each test names what is missing, so a designer who adds an intent or a form learns here (not from
a confused customer) that it needs examples in both languages, a fallback description, its
digression rules, and the one list of intents that are never a free-text answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ("en", "zh")
#: Intents that are no request of their own: Rasa's fallback, and the retrieval intents whose
#: sub-intents (faq/returns_policy …) a "Did you mean …?" button cannot carry.
UNDESCRIBED = {"nlu_fallback", "out_of_scope", "faq", "chitchat", "decline"}
#: What a customer may say in the middle of any form (data/rules/*.yml answers each).
DIGRESSIONS = ("faq", "chitchat", "decline", "stop", "human_handoff")


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


DOMAIN_FILES = {path.name: load(path) for path in sorted((ROOT / "domain").glob("*.yml"))}
INTENTS = sorted(
    name if isinstance(name, str) else next(iter(name))
    for domain in DOMAIN_FILES.values()
    for name in domain.get("intents", [])
)
RESPONSES = {r for domain in DOMAIN_FILES.values() for r in domain.get("responses", {})}
SLOTS = {s: v for domain in DOMAIN_FILES.values() for s, v in domain.get("slots", {}).items()}
FORMS = sorted(f for domain in DOMAIN_FILES.values() for f in domain.get("forms", {}))
RULES = [r for path in sorted((ROOT / "data/rules").glob("*.yml")) for r in load(path)["rules"]]


def nlu_intents(language: str) -> set[str]:
    """Intents with at least one example in data/nlu/<language> (``faq/x`` counts as ``faq``)."""
    found = set()
    for path in (ROOT / "data/nlu" / language).glob("*.yml"):
        for block in load(path).get("nlu", []):
            if "intent" in block and str(block.get("examples", "")).strip():
                found.add(block["intent"].split("/")[0])
    return found


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_intent_has_examples_in_both_languages(language):
    missing = set(INTENTS) - {"nlu_fallback"} - nlu_intents(language)
    assert not missing, f"intents without examples in data/nlu/{language}: {sorted(missing)}"


def test_every_example_belongs_to_a_domain_intent():
    unknown = (nlu_intents("en") | nlu_intents("zh")) - set(INTENTS)
    assert not unknown, f"examples for intents the domain does not list: {sorted(unknown)}"


def test_every_intent_has_a_fallback_description():
    missing = [i for i in INTENTS if i not in UNDESCRIBED and f"utter_intent_{i}" not in RESPONSES]
    assert not missing, f"add utter_intent_<intent> (en + zh) to domain/intents.yml: {missing}"


def test_no_description_for_an_intent_that_does_not_exist():
    described = {
        r.removeprefix("utter_intent_") for r in RESPONSES if r.startswith("utter_intent_")
    }
    assert described <= set(INTENTS)


# --- forms ------------------------------------------------------------------------------------


def steps(rule: dict) -> list[dict]:
    return rule.get("steps", [])


def conditioned_on(rule: dict, form: str) -> bool:
    return {"active_loop": form} in rule.get("condition", [])


def slots_after(rule_steps: list[dict], index: int) -> dict[str, Any]:
    """The slots set between step ``index`` and the next action or intent."""
    found: dict[str, Any] = {}
    for step in rule_steps[index + 1 :]:
        if "action" in step or "intent" in step:
            break
        for item in step.get("slot_was_set", []):
            found.update(item)
    return found


def has_digression(form: str, intent: str) -> bool:
    for rule in RULES:
        s = steps(rule)
        if not conditioned_on(rule, form) or not s or s[0].get("intent") != intent:
            continue
        actions = [step["action"] for step in s if "action" in step]
        if intent in ("stop", "human_handoff"):
            if actions[:1] == ["action_deactivate_loop"] and len(actions) == 2:
                return True
        elif len(actions) == 2 and actions[1] == form:
            return True  # answered, then the form resumes
    return False


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("intent", DIGRESSIONS)
def test_every_form_has_its_digression_rules(form, intent):
    assert has_digression(form, intent), f"{form} has no rule for '{intent}' (data/rules/)"


@pytest.mark.parametrize("form", FORMS)
def test_every_form_runs_its_action_only_when_completed_and_waits_when_stopped(form):
    done = stopped = False
    for rule in RULES:
        s = steps(rule)
        if not s or s[0] != {"action": form}:
            continue
        slots = slots_after(s, 0)
        if slots.get("form_stopped") is True:
            # The form, active_loop: null, the slots: then it listens. No condition, so it also
            # holds for a form that stops on the message that started it.
            stopped = len(s) == 3 and not rule.get("condition")
        elif conditioned_on(rule, form) and slots.get("form_stopped", False) is None:
            done = len([x for x in s if "action" in x]) == 2
    assert done, f"{form}: no 'done' rule with form_stopped: null before its action"
    assert stopped, f"{form}: no 'stopped' rule (form_stopped: true) that waits"


def test_every_rule_says_whether_the_form_it_runs_stopped():
    """RulePolicy refuses rules that set form_stopped after a form in one rule and not another."""
    missing = [
        rule["rule"]
        for rule in RULES
        for i, step in enumerate(steps(rule))
        if step.get("action") in FORMS and "form_stopped" not in slots_after(steps(rule), i)
    ]
    assert not missing, f"add 'slot_was_set: - form_stopped: null' after the form: {missing}"


def test_form_stopped_is_a_featurized_flag():
    slot = SLOTS["form_stopped"]
    assert slot["type"] == "bool" and slot["influence_conversation"] is True


# --- free text --------------------------------------------------------------------------------


def free_text_mappings() -> list[tuple[str, str, dict]]:
    return [
        (file, slot, mapping)
        for file, domain in DOMAIN_FILES.items()
        for slot, spec in domain.get("slots", {}).items()
        for mapping in spec.get("mappings", [])
        if mapping.get("type") == "from_text"
    ]


def test_free_text_slots_live_in_one_file_with_one_not_intent_list():
    mappings = free_text_mappings()
    assert mappings
    assert {file for file, _, _ in mappings} == {"forms.yml"}, "free-text slots: domain/forms.yml"
    lists = {tuple(m.get("not_intent", ())) for _, _, m in mappings}
    assert len(lists) == 1, f"one not_intent list (the &not_an_answer anchor), found {lists}"
    # The anchor is written once and every other mapping refers to it.
    text = (ROOT / "domain/forms.yml").read_text(encoding="utf-8")
    assert text.count("not_intent: &not_an_answer") == 1
    assert text.count("not_intent: *not_an_answer") == len(mappings) - 1


def test_no_request_is_taken_for_a_free_text_answer():
    (not_intent,) = {tuple(m["not_intent"]) for _, _, m in free_text_mappings()}
    assert set(not_intent) <= set(INTENTS)
    # "can you speak Chinese?" is no address, reason or code.
    for intent in (
        *DIGRESSIONS,
        "switch_language",
        "out_of_scope",
        "payment_problem",
        "help",
        "greet",
        "goodbye",
    ):
        assert intent in not_intent, intent


BUTTON_PAYLOADS = sorted(
    {
        (name, button["payload"])
        for domain in DOMAIN_FILES.values()
        for name, variants in domain.get("responses", {}).items()
        for variant in variants
        for button in variant.get("buttons", [])
    }
)


@pytest.mark.parametrize("response, payload", BUTTON_PAYLOADS)
def test_button_payloads_reach_the_channel_as_an_intent_with_json_entities(response, payload):
    """Rasa fills `{slot}` placeholders in every response, buttons included, so a payload's
    JSON entities must be written with doubled braces (`/inform{{"rating": "5"}}`). A single
    brace logs an interpolation ERROR for every button shown; the text still goes out unfilled."""
    from rasa.core.nlg.interpolator import interpolate_text
    from structlog.testing import capture_logs

    with capture_logs() as logged:
        sent = interpolate_text(payload, {})
    assert not [entry for entry in logged if entry["log_level"] == "error"], logged
    assert sent.startswith("/") and "{{" not in sent, sent
    if "{" in sent:
        intent, entities = sent[1:].split("{", 1)
        assert intent and isinstance(yaml.safe_load("{" + entities), dict), sent
