"""Webhook requests: the payload, its signatures and the check that a target URL is one we may call.

Signatures (both on every request):
- Standard Webhooks: `webhook-id` (the event id, the same on every retry), `webhook-timestamp` (Unix seconds),
  `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, computed by the `standardwebhooks` library;
- API.md: `X-PM-Signature: sha256=<hex HMAC-SHA256 of the body>`.
The HMAC key is the secret's bytes: base64-decoded for a `whsec_...` secret (as Standard Webhooks defines it),
the UTF-8 bytes of any other secret. During a secret rotation each header carries one signature per secret,
newest first (`webhook-signature` space-separated, `X-PM-Signature` comma-separated).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver
from standardwebhooks.webhooks import Webhook

from events.models import PayloadFormat, envelope, event_json
from gateway.errors import ValidationFailed

SECRET_PREFIX = "whsec_"
USER_AGENT = "pm-gateway-webhooks/1"


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 24 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def secret_key(secret: str) -> bytes:
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :] + "==", validate=False)
        except ValueError:
            pass
    return secret.encode()


def payload(event: dict[str, Any], payload_format: str) -> tuple[bytes, str]:
    """The request body and its content type for an event in the subscription's format."""
    body = envelope(event)
    if payload_format == PayloadFormat.CLOUDEVENTS:
        cloud_event = {
            "specversion": "1.0",
            "id": body["id"],
            "type": body["type"],
            "source": f"/engines/{body['engine'] or 'gateway'}",
            "subject": body["instance_id"],
            "time": body["occurred_at"],
            "datacontenttype": "application/json",
            "data": body,
        }
        return event_json(cloud_event), "application/cloudevents+json"
    return event_json(body), "application/json"


def signature_headers(webhook_id: str, body: bytes, signing_secrets: list[str], now: datetime) -> dict[str, str]:
    """The Standard Webhooks headers and X-PM-Signature, one signature per secret (newest first)."""
    text = body.decode()
    standard = [Webhook(secret_key(secret)).sign(webhook_id, now, text) for secret in signing_secrets]
    legacy = ["sha256=" + hmac.new(secret_key(secret), body, hashlib.sha256).hexdigest() for secret in signing_secrets]
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(standard),
        "X-PM-Signature": ",".join(legacy),
    }


PRIVATE_TARGET_HINT = "set PM_EVENTS_ALLOW_PRIVATE_TARGETS=true to allow such targets"


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return not address.is_global or address.is_multicast


def _private_target(host: str, address: object) -> str:
    return f"The webhook URL's host {host!r} is a private, loopback or link-local address ({address}); {PRIVATE_TARGET_HINT}"


async def check_target(url: str, *, allow_private: bool) -> None:
    """Refuse (422) a URL whose host is or resolves to a private, loopback, link-local or otherwise internal address.

    Resolving uses the event loop's resolver (a worker thread), never blocking the loop. A host that does not
    resolve is refused too: nothing could be delivered to it. The check is made again at every delivery
    (`TargetResolver`, `refused_literal`): a name may resolve elsewhere later (DNS rebinding).
    """
    if allow_private:
        return
    host = urlsplit(url).hostname or ""
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None)
        except OSError as exc:
            raise ValidationFailed(f"The webhook URL's host {host!r} does not resolve: {exc.strerror or exc}") from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        if _refused(address):
            raise ValidationFailed(_private_target(host, address))


class TargetRefused(OSError):
    """A delivery's host resolved to an address webhooks may not reach."""


class TargetResolver(ThreadedResolver):
    """aiohttp's resolver, refusing private, loopback and link-local answers: every connection a delivery opens
    is checked against the addresses it actually connects to, so a name that resolved to a public address when
    the subscription was made and resolves to an internal one now (DNS rebinding) is not called."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await super().resolve(host, port, family)
        for entry in found:
            address = ipaddress.ip_address(entry["host"])
            if _refused(address):
                raise TargetRefused(_private_target(host, address))
        return found


def refused_literal(url: str) -> str | None:
    """Why a delivery to `url` is refused when its host is an IP address webhooks may not reach (aiohttp does not
    resolve, so `TargetResolver` does not see, an address literal), or None."""
    host = urlsplit(url).hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return _private_target(host, address) if _refused(address) else None


@dataclass
class Attempt:
    """What one POST to a receiver came to."""

    ok: bool
    status: int | None
    error: str | None
    retry_after: float | None
    duration_ms: int

    @property
    def gone(self) -> bool:
        return self.status == 410


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


class WebhookClient:
    """The HTTP client of webhook deliveries: one aiohttp session whose pool keeps up to `concurrency` keep-alive
    connections, each resolved by `TargetResolver` unless private targets are allowed.

    aiohttp directly, not behind the httpx API as engine calls are (`gateway.resilience`): the dispatcher makes a
    request per event, and httpx's request and response models took half of its CPU time per delivery.
    The session is made at the first request, inside the running event loop (aiohttp requires it).
    """

    def __init__(self, *, concurrency: int, timeout: float, allow_private: bool) -> None:
        self.concurrency = concurrency
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.allow_private = allow_private
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.concurrency,
                ssl=httpx.create_ssl_context(),  # certifi's CAs, as every other outgoing call of the gateway
                resolver=None if self.allow_private else TargetResolver(),
            )
            self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(
        self, url: str, webhook_id: str, event: dict[str, Any], payload_format: str, signing_secrets: list[str]
    ) -> Attempt:
        """POST one event; any answer but 2xx, and any transport failure or timeout, is a failed attempt."""
        body, content_type = payload(event, payload_format)
        headers = {
            "Content-Type": content_type,
            "User-Agent": USER_AGENT,
            **signature_headers(webhook_id, body, signing_secrets, datetime.now(UTC)),
        }
        started = time.perf_counter()
        try:
            async with self.session().post(url, data=body, headers=headers, allow_redirects=False) as response:
                answer = await response.read()  # read to the end, so the connection goes back to the pool
        except TimeoutError:
            return Attempt(False, None, "the receiver did not answer in time", None, _ms(started))
        except aiohttp.ClientError as exc:
            # aiohttp reports a refused resolution as ClientConnectorDNSError, caused by TargetRefused.
            refused = _cause(exc, TargetRefused)
            error = str(refused) if refused else f"the receiver could not be reached: {type(exc).__name__}"
            return Attempt(False, None, error, None, _ms(started))
        ok = 200 <= response.status < 300
        refusal = None if ok else f"the receiver answered {response.status}: {answer[:200].decode(errors='replace')}"
        return Attempt(
            ok, response.status, refusal, retry_after_seconds(response.headers.get("retry-after")), _ms(started)
        )


def _cause(exc: BaseException | None, kind: type[BaseException]) -> BaseException | None:
    """The first exception of type `kind` in `exc`'s chain of causes, or None."""
    while exc is not None and not isinstance(exc, kind):
        exc = exc.__cause__ or exc.__context__
    return exc


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
