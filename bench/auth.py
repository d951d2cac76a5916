"""What authentication adds per request (issue 19): target ≤ 0.2 ms at p50 with cached keys.

In one run, two gateways on the same local stub engine — one with PM_AUTH_MODE=none, one with
PM_AUTH_MODE=jwt and keys from a JWKS file — serve `GET /api/processes/instances/{id}/variables` at
concurrency 1, one request to each in turn so both see the same machine load; the added cost is the median
of the paired differences (robust on a busy machine) next to the difference of the two p50s. The token is an RS256 JWT of an
admin of every tenant, so the figure is the token check and the caller mapping alone (a caller limited to
tenants also costs one engine read to learn the object's tenant). Also printed: the token check in-process,
without HTTP.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.common import free_port, percentile, server, summary, timed

PAIRS, WARMUP = 3000, 300
AUDIENCE, ISSUER = "pm-gateway", "bench-issuer"


def keys(directory: Path) -> tuple[rsa.RSAPrivateKey, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    path = directory / "jwks.json"
    path.write_text(json.dumps({"keys": [{**public, "kid": "bench", "use": "sig", "alg": "RS256"}]}))
    return key, path


def token(key: rsa.RSAPrivateKey) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "bench", "exp": now + 3600, "roles": ["admin"], "tenants": ["*"]}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "bench"})


async def pairs(off_url: str, on_url: str, bearer: str) -> tuple[list[float], list[float]]:
    """Latencies in ms of PAIRS requests to each gateway, alternating (off, on, off, on, ...)."""
    async with httpx.AsyncClient(timeout=10) as client:

        async def off() -> None:
            (await client.get(off_url)).raise_for_status()

        async def on() -> None:
            (await client.get(on_url, headers={"Authorization": f"Bearer {bearer}"})).raise_for_status()

        await timed(off, WARMUP)
        await timed(on, WARMUP)
        without, with_auth = [], []
        for _ in range(PAIRS):
            without += (await timed(off, 1))[0]
            with_auth += (await timed(on, 1))[0]
        return without, with_auth


async def verification_alone(jwks: Path, key: rsa.RSAPrivateKey) -> tuple[list[float], list[float]]:
    """In-process: a token's first check (signature, claims, mapping) and a repeated one (remembered)."""
    from gateway.auth import build_authenticator
    from gateway.settings import Settings

    authenticator = build_authenticator(
        Settings(auth_mode="jwt", auth_jwks_file=jwks, auth_issuer=ISSUER, auth_audience=AUDIENCE)
    )
    fresh = [f"Bearer {token(key)}" for _ in range(2000)]  # distinct: iat/exp differ by the loop's time
    first = []
    for header in fresh:
        assert authenticator.verifier is not None
        authenticator.verifier.verified.clear()
        started = time.perf_counter()
        await authenticator.caller(header, None)
        first.append((time.perf_counter() - started) * 1000)
    repeated = (await timed(lambda: authenticator.caller(fresh[0], None), 5000))[0]
    return first, repeated


def main() -> None:
    stub_port, off_port, on_port = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        key, jwks = keys(Path(tmp))
        bearer = token(key)
        common = {
            "PM_ENGINE_TYPE": "camunda7",
            "PM_ENGINE_NAME": "stub",
            "PM_ENGINE_URL": f"http://127.0.0.1:{stub_port}/engine-rest",
            "PM_LOG_LEVEL": "warning",
        }
        off_env = {**common, "PM_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/off.db", "PM_PORT": str(off_port)}
        on_env = {
            **common,
            "PM_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/on.db",
            "PM_PORT": str(on_port),
            "PM_AUTH_MODE": "jwt",
            "PM_AUTH_JWKS_FILE": str(jwks),
            "PM_AUTH_ISSUER": ISSUER,
            "PM_AUTH_AUDIENCE": AUDIENCE,
        }
        path = "/api/processes/instances/abc/variables"
        with (
            server(["-m", "bench.stub_engine", str(stub_port)], stub_port, ready_path="/engine-rest/version"),
            server(["-m", "gateway.cli"], off_port, env=off_env) as off,
            server(["-m", "gateway.cli"], on_port, env=on_env) as on,
        ):
            without, with_auth = asyncio.run(pairs(off + path, on + path, bearer))
        first, repeated = asyncio.run(verification_alone(jwks, key))
    paired = statistics.median(b - a for a, b in zip(without, with_auth, strict=True))
    print("authentication cost per request (GET instance variables, local stub engine, concurrency 1)")
    print(f"  auth off (PM_AUTH_MODE=none): {summary(without)}")
    print(f"  auth on  (RS256 JWT, cached): {summary(with_auth)}")
    print(
        f"  added: median of paired differences = {paired:.3f} ms; difference of p50s = "
        f"{percentile(with_auth, 0.5) - percentile(without, 0.5):.3f} ms (target <= 0.2 ms)"
    )
    print(f"  token check in-process, first time (RS256 signature + claims): {summary(first)}")
    print(f"  token check in-process, repeated (remembered up to 60 s):      {summary(repeated)}")


if __name__ == "__main__":
    main()
