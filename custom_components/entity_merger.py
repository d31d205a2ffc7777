"""One entity per stretch of text: the extractor that knows best wins where they overlap.

Kefu's entities come from three extractors that can find the same words: the
``RegexEntityExtractor`` (order numbers, emails, phones: exact patterns), the
``CatalogEntityExtractor`` (products, sizes, colours and attributes from the shop's own
catalog, with canonical values) and the ``TransformerIntentClassifier``'s learnt tag head
(everything annotated in ``data/nlu``, including what no rule covers: quantities, price
ceilings, categories, languages). Without a merge, "track order 100234" carries the order
number twice and "the trail runner in XL" a learnt ``product`` with the typed words as its
value beside the catalog's canonical ``TRAIL-RUNNER-2``.

``EntityMerger`` runs after them and after the ``EntitySynonymMapper`` (so values compare as
the actions will see them), and keeps, of any entities whose characters overlap, the one from
the extractor listed first in ``precedence``: rules before the model, because a pattern or the
catalog is exact where it fires and the model generalises where none fires. One exception,
for the types in ``narrower_span_types`` (sizes by default): when both read the same type and
value and one span lies inside the other, they agree on what was said and the narrower span is
kept. The catalog knows "M码" and "42号" as sizes M and 42, unit and all; the designers annotate
the "M" of "M码", and so does the model trained on their data. For products it is the other
way round: the catalog's "Storm rain jacket" is the designers' span, the model's "rain jacket"
a part of it, so products keep the catalog's.

Some types are what a rule says they are: an order number is the shop's pattern, not whatever
number the model thinks looks like one (the postcode in "1 Market St, San Francisco, 94105").
For the types in ``rule_only_types`` the learnt tags are dropped whether or not a rule fired.

Entities of extractors not in the list (``LanguageDetector``'s and ``SentimentAnalyzer``'s
whole-message entities, the ``RatingReader``) are never touched, and never remove anything. Of
two entities of the same extractor, both are kept (that extractor's own business). It learns
nothing.
"""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    ENTITY_ATTRIBUTE_VALUE,
    EXTRACTOR,
)
from rasa.shared.nlu.training_data.message import Message

from custom_components.component import KefuComponent
from custom_components.config import Rule

DEFAULT_PRECEDENCE = [
    "RegexEntityExtractor",
    "CatalogEntityExtractor",
    "TransformerIntentClassifier",
]


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False)
class EntityMerger(KefuComponent, GraphComponent, EntityExtractorMixin):
    """Drops an entity that overlaps one of an extractor listed before its own."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """Returns the component's default config."""
        return {
            # Extractor names, the most trusted first.
            "precedence": list(DEFAULT_PRECEDENCE),
            # Entity types where, of two readings of the same value, the narrower span stays.
            "narrower_span_types": ["size"],
            # Entity types only rules may give: the last extractor in `precedence` (the learnt
            # one) never does.
            "rule_only_types": [],
        }

    @classmethod
    def config_rules(cls) -> dict[str, Rule]:
        """Value checks (unknown keys are rejected too)."""
        return {
            "precedence": (
                lambda v: (
                    isinstance(v, list)
                    and all(isinstance(name, str) and name for name in v)
                    and len(set(v)) == len(v)
                ),
                "expected a list of distinct extractor names",
            ),
            "narrower_span_types": (
                lambda v: isinstance(v, list) and all(isinstance(t, str) and t for t in v),
                "expected a list of entity types",
            ),
            "rule_only_types": (
                lambda v: isinstance(v, list) and all(isinstance(t, str) and t for t in v),
                "expected a list of entity types",
            ),
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage | None = None,
        resource: Resource | None = None,
    ) -> None:
        """Creates the merger.

        Args:
            config: The component config (`precedence`).
            model_storage: Unused (nothing is learnt); passed by `create`.
            resource: Unused, as `model_storage`.
        """
        self._config = self.merged_config(config)
        self._rank = {name: i for i, name in enumerate(self._config["precedence"])}
        self._narrower_types = set(self._config["narrower_span_types"])
        self._rule_only = set(self._config["rule_only_types"])
        precedence = self._config["precedence"]
        self._learnt = precedence[-1] if len(precedence) > 1 else None

    def process(self, messages: list[Message]) -> list[Message]:
        """Keeps, where entities overlap, the one of the most trusted extractor.

        Args:
            messages: Messages after every extractor in `precedence` ran.

        Returns:
            The same messages.
        """
        for message in messages:
            entities = message.get(ENTITIES)
            if entities:
                merged = self.merge(entities)
                if len(merged) != len(entities):
                    message.set(ENTITIES, merged, add_to_output=True)
        return messages

    def merge(self, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The entities without those an overlapping, more trusted extractor's entity beats.

        The order of the kept entities is their order in `entities`.
        """
        ranked = sorted(
            (i for i, e in enumerate(entities) if e.get(EXTRACTOR) in self._rank),
            key=lambda i: self._rank[entities[i][EXTRACTOR]],
        )
        dropped = {
            i
            for i in ranked
            if entities[i][EXTRACTOR] == self._learnt
            and entities[i][ENTITY_ATTRIBUTE_TYPE] in self._rule_only
        }
        for position, i in enumerate(ranked):
            if i in dropped:
                continue
            for j in ranked[position + 1 :]:
                if j in dropped or not _clash(entities[i], entities[j]):
                    continue
                if entities[j][ENTITY_ATTRIBUTE_TYPE] in self._narrower_types and (
                    _narrower_reading_of(entities[j], entities[i])
                ):
                    dropped.add(i)
                    break
                dropped.add(j)
        return [e for i, e in enumerate(entities) if i not in dropped]


def _clash(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two extractors' entities on overlapping characters."""
    return (
        a[EXTRACTOR] != b[EXTRACTOR]
        and a[ENTITY_ATTRIBUTE_START] < b[ENTITY_ATTRIBUTE_END]
        and b[ENTITY_ATTRIBUTE_START] < a[ENTITY_ATTRIBUTE_END]
    )


def _narrower_reading_of(inner: dict[str, Any], outer: dict[str, Any]) -> bool:
    """`inner` is the same type and value as `outer`, on fewer of its characters."""
    same = (
        inner[ENTITY_ATTRIBUTE_TYPE] == outer[ENTITY_ATTRIBUTE_TYPE]
        and str(inner[ENTITY_ATTRIBUTE_VALUE]).casefold()
        == str(outer[ENTITY_ATTRIBUTE_VALUE]).casefold()
    )
    inside = (
        outer[ENTITY_ATTRIBUTE_START] <= inner[ENTITY_ATTRIBUTE_START]
        and inner[ENTITY_ATTRIBUTE_END] <= outer[ENTITY_ATTRIBUTE_END]
    )
    shorter = (inner[ENTITY_ATTRIBUTE_END] - inner[ENTITY_ATTRIBUTE_START]) < (
        outer[ENTITY_ATTRIBUTE_END] - outer[ENTITY_ATTRIBUTE_START]
    )
    return same and inside and shorter
