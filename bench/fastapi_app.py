"""fastapi-passkeys as the benchmark's baseline, set up like its own demo (examples/app.py in
its repository): the in-memory credential repository and in-memory challenge store, one process.

Differences from the demo, each needed to load-test it like the gateway:
- `get_user` reads the user from an `X-Bench-User` header (the demo hard-codes one user);
- `on_authenticated` mints an opaque random session token, keeps it in a dict and sets it as a
  cookie, the least an app must do to sign someone in (the gateway also does this, durably);
- user verification is required, as the gateway requires it;
- the origin is also accepted with a trailing slash (see `expected_origins`).

Run with: uvicorn --app-dir bench fastapi_app:app --port 8001 --workers 1
The in-memory repository is per process, so several workers would not share passkeys or
challenges; bench/run.sh runs two single-worker processes instead and the load client keeps each
virtual user on one of them (sticky, as a load balancer with affinity would).
"""

from __future__ import annotations

import os
import secrets

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from fastapi_passkeys import (
    AuthenticationResult,
    PasskeyConfig,
    PasskeyUser,
    Passkeys,
    UserVerification,
)
from fastapi_passkeys.contrib import InMemoryChallengeStore, InMemoryCredentialRepository

ORIGIN = os.environ.get("BENCH_ORIGIN", "http://localhost:8001")
SESSIONS: dict[str, str] = {}


async def get_user(request: Request) -> PasskeyUser:
    name = request.headers.get("x-bench-user", "demo-user")
    return PasskeyUser(id=name, name=name, display_name=name)


async def on_authenticated(_: Request, result: AuthenticationResult) -> JSONResponse:
    token = secrets.token_urlsafe(32)
    SESSIONS[token] = result.user_id
    response = JSONResponse({"status": "signed-in", "userId": result.user_id})
    response.set_cookie("session", token, httponly=True, samesite="lax")
    return response


passkeys = Passkeys(
    config=PasskeyConfig(
        rp_id="localhost",
        rp_name="fastapi-passkeys bench",
        # webauthn-authenticator-rs writes the origin as a URL ("http://localhost:8001/");
        # webauthn-rs compares parsed origins, py_webauthn compares strings: list both spellings.
        expected_origins=[ORIGIN, ORIGIN + "/"],
        user_verification=UserVerification.REQUIRED,
    ),
    credential_repository=InMemoryCredentialRepository(),
    challenge_store=InMemoryChallengeStore(),
    get_user=get_user,
    on_authenticated=on_authenticated,
)

app = FastAPI(title="fastapi-passkeys bench")
app.include_router(passkeys.router, prefix="/auth/passkeys")
passkeys.install_exception_handlers(app)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
