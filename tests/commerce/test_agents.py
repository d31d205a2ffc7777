"""Agent accounts: per-agent tokens stored hashed, sign-in by token, throttled failures, audit."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import select

from commerce.__main__ import main
from commerce.errors import InvalidInput, NotAuthorized, TooManyAttempts
from commerce.models import Agent, AgentAuditEntry
from commerce.services import agents
from commerce.services.identity import client_key


def test_a_new_agent_signs_in_with_the_token_only_its_hash_is_stored(session_factory):
    account, token = agents.create_agent(session_factory, "Anna")
    assert account.name == "Anna" and account.active
    assert len(token) >= 43  # 32 random bytes, URL-safe

    with session_factory() as session:
        stored = session.execute(select(Agent)).scalar_one()
    assert stored.token_hash == agents.hash_token(token) and token not in stored.token_hash

    assert agents.authenticate(session_factory, token, client="203.0.113.5") == account
    assert agents.list_agents(session_factory) == (account,)


def test_each_agent_gets_an_own_token(session_factory):
    anna, anna_token = agents.create_agent(session_factory, "Anna")
    bob, bob_token = agents.create_agent(session_factory, "Bob")
    assert anna_token != bob_token
    assert agents.authenticate(session_factory, bob_token).name == "Bob"
    assert agents.authenticate(session_factory, anna_token).name == "Anna"


@pytest.mark.parametrize("name", ["", " ", "<script>", "x" * 41, "Anna\nBob", 42])
def test_names_that_could_not_be_shown_safely_are_refused(session_factory, name):
    with pytest.raises(InvalidInput):
        agents.create_agent(session_factory, name)


def test_an_existing_name_cannot_be_taken_again(session_factory):
    agents.create_agent(session_factory, "李明")
    with pytest.raises(InvalidInput, match="exists"):
        agents.create_agent(session_factory, "李明")


@pytest.mark.parametrize("token", ["", "wrong", "x" * 500, None, 42])
def test_a_wrong_token_is_refused_and_recorded(session_factory, token):
    agents.create_agent(session_factory, "Anna")
    with pytest.raises(NotAuthorized):
        agents.authenticate(session_factory, token, client="198.51.100.7")
    [entry] = agents.list_audit(session_factory, action="login_failed")
    assert entry.agent_name is None and entry.detail == "unknown token"
    assert entry.client_key == client_key("198.51.100.7") and "198.51.100.7" not in entry.client_key


def test_a_disabled_agent_is_refused(session_factory):
    _, token = agents.create_agent(session_factory, "Anna")
    account = agents.disable_agent(session_factory, "Anna")
    assert not account.active
    assert agents.disable_agent(session_factory, "Anna") == account  # idempotent
    with pytest.raises(NotAuthorized):
        agents.authenticate(session_factory, token)
    [entry] = agents.list_audit(session_factory, action="login_failed")
    assert (entry.agent_name, entry.detail) == ("Anna", "disabled agent")


def test_a_rotated_token_replaces_the_old_one(session_factory):
    _, old = agents.create_agent(session_factory, "Anna")
    new = agents.rotate_token(session_factory, "Anna")
    assert new != old
    assert agents.authenticate(session_factory, new).name == "Anna"
    with pytest.raises(NotAuthorized):
        agents.authenticate(session_factory, old)


def test_unknown_agents_cannot_be_disabled_or_rotated(session_factory):
    with pytest.raises(InvalidInput, match="no agent"):
        agents.disable_agent(session_factory, "Nobody")
    with pytest.raises(InvalidInput, match="no agent"):
        agents.rotate_token(session_factory, "Nobody")


def test_a_client_past_the_failure_cap_is_refused_even_with_a_right_token(
    session_factory, monkeypatch
):
    monkeypatch.setattr(agents, "MAX_LOGIN_FAILURES", 3)
    _, token = agents.create_agent(session_factory, "Anna")
    for _ in range(3):
        with pytest.raises(NotAuthorized):
            agents.authenticate(session_factory, "guess", client="198.51.100.7")
    with pytest.raises(TooManyAttempts) as caught:
        agents.authenticate(session_factory, token, client="198.51.100.7")
    assert 0 < caught.value.retry_after_s <= agents.LOGIN_FAILURE_WINDOW.total_seconds() + 1
    # Throttled attempts are not recorded (they cannot extend the lock-out), and other
    # clients are not affected.
    assert len(agents.list_audit(session_factory, action="login_failed")) == 3
    assert agents.authenticate(session_factory, token, client="203.0.113.5").name == "Anna"


def test_parallel_guesses_never_pass_the_cap(session_factory, monkeypatch):
    monkeypatch.setattr(agents, "MAX_LOGIN_FAILURES", 3)
    agents.create_agent(session_factory, "Anna")

    def guess(i: int) -> str:
        try:
            agents.authenticate(session_factory, f"guess-{i}", client="198.51.100.7")
        except TooManyAttempts:
            return "throttled"
        except NotAuthorized:
            return "refused"
        return "signed in"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(guess, range(16)))
    assert outcomes.count("refused") == 3 and outcomes.count("throttled") == 13


def test_failures_leave_the_window(session_factory, monkeypatch):
    monkeypatch.setattr(agents, "MAX_LOGIN_FAILURES", 1)
    _, token = agents.create_agent(session_factory, "Anna")
    with pytest.raises(NotAuthorized):
        agents.authenticate(session_factory, "guess", client="198.51.100.7")
    with pytest.raises(TooManyAttempts):
        agents.authenticate(session_factory, token, client="198.51.100.7")
    with session_factory.begin() as session:
        for entry in session.execute(select(AgentAuditEntry)).scalars():
            entry.at -= agents.LOGIN_FAILURE_WINDOW + timedelta(seconds=1)
    assert agents.authenticate(session_factory, token, client="198.51.100.7").name == "Anna"


def test_audit_lines_are_listed_newest_first_and_filtered(session_factory):
    agents.create_agent(session_factory, "Anna")
    agents.record_audit(session_factory, "Anna", "claim", handoff_id=7, conversation_id="web-1")
    agents.record_audit(
        session_factory, "Anna", "reply", handoff_id=7, conversation_id="web-1", detail="12 chars"
    )
    agents.record_audit(session_factory, "Anna", "handback", handoff_id=7, client="203.0.113.5")
    lines = agents.list_audit(session_factory, handoff_id=7)
    assert [e.action for e in lines] == ["handback", "reply", "claim"]
    assert lines[0].client_key == client_key("203.0.113.5")
    assert [e.action for e in agents.list_audit(session_factory, agent_name="Anna")][
        -1
    ] == "created"
    with pytest.raises(InvalidInput):
        agents.record_audit(session_factory, "Anna", "deleted_everything")


def test_cli_adds_lists_rotates_and_disables(session_factory, tmp_path, capsys):
    url = str(session_factory.kw["bind"].url.render_as_string(hide_password=False))
    if session_factory.kw["bind"].dialect.name != "sqlite":
        pytest.skip("the CLI is exercised on SQLite (its schema search path is per engine)")
    token_file = tmp_path / "secrets" / "anna.token"

    assert main(["agent", "add", "Anna", "--token-file", str(token_file), "--url", url]) == 0
    out = capsys.readouterr().out
    token = token_file.read_text().strip()
    assert token not in out and str(token_file) in out
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    assert agents.authenticate(session_factory, token).name == "Anna"

    # --if-missing keeps an agent whose token file is there ...
    assert (
        main(
            ["agent", "add", "Anna", "--token-file", str(token_file), "--if-missing", "--url", url]
        )
        == 0
    )
    assert token_file.read_text().strip() == token
    # ... and without the --if-missing it is an error.
    assert main(["agent", "add", "Anna", "--url", url]) == 1
    # A lost file gets a new token (the old cannot be recovered).
    token_file.unlink()
    assert (
        main(
            ["agent", "add", "Anna", "--token-file", str(token_file), "--if-missing", "--url", url]
        )
        == 0
    )
    new = token_file.read_text().strip()
    assert new != token and agents.authenticate(session_factory, new).name == "Anna"

    capsys.readouterr()
    assert main(["agent", "add", "Bob", "--url", url]) == 0
    bob_token = capsys.readouterr().out.strip()
    assert agents.authenticate(session_factory, bob_token).name == "Bob"
    assert main(["agent", "rotate", "Bob", "--url", url]) == 0
    rotated = capsys.readouterr().out.strip()
    assert rotated != bob_token and agents.authenticate(session_factory, rotated).name == "Bob"

    assert main(["agent", "disable", "Bob", "--url", url]) == 0
    assert main(["agent", "list", "--url", url]) == 0
    listing = capsys.readouterr().out
    assert "Anna\tactive" in listing and "Bob\tdisabled" in listing
    assert new not in listing and rotated not in listing
    assert main(["agent", "disable", "Nobody", "--url", url]) == 1
