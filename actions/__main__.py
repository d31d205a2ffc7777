"""Runs the action server: `python -m actions [--port 5055]`.

Rasa's stock `rasa run actions` accepts calls from anyone who can reach the port. Kefu's
actions read and change orders, so every call must carry the shared token that Rasa sends
(`action_endpoint.token` in endpoints.yml, from the KEFU_ACTION_TOKEN environment variable).
"""

from __future__ import annotations

import argparse
import hmac
import logging
import os
import sys

from rasa_sdk.endpoint import create_app
from sanic import Sanic, response
from sanic.request import Request

logger = logging.getLogger(__name__)
TOKEN_ENV = "KEFU_ACTION_TOKEN"
OPEN_PATHS = frozenset({"/health"})


def create_action_app(token: str, action_package: str = "actions") -> Sanic:
    """Builds the rasa-sdk Sanic app with shared-token authentication.

    Args:
        token: The secret Rasa sends as the `token` query parameter.
        action_package: Python package holding the actions.

    Returns:
        The Sanic app; `/health` stays open for load balancers.
    """
    if not token:
        raise ValueError(f"{TOKEN_ENV} must be a non-empty secret")
    app = create_app(action_package, cors_origins=None)

    @app.middleware("request")
    async def require_token(request: Request):  # noqa: ANN202 - Sanic middleware
        if request.path in OPEN_PATHS:
            return None
        sent = request.args.get("token") or request.headers.get("x-kefu-action-token", "")
        if not hmac.compare_digest(sent.encode(), token.encode()):
            logger.warning("Refused an action call without a valid token from %s", request.ip)
            return response.json(
                {"error": "unauthorized", "message": "A valid action token is required."},
                status=401,
            )
        return None

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=5055)
    parser.add_argument("--host", default=os.environ.get("KEFU_ACTIONS_HOST", "127.0.0.1"))
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        print(
            f"error: set {TOKEN_ENV} to the secret that Rasa sends (endpoints.yml "
            "action_endpoint.token); `make run` generates one for you.",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = create_action_app(token)
    app.run(host=args.host, port=args.port, workers=1, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
