"""`rasa data validate --fail-on-warnings`, aware of responses that custom actions utter.

Rasa's validator warns about every response that no story or rule names, and
`--fail-on-warnings` turns that into a failure. Kefu's actions utter many responses themselves
(`dispatcher.utter_message(response="utter_error_order_not_found")`), so this script runs the
same checks and counts a response as used when a module under actions/ or channels/ names it
(the agent console says `utter_agent_joined` and `utter_back_to_bot`). Every other warning still
fails the run.
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
UNUSED_UTTERANCE = re.compile(r"The utterance '([^']+)' is not used in any story or rule")
RESPONSE_NAME = re.compile(r"""["'](utter_[A-Za-z0-9_/]+)["']""")
# Responses that Rasa's own default actions utter (action_default_fallback, two-stage fallback).
RASA_DEFAULT_ACTION_RESPONSES = frozenset({"utter_default", "utter_ask_rephrase"})
# f"utter_error_{error.code}" names a family of responses by its prefix.
RESPONSE_PREFIX = re.compile(r"""f["'](utter_[A-Za-z0-9_]*)\{""")


def responses_named_in(package: Path) -> tuple[set[str], tuple[str, ...]]:
    """Response names and f-string name prefixes in the package's Python files."""
    names: set[str] = set()
    prefixes: set[str] = set()
    for source in package.rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        names.update(RESPONSE_NAME.findall(text))
        prefixes.update(RESPONSE_PREFIX.findall(text))
    return names, tuple(sorted(prefixes))


def is_uttered_elsewhere(
    response: str, names: set[str], prefixes: tuple[str, ...], slots: set[str]
) -> bool:
    """True for responses uttered by actions, and `utter_ask_<slot>` that forms ask with.

    A retrieval intent's action (`utter_decline`) counts as used when an action utters its
    sub-responses (`utter_decline/account`) itself, as action_decline does to add the link.
    """
    if response in names or response in RASA_DEFAULT_ACTION_RESPONSES:
        return True
    if any(name.startswith(f"{response}/") for name in names):
        return True
    if response.startswith(prefixes):
        return True
    return response.startswith("utter_ask_") and any(
        response == f"utter_ask_{slot}" or response.endswith(f"_{slot}") for slot in slots
    )


class Findings(NamedTuple):
    """What the checks found, one line each."""

    errors: list[str]  # a failed check: Rasa would refuse to train
    warnings: list[str]  # a warning Rasa would print (and `--fail-on-warnings` fail on)


def find_problems(
    config: str = "config.yml",
    domain: str = "domain",
    data: str = "data",
    code: tuple[str, ...] = ("actions", "channels"),
    max_history: int | None = None,
) -> Findings:
    """Rasa's data checks, minus unused-response warnings for responses Kefu's code utters.

    `make validate` fails on any finding. `make train` stops on errors, as `rasa train`'s own
    validation would, and prints the warnings before it trains with `--skip-validation`.
    """
    from rasa.shared.importers.importer import TrainingDataImporter
    from rasa.validator import Validator

    importer = TrainingDataImporter.load_from_config(
        str(ROOT / config), str(ROOT / domain), [str(ROOT / data)]
    )
    validator = Validator.from_importer(importer)
    names: set[str] = set()
    prefixes: tuple[str, ...] = ()
    for package in code:
        found, found_prefixes = responses_named_in(ROOT / package)
        names |= found
        prefixes = tuple(sorted(set(prefixes) | set(found_prefixes)))
    slots = {slot.name for slot in importer.get_domain().slots}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        checks = {
            "domain": validator.verify_domain_validity(),
            "actions in stories": validator.verify_actions_in_stories_rules(),
            "forms in stories": validator.verify_forms_in_stories_rules(),
            "form slots": validator.verify_form_slots(),
            "slot mappings": validator.verify_slot_mappings(),
            "intents": validator.verify_intents_in_stories(ignore_warnings=True),
            "example repetition": validator.verify_example_repetition_in_intents(True),
            "utterances": validator.verify_utterances_in_stories(ignore_warnings=True),
            "story structure": validator.verify_story_structure(
                ignore_warnings=True, max_history=max_history
            ),
        }

    errors = [f"{name} check failed (details above)" for name, ok in checks.items() if not ok]
    problems: list[str] = []
    for warning in caught:
        text = str(warning.message)
        unused = UNUSED_UTTERANCE.search(text)
        if unused and is_uttered_elsewhere(unused.group(1), names, prefixes, slots):
            continue
        if not issubclass(warning.category, UserWarning):
            continue  # library deprecations are not findings about our data
        problems.append(text.strip().splitlines()[0])

    return Findings(errors=errors, warnings=problems)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="config.yml")
    parser.add_argument("--domain", default="domain")
    parser.add_argument("--data", default="data")
    parser.add_argument(
        "--code",
        nargs="+",
        default=["actions", "channels"],
        help="packages whose Python code utters responses (actions; the agent console)",
    )
    parser.add_argument("--max-history", type=int, default=None)
    args = parser.parse_args(argv)

    findings = find_problems(
        args.config, args.domain, args.data, tuple(args.code), args.max_history
    )
    problems = findings.errors + findings.warnings
    if problems:
        print("Validation failed:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print("==> domain and data are valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
