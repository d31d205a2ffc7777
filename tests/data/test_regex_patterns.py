"""The shop's entity patterns (data/nlu/regex.yml), run by Rasa's own RegexEntityExtractor:
what each one takes, and the look-alikes it leaves alone."""

from __future__ import annotations

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.extractors.regex_entity_extractor import RegexEntityExtractor
from rasa.shared.importers.rasa import RasaFileImporter
from rasa.shared.nlu.training_data.message import Message

from tests.helpers import ROOT


@pytest.fixture(scope="module")
def extractor(tmp_path_factory) -> RegexEntityExtractor:
    # Rasa keeps only the patterns of entities the examples annotate: the whole NLU data.
    data = RasaFileImporter(training_data_paths=[str(ROOT / "data/nlu")])
    component = RegexEntityExtractor.create(
        {**RegexEntityExtractor.get_default_config(), "use_lookup_tables": False},
        LocalModelStorage(tmp_path_factory.mktemp("regex")),
        Resource("regex"),
        ExecutionContext(GraphSchema({}), "test"),
    )
    component.train(data.get_nlu_data())
    return component


def found(extractor: RegexEntityExtractor, text: str) -> set[tuple[str, str]]:
    message = Message(data={"text": text})
    extractor.process([message])
    return {(e["entity"], e["value"]) for e in message.get("entities", [])}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("any rain jackets under $80?", {("max_price", "$80")}),
        ("bags under 50 dollars", {("max_price", "50")}),
        ("something below $60 for my dad", {("max_price", "$60")}),
        ("500元以内的数码产品", {("max_price", "500")}),
        ("800以内42码的跑鞋", {("max_price", "800")}),
        ("预算300的礼物", {("max_price", "300")}),
        ("please order 3 pairs of Road Runner", {("quantity", "3")}),
        ("i'd like 2 items from that order", {("quantity", "2")}),
        ("2 x Basic cotton tee in white", {("quantity", "2")}),
        ("帮我订3套跑步袜", {("quantity", "3")}),
        ("我要2件", {("quantity", "2")}),
        ("KF-100001的数量改成3", {("order_number", "KF-100001"), ("quantity", "3")}),
    ],
)
def test_prices_and_quantities_are_found(extractor, text, expected):
    assert found(extractor, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "can i return within 7 days without a reason?",  # a period, not a price
        "it took 3个月 to arrive",  # months, not pieces
        "还要等2个小时吗",  # hours
        "size 42 in black",  # a size
        "just 1",  # a bare number: the form asking for it knows what it is, not the pattern
    ],
)
def test_look_alikes_are_left_alone(extractor, text):
    assert not {entity for entity, _ in found(extractor, text)} & {"max_price", "quantity"}
