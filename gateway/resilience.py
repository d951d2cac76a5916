"""Resilience for every engine call, in one place: timeouts, circuit breaker, retries, error mapping.

Adapters never talk to httpx directly; they call `EngineHttp.request`/`EngineHttp.json`, which
- bounds every attempt (connect and read timeouts, plus an overall deadline),
- rejects calls in under a millisecond while the engine's circuit is open (503 with Retry-After),
- retries only idempotent calls, with exponential backoff and jitter, honouring Retry-After, within a
  retry budget,
- and maps transport faults and engine statuses to the gateway's typed errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json as jsonlib
import logging
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

import aiohttp
import httpx
import pybreaker
from httpx_aiohttp import AiohttpTransport
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from gateway import metrics, tracing
from gateway.errors import (
    BadRequest,
    Conflict,
    EngineError,
    EngineTimeout,
    EngineUnavailable,
    GatewayError,
    NotFound,
    ValidationFailed,
)
from gateway.logs import current_request
from gateway.settings import EngineConfig

log = logging.getLogger(__name__)

STATE_VALUES = {pybreaker.STATE_CLOSED: 0, pybreaker.STATE_HALF_OPEN: 1, pybreaker.STATE_OPEN: 2}
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BACKOFF = wait_exponential_jitter(multiplier=0.05, max=1.0, jitter=0.05)


_background = contextvars.ContextVar("pm_background_engine_calls", default=False)


def mark_background() -> None:
    """Mark the engine calls of the current task as background work (pollers): while an engine's circuit
    is not closed they still reach the engine, but a failure neither re-opens the circuit nor delays the
    probe that the first user call after the reset timeout makes, so users get the engine's real error."""
    _background.set(True)


class _EngineFault(Exception):
    """Raised inside the breaker for faults that count against the engine's health."""

    def __init__(self, error: GatewayError, retry_after: float | None = None) -> None:
        super().__init__(error.detail)
        self.error = error
        self.retry_after = retry_after


class SharedStateStorage(pybreaker.CircuitMemoryStorage):
    """In-memory breaker state that mirrors state changes to a sink (Redis), and accepts remote ones.

    Reads never leave the process, so checking the circuit costs nothing and never blocks the loop;
    writes are handed to `on_change`, which publishes them asynchronously.
    """

    def __init__(self) -> None:
        super().__init__(pybreaker.STATE_CLOSED)
        self.on_change: Callable[[str, datetime | None], None] | None = None

    @property
    def state(self) -> str:
        return self._state

    @state.setter
    def state(self, state: str) -> None:
        changed = state != self._state
        self._state = state
        if changed and self.on_change is not None:
            self.on_change(state, self._opened_at)

    def apply_remote(self, state: str, opened_at: datetime | None) -> None:
        self._opened_at = opened_at
        self._state = state
        if state == pybreaker.STATE_CLOSED:
            self._fail_counter = 0


class EngineBreaker:
    """pybreaker's state machine, driven with `calling()` around each awaited attempt.

    pybreaker lets every call through while half-open; here exactly one probe goes through and the
    others are rejected until it finishes.
    """

    def __init__(self, engine: str, fail_max: int, reset_timeout: float, url: str | None = None) -> None:
        self.engine = engine
        self.url = url
        self.last_error: str | None = None
        self.storage = SharedStateStorage()
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout,
            state_storage=self.storage,
            throw_new_error_on_trip=False,
            exclude=[lambda exc: not isinstance(exc, _EngineFault)],
            name=engine,
        )
        self._probe_running = False
        metrics.circuit_state.labels(engine).set(0)

    @property
    def state(self) -> str:
        state = self.breaker.current_state
        if state == pybreaker.STATE_OPEN and self.seconds_until_probe() <= 0:
            return pybreaker.STATE_HALF_OPEN
        return state

    @property
    def opened_at(self) -> datetime | None:
        return self.storage.opened_at if self.breaker.current_state != pybreaker.STATE_CLOSED else None

    def snapshot(self) -> dict[str, Any]:
        """`/api/processes/engines` → `circuit`: state, failures counted, when it opened, the last engine error."""
        return {
            "state": self.state,
            "failure_count": self.breaker.fail_counter,
            "opened_at": self.opened_at,
            "last_error": self.last_error,
        }

    def seconds_until_probe(self) -> float:
        opened_at = self.storage.opened_at
        if opened_at is None:
            return 0.0
        remaining = opened_at + timedelta(seconds=self.breaker.reset_timeout) - datetime.now(UTC)
        return max(0.0, remaining.total_seconds())

    def open_circuit_detail(self) -> str:
        """Which engine, where, since when and why: the detail of every call the open circuit rejects."""
        where = f" at {self.url}" if self.url else ""
        opened_at = self.opened_at
        since = f" since {opened_at.isoformat(timespec='seconds')}" if opened_at else ""
        last = f"; last error: {self.last_error}" if self.last_error else " (opened by another replica)"
        return f"Engine '{self.engine}'{where} is unavailable: its circuit is open{since} after repeated failures{last}"

    def _reject(self) -> EngineUnavailable:
        metrics.circuit_rejections.labels(self.engine).inc()
        wait = max(1, round(self.seconds_until_probe()))
        return EngineUnavailable(self.open_circuit_detail(), engine=self.engine, headers={"Retry-After": str(wait)})

    async def run(self, attempt: Callable[[], Any]) -> Any:
        current = self.breaker.current_state
        if current != pybreaker.STATE_CLOSED and _background.get():
            return await self._run_in_background(attempt)
        probe = current != pybreaker.STATE_CLOSED
        if probe:
            if self._probe_running or self.seconds_until_probe() > 0:
                raise self._reject()
            self._probe_running = True
        try:
            with self.breaker.calling():
                return await self._recording(attempt)
        except pybreaker.CircuitBreakerError:
            raise self._reject() from None
        finally:
            if probe:
                self._probe_running = False
            metrics.circuit_state.labels(self.engine).set(STATE_VALUES[self.breaker.current_state])

    async def _recording(self, attempt: Callable[[], Any]) -> Any:
        """Remember the last fault before the breaker counts it, so a state change it causes carries it."""
        try:
            return await attempt()
        except _EngineFault as fault:
            self.last_error = fault.error.detail
            raise

    async def _run_in_background(self, attempt: Callable[[], Any]) -> Any:
        """A poller's call while the circuit is not closed: an answer closes the circuit, a fault leaves it as
        it is (see `mark_background`)."""
        try:
            result = await self._recording(attempt)
        except _EngineFault:
            raise
        except Exception:
            self._close_after_answer()
            raise
        self._close_after_answer()
        return result

    def _close_after_answer(self) -> None:
        if self.breaker.current_state != pybreaker.STATE_CLOSED:
            self.breaker.close()
        metrics.circuit_state.labels(self.engine).set(STATE_VALUES[self.breaker.current_state])


class RetryBudget:
    """Retries may add at most `ratio` of the calls made in the last `window` seconds (Finagle-style)."""

    def __init__(self, ratio: float, window: float = 10.0, floor: int = 3) -> None:
        self.ratio, self.window, self.floor = ratio, window, floor
        self._calls: deque[float] = deque()
        self._retries: deque[float] = deque()

    def _trim(self, now: float) -> None:
        for stamps in (self._calls, self._retries):
            while stamps and stamps[0] < now - self.window:
                stamps.popleft()

    def record_call(self) -> None:
        self._calls.append(time.monotonic())

    def try_spend(self) -> bool:
        now = time.monotonic()
        self._trim(now)
        if len(self._retries) >= max(self.floor, self.ratio * len(self._calls)):
            return False
        self._retries.append(now)
        return True


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def default_engine_message(response: httpx.Response) -> str | None:
    """The engine's own error text: `message` (Camunda 7, Flowable) or `detail`/`title` (RFC 7807)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:500] or None
    if isinstance(body, dict):
        for field in ("message", "detail", "title", "error", "exception"):
            if isinstance(body.get(field), str) and body[field]:
                return body[field]
    return None


ErrorClassifier = Callable[[httpx.Response, str | None], type[GatewayError] | None]


class EngineHttp:
    """One pooled HTTP client per engine, with the engine's breaker, retries and error mapping."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        breaker: EngineBreaker,
        auth: httpx.Auth | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.engine = config.name
        self.breaker = breaker
        self.budget = RetryBudget(config.retry_budget_ratio)
        self.engine_message: Callable[[httpx.Response], str | None] = default_engine_message
        self.classify: ErrorClassifier = lambda response, message: None
        self.deadline = config.connect_timeout + config.read_timeout + 1.0
        limits = httpx.Limits(max_connections=config.pool_size, max_keepalive_connections=config.pool_size)
        base_url = httpx.URL((config.url or "").rstrip("/"))
        if base_url.username and auth is None:
            # user:password in the URL is Basic auth; aiohttp refuses it alongside httpx's Authorization header.
            auth = httpx.BasicAuth(base_url.username, base_url.password)
        self.client = httpx.AsyncClient(
            base_url=base_url.copy_with(username=None, password=None) if base_url.username else base_url,
            timeout=httpx.Timeout(config.read_timeout, connect=config.connect_timeout, pool=config.connect_timeout),
            limits=limits,
            auth=auth,
            # aiohttp's connection handling behind the httpx API: about half the per-call cost of httpx's
            # own transport (bench/overhead.py), with the same request/response objects for the adapters.
            transport=transport or AiohttpTransport(limits=limits),
            headers={"Accept": "application/json"},
        )
        self._base_url = str(self.client.base_url).rstrip("/")

    async def aclose(self) -> None:
        await self.client.aclose()

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise EngineError(
                f"Engine '{self.engine}' answered {method} {path} with a body that is not JSON",
                engine=self.engine,
                engine_status=response.status_code,
                engine_message=response.text[:200] or None,
            ) from None

    async def request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        idempotent: bool | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one logical call; returns a 2xx response or raises a GatewayError."""
        if idempotent is None:
            idempotent = method.upper() in IDEMPOTENT_METHODS
        url = self._engine_url(path, kwargs)
        context = current_request.get()
        if context is not None:
            kwargs["headers"] = {**kwargs.get("headers", {}), "X-Request-Id": context.request_id}
        self.budget.record_call()
        started = time.perf_counter()
        outcome = "error"
        with tracing.span(f"engine {operation}", **{"pm.engine": self.engine, "http.request.method": method}):
            try:
                response = await self._with_retries(method, path, url, operation, idempotent, kwargs)
                outcome = "ok"
                return response
            finally:
                metrics.engine_calls.labels(self.engine, operation, outcome).observe(time.perf_counter() - started)

    def _engine_url(self, path: str, kwargs: dict[str, Any]) -> httpx.URL | str:
        """`path` (with `kwargs`' params, taken out of them) under the engine's base URL, parsed once: given a
        relative path and params, httpx parses the URL three more times per call (merging it with the base URL,
        then with the params), ~10% of a proxied read's CPU. Anything else (an absolute URL) goes to httpx as is."""
        if not path.startswith("/"):
            return path
        params = kwargs.pop("params", None)
        return httpx.URL(self._base_url + path) if params is None else httpx.URL(self._base_url + path, params=params)

    async def _with_retries(
        self, method: str, path: str, url: httpx.URL | str, operation: str, idempotent: bool, kwargs: dict[str, Any]
    ) -> httpx.Response:
        attempts = self.config.retry_attempts if idempotent else 1

        def should_retry(exc: BaseException) -> bool:
            return isinstance(exc, _EngineFault) and self.budget.try_spend()

        def wait(state: RetryCallState) -> float:
            fault = state.outcome.exception() if state.outcome else None
            if isinstance(fault, _EngineFault) and fault.retry_after is not None:
                return min(fault.retry_after, self.config.read_timeout)
            return BACKOFF(state)

        def before_sleep(_: RetryCallState) -> None:
            metrics.engine_retries.labels(self.engine, operation).inc()

        # A new AsyncRetrying per call: tenacity's retrying objects keep per-call state.
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=wait,
            retry=retry_if_exception(should_retry),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self.breaker.run(lambda: self._attempt(method, path, url, kwargs))
        except _EngineFault as fault:
            raise fault.error from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, method: str, path: str, url: httpx.URL | str, kwargs: dict[str, Any]) -> httpx.Response:
        where = f"{method} {path}"
        try:
            async with asyncio.timeout(self.deadline):
                response = await self.client.request(method, url, **kwargs)
        except (httpx.TransportError, TimeoutError) as exc:
            raise _EngineFault(self._transport_error(exc, where)) from None
        if response.status_code < 400:
            return response
        raise self._error_for(response, where)

    def _transport_error(self, exc: BaseException, where: str) -> GatewayError:
        """Tell apart why no answer came: connection refused, DNS failure, TLS failure, connect timeout (503) or
        read timeout (504), from the causes under the httpx exception (httpx-aiohttp maps a refused connection
        to `httpx.ConnectTimeout`, so the httpx class alone would mislead)."""
        url = self.config.public_url()
        unreachable = f"Engine '{self.engine}' at {url} is unreachable ({where})"
        reason = transport_failure(exc)
        if reason == "read timeout":
            return EngineTimeout(
                f"Engine '{self.engine}' at {url} did not answer {where} within {self.config.read_timeout:g} s "
                "(read timeout)",
                engine=self.engine,
            )
        if reason == "connect timeout":
            reason = f"connect timeout: no connection within {self.config.connect_timeout:g} s"
        return EngineUnavailable(f"{unreachable}: {reason}", engine=self.engine)

    def _error_for(self, response: httpx.Response, where: str) -> Exception:
        status = response.status_code
        message = self.engine_message(response)
        special = self.classify(response, message)
        context = EngineContext(engine=self.engine, engine_status=status, engine_message=message)
        detail = message or f"{where} answered {status}"
        if special is not None:
            return special(detail, **context)
        if status >= 500:
            # An engine that says it is overloaded (503) or timed out upstream (504) is unavailable or slow,
            # not wrong; any other 5xx is an error it should not have given.
            kind = {503: EngineUnavailable, 504: EngineTimeout}.get(status, EngineError)
            error = kind(f"Engine '{self.engine}' failed on {where} with {status}", **context)
            retry_after = _retry_after_seconds(response)
            if kind is EngineUnavailable and retry_after is not None:
                error.headers["Retry-After"] = str(max(1, round(retry_after)))
            return _EngineFault(error, retry_after)
        if status in (401, 403):
            return EngineError(f"Engine '{self.engine}' rejected the gateway's credentials ({status})", **context)
        mapped = {404: NotFound, 409: Conflict, 422: ValidationFailed}.get(status, BadRequest)
        return mapped(detail, **context)


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


class EngineContext(TypedDict):
    """The engine fields of a GatewayError built from an engine's answer."""

    engine: str
    engine_status: int
    engine_message: str | None


def _first(chain: list[BaseException], *kinds: type[BaseException]) -> BaseException | None:
    return next((exc for exc in chain if isinstance(exc, kinds)), None)


def transport_failure(exc: BaseException) -> str:
    """A short, user-readable reason for a failed HTTP exchange with no answer, e.g. `connection refused`,
    `DNS lookup failed: Name or service not known`, `TLS handshake failed: ...`, `connect timeout`,
    `read timeout`, `connection closed by the engine`."""
    chain = _causes(exc)
    if dns := _first(chain, aiohttp.ClientConnectorDNSError, socket.gaierror):
        reason = (
            dns.strerror
            if isinstance(dns, socket.gaierror)
            else getattr(getattr(dns, "os_error", None), "strerror", None)
        )
        return f"DNS lookup failed: {reason or dns}"
    tls = _first(chain, aiohttp.ClientSSLError, ssl.SSLError)
    if tls is not None and not isinstance(tls, ssl.SSLWantReadError | ssl.SSLWantWriteError):
        cause = _first(chain, ssl.SSLError)
        reason = getattr(cause, "reason", None) or getattr(cause, "verify_message", None) or str(cause or tls)
        return f"TLS handshake failed: {reason}"
    if _first(chain, ConnectionRefusedError):
        return "connection refused"
    if _first(chain, httpx.PoolTimeout):
        return "no free connection in the gateway's pool to the engine (pool timeout)"
    if _first(chain, aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout):
        return "connect timeout"
    if _first(chain, aiohttp.SocketTimeoutError, aiohttp.ServerTimeoutError, httpx.TimeoutException, TimeoutError):
        return "read timeout"
    if _first(chain, aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError, ConnectionResetError):
        return "connection closed by the engine before it answered"
    if os_error := _first(chain, OSError):
        return f"network error: {getattr(os_error, 'strerror', None) or os_error.__class__.__name__}"
    return f"network error: {str(exc) or exc.__class__.__name__}"


class RedisBreakerSync:
    """Shares each engine's circuit state between gateway replicas through Redis, without blocking.

    A state change is published from a background task; every replica applies what the others publish
    (pub/sub) and reads the stored state when it starts. Checking the circuit stays an in-memory read.
    """

    CHANNEL = "pm:breaker"

    def __init__(self, redis: Any, breakers: dict[str, EngineBreaker]) -> None:
        import uuid

        self.redis = redis
        self.breakers = breakers
        self.origin = uuid.uuid4().hex
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listener: asyncio.Task[Any] | None = None

    async def start(self) -> None:
        """Subscribe and adopt the stored states; a Redis that is down delays sharing, never the start."""
        for engine, breaker in self.breakers.items():
            breaker.storage.on_change = lambda state, opened_at, engine=engine: self._publish(engine, state, opened_at)
        self._listener = asyncio.create_task(self._listen(await self._connect()))

    async def _connect(self) -> Any:
        """Subscribe first, then read the stored states, so no change falls between the two."""
        try:
            pubsub = self.redis.pubsub()
            await pubsub.subscribe(self.CHANNEL)
            for engine, breaker in self.breakers.items():
                stored = await self.redis.hgetall(f"pm:breaker:{engine}")
                if stored:
                    self._adopt(breaker, stored)
            return pubsub
        except Exception:  # /ready reports Redis; engine calls go on with local state
            log.warning("could not reach Redis to share circuit states; retrying every second", exc_info=True)
            return None

    @staticmethod
    def _adopt(breaker: EngineBreaker, fields: dict[Any, Any]) -> None:
        text = {
            k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
            for k, v in fields.items()
        }
        opened_at = datetime.fromisoformat(text["opened_at"]) if text.get("opened_at") else None
        breaker.storage.apply_remote(text["state"], opened_at)
        if text.get("last_error"):
            breaker.last_error = text["last_error"]

    def _publish(self, engine: str, state: str, opened_at: datetime | None) -> None:
        fields = {
            "state": state,
            "opened_at": opened_at.isoformat() if opened_at else "",
            "last_error": self.breakers[engine].last_error or "",
        }

        async def send() -> None:
            try:
                await self.redis.hset(f"pm:breaker:{engine}", mapping=fields)
                await self.redis.publish(
                    self.CHANNEL, jsonlib.dumps({"engine": engine, "origin": self.origin, **fields})
                )
            except Exception:  # a Redis outage must not fail engine calls
                log.warning("could not share circuit state of %s through Redis", engine, exc_info=True)

        task = asyncio.get_running_loop().create_task(send())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _listen(self, pubsub: Any) -> None:
        while True:
            if pubsub is None:
                await asyncio.sleep(1.0)
                pubsub = await self._connect()
                continue
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep listening across Redis outages
                log.warning("circuit state listener lost Redis", exc_info=True)
                pubsub = None
                continue
            if message:
                self._apply(jsonlib.loads(message["data"]))

    def _apply(self, data: dict[str, Any]) -> None:
        breaker = self.breakers.get(data.get("engine", ""))
        if breaker is not None and data.get("origin") != self.origin:
            self._adopt(breaker, data)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
