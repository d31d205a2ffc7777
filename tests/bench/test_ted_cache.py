"""The TED cache benchmark plays the test stories as conversations arriving one after another."""

from rasa.shared.core.domain import Domain

from bench.ted_cache import story_trackers

DOMAIN = Domain.from_yaml(
    """
version: "3.1"
intents: [greet, goodbye]
responses:
  utter_greet: [{text: "Hi!"}]
  utter_goodbye: [{text: "Bye."}]
"""
)

STORIES = """
version: "3.1"
stories:
- story: b says goodbye
  steps:
  - intent: goodbye
  - action: utter_goodbye
- story: a greets twice
  steps:
  - intent: greet
  - action: utter_greet
  - intent: greet
  - action: utter_greet
"""


def test_each_story_gives_the_trackers_before_each_of_its_actions_in_story_order(tmp_path):
    (tmp_path / "stories.yml").write_text(STORIES, encoding="utf-8")

    prefixes, conversations = story_trackers(tmp_path / "stories.yml", DOMAIN)

    assert conversations == 2
    # Each tracker as it stood before an action (Rasa's own updates one tracker in place).
    seen = [[e.as_story_string() for e in t.events if e.as_story_string()] for t in prefixes]
    greets = ["action_listen", "greet", "utter_greet", "action_listen", "greet", "utter_greet"]
    goodbye = ["action_listen", "goodbye", "utter_goodbye", "action_listen"]
    assert seen == [
        *(greets[:n] for n in (0, 2, 3, 5, 6)),
        greets + ["action_listen"],
        *(goodbye[:n] for n in (0, 2, 3, 4)),
    ]
