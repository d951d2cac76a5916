r"""Development tokens for running the gateway with PM_AUTH_MODE=jwt on one machine, without an identity provider.

    .venv/bin/python -m tools.dev_token init                 # a key pair in .dev-auth/, prints the PM_AUTH_* settings
    .venv/bin/python -m tools.dev_token mint --sub alice --roles task-user --groups sales --tenants acme

`init` writes `.dev-auth/private-key.pem` (keep it local) and `.dev-auth/jwks.json` (its public key, what the
gateway reads through PM_AUTH_JWKS_FILE). `mint` prints an RS256 token signed with that key: issuer
`pm-gateway-dev`, audience `pm-gateway`, valid for `--ttl` seconds (default one hour). Never use these keys
beyond development.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "pm-gateway-dev"
AUDIENCE = "pm-gateway"
KID = "dev-1"


def init(directory: Path) -> dict[str, str]:
    """Create the key pair (unless it exists) and return the settings that make the gateway trust it."""
    directory.mkdir(parents=True, exist_ok=True)
    private_path, jwks_path = directory / "private-key.pem", directory / "jwks.json"
    if not private_path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        private_path.chmod(0o600)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        jwks_path.write_text(json.dumps({"keys": [{**public, "kid": KID, "use": "sig", "alg": "RS256"}]}, indent=2))
    return {
        "PM_AUTH_MODE": "jwt",
        "PM_AUTH_JWKS_FILE": str(jwks_path),
        "PM_AUTH_ISSUER": ISSUER,
        "PM_AUTH_AUDIENCE": AUDIENCE,
    }


def mint(
    directory: Path,
    *,
    sub: str,
    roles: list[str],
    groups: list[str] | None = None,
    tenants: list[str] | None = None,
    ttl: int = 3600,
) -> str:
    """A token for `sub` with these roles, groups and tenants, signed with the key `init` made."""
    key = serialization.load_pem_private_key((directory / "private-key.pem").read_bytes(), password=None)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": now,
        "exp": now + ttl,
        "jti": str(uuid.uuid4()),
        "roles": roles,
        "groups": groups or [],
        "tenants": tenants or [],
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID})  # type: ignore[arg-type]


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.dev_token", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path(".dev-auth"), help="where the key pair lives (.dev-auth)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="create the key pair and print the gateway settings")
    minting = sub.add_parser("mint", help="print a signed token")
    minting.add_argument("--sub", required=True, help="the user (the actor in audit and events)")
    minting.add_argument("--roles", default="", help="comma-separated roles, e.g. admin or task-user,approver")
    minting.add_argument("--groups", default="", help="comma-separated groups (task candidate groups)")
    minting.add_argument("--tenants", default="", help="comma-separated tenants; * for every tenant")
    minting.add_argument("--ttl", type=int, default=3600, help="seconds the token is valid")
    args = parser.parse_args(argv)
    if args.command == "init":
        for name, value in init(args.dir).items():
            print(f"export {name}={value}")
        return 0
    if not (args.dir / "private-key.pem").exists():
        print(f"no key in {args.dir}: run `python -m tools.dev_token init` first", file=sys.stderr)
        return 2
    print(
        mint(
            args.dir,
            sub=args.sub,
            roles=_names(args.roles),
            groups=_names(args.groups),
            tenants=_names(args.tenants),
            ttl=args.ttl,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
