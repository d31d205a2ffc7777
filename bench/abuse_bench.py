"""How many guesses an attacker gets before the identity limits stop them, before and after.

Plays one simulated hour of attacks against the commerce identity service on a freshly seeded
SQLite database (docs/SEED.md), one attempt every ``--interval`` simulated seconds, and counts
the attempts that were judged (matched or not) rather than refused with ``TooManyAttempts``:

- **email, one client**: a script knows a customer's email and tries it against order number
  after order number, each attempt from a fresh conversation (REST ``sender``), one address;
- **email, many clients**: the same with a fresh client address per attempt too (a botnet):
  what bounds it is a limit per email;
- **one client, many emails**: one address sprays a different email per attempt: what bounds it
  is a limit per client address;
- **victim lock-out**: a stranger sends six wrong emails for the victim's order from fresh
  conversations; can the owner still verify afterwards from their own conversation?
- **code guessing** (after only): one-time codes for one customer requested and guessed from
  fresh conversations; what bounds it are the codes per customer and the tries per code.

"before" runs ``commerce/services/identity.py`` as it was at ``--before`` (a git revision,
default the last commit before issue 15's trust work) on the same database schema; "after" runs
the working tree's. The clock is simulated by replacing the module's ``utcnow``.

    python -m bench.abuse_bench            # writes bench/results/abuse_bench.{json,md}
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import subprocess
import sys
import tempfile
import types
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from bench.common import environment, format_table, write_results

ROOT = Path(__file__).resolve().parent.parent
IDENTITY_PATH = "commerce/services/identity.py"
DEFAULT_BEFORE = "28776a0"
VICTIM_EMAIL = "alice@example.com"
VICTIM_ORDER = "KF-100004"


class SimulatedClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def load_identity(revision: str | None) -> types.ModuleType:
    """The identity module of the working tree (None) or of a git revision, freshly loaded."""
    if revision is None:
        source = (ROOT / IDENTITY_PATH).read_text(encoding="utf-8")
        name = "bench_identity_after"
    else:
        source = subprocess.run(
            ["git", "show", f"{revision}:{IDENTITY_PATH}"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        name = "bench_identity_before"
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(ROOT / IDENTITY_PATH)
    sys.modules[name] = module
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102 - our own file
    return module


def fresh_database(directory: Path):
    from commerce.__main__ import upgrade
    from commerce.db import make_engine, make_session_factory
    from commerce.seed import seed

    path = directory / "abuse.db"
    path.unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    seed(engine)
    return make_session_factory(engine)


class Attacker:
    """Calls one identity module's ``verify_order_owner`` under a simulated clock."""

    def __init__(self, identity: types.ModuleType, sf, clock: SimulatedClock) -> None:
        self.identity = identity
        self.sf = sf
        self.clock = clock
        identity.utcnow = clock
        parameters = inspect.signature(identity.verify_order_owner).parameters
        self.takes_client = "client" in parameters

    def verify(self, number: str, email: str, conversation: str, client: str) -> str:
        """``"judged"`` (matched or not) or ``"refused"`` (a limit)."""
        kwargs = {"email": email, "conversation_id": conversation}
        if self.takes_client:
            kwargs["client"] = client
        try:
            self.identity.verify_order_owner(self.sf, number, **kwargs)
        except self.identity.TooManyAttempts:
            return "refused"
        except self.identity.VerificationFailed:
            return "judged"
        return "judged"


def hour(attacker: Attacker, interval: float, attempt: Callable[[int], str]) -> dict:
    judged = refused = 0
    steps = int(3600 / interval)
    for i in range(steps):
        if attempt(i) == "judged":
            judged += 1
        else:
            refused += 1
        attacker.clock.advance(interval)
    return {"attempts": steps, "judged": judged, "refused": refused}


def scenarios(attacker: Attacker, interval: float, identity_version: str) -> dict:
    results = {}
    # Order numbers the victim does not own (the seed's numbers, then unknown ones).
    number = lambda i: f"KF-{300000 + i}"  # noqa: E731

    results["email_one_client"] = hour(
        attacker,
        interval,
        lambda i: attacker.verify(number(i), VICTIM_EMAIL, f"a1-{i}", "198.51.100.7"),
    )
    attacker.clock.advance(2 * 86400)
    results["email_many_clients"] = hour(
        attacker,
        interval,
        lambda i: attacker.verify(
            number(i), VICTIM_EMAIL, f"a2-{i}", f"203.0.{i // 250 % 250}.{i % 250}"
        ),
    )
    attacker.clock.advance(2 * 86400)
    results["one_client_many_emails"] = hour(
        attacker,
        interval,
        lambda i: attacker.verify(number(i), f"guess{i}@example.com", f"a3-{i}", "198.51.100.9"),
    )
    attacker.clock.advance(2 * 86400)
    for i in range(6):
        attacker.verify(VICTIM_ORDER, f"wrong{i}@example.com", f"a4-{i}", "198.51.100.11")
        attacker.clock.advance(interval)
    owner = attacker.verify(VICTIM_ORDER, VICTIM_EMAIL, "owner-1", "192.0.2.44")
    results["victim_locked_out"] = owner == "refused"
    if identity_version == "after":
        results["code_guessing"] = code_guessing(attacker, interval)
    return results


def code_guessing(attacker: Attacker, interval: float) -> dict:
    identity = attacker.identity
    attacker.clock.advance(2 * 86400)
    customer_id = 1
    guesses = refused = sends_refused = 0
    conversation = 0
    steps = int(3600 / interval)
    i = 0
    while i < steps:
        conversation += 1
        try:
            identity.send_verification_code(
                attacker.sf,
                customer_id,
                conversation_id=f"c-{conversation}",
                client="198.51.100.20",
            )
        except identity.TooManyAttempts:
            sends_refused += 1
            attacker.clock.advance(interval)
            i += 1
            continue
        for _ in range(identity.CODE_MAX_TRIES + 1):
            try:
                identity.check_verification_code(
                    attacker.sf,
                    customer_id,
                    "000000" if i % 2 else "999999",
                    conversation_id=f"c-{conversation}",
                    client="198.51.100.20",
                )
            except identity.VerificationFailed:
                guesses += 1
            except (identity.TooManyAttempts, identity.CodeExpired):
                refused += 1
                break
            attacker.clock.advance(interval)
            i += 1
    return {"guesses_judged": guesses, "code_sends_refused": sends_refused}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=DEFAULT_BEFORE, help="git revision for 'before'")
    parser.add_argument("--interval", type=float, default=2.0, help="simulated s per attempt")
    parser.add_argument("--name", default="abuse_bench")
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error("--interval must be positive")

    import logging
    import os

    logging.disable(logging.WARNING)  # the alarm fires on purpose; keep the table readable
    os.environ.setdefault("KEFU_OUTBOX_LOG", str(Path(tempfile.gettempdir()) / "abuse-outbox.log"))
    results: dict = {"interval_s": args.interval, "before": args.before}
    with tempfile.TemporaryDirectory() as tmp:
        for version, revision in (("before", args.before), ("after", None)):
            sf = fresh_database(Path(tmp))
            clock = SimulatedClock(datetime(2026, 1, 1, 0, 0, 0))
            results[version] = scenarios(
                Attacker(load_identity(revision), sf, clock), args.interval, version
            )
            sf.kw["bind"].dispose()
    results["environment"] = environment()

    def cell(version: str, key: str) -> str:
        value = results[version].get(key)
        if isinstance(value, dict):
            return f"{value['judged']} of {value['attempts']}"
        return {True: "yes", False: "no", None: "-"}[value]

    rows = [
        ["one email, fresh conversations, one client (per email per hour)"]
        + [cell(v, "email_one_client") for v in ("before", "after")],
        ["one email, fresh conversations and clients (per email per hour)"]
        + [cell(v, "email_many_clients") for v in ("before", "after")],
        ["one client, a new email each time (per client per hour)"]
        + [cell(v, "one_client_many_emails") for v in ("before", "after")],
        ["owner locked out by 6 strangers' wrong emails"]
        + [cell(v, "victim_locked_out") for v in ("before", "after")],
    ]
    codes = results["after"]["code_guessing"]
    rows.append(
        ["one-time code guesses per customer per hour", "no codes", str(codes["guesses_judged"])]
    )
    table = format_table(["attack (guesses judged, simulated hour)", "before", "after"], rows)
    write_results(args.name, results, table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
