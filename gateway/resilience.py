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
import json as jsonlib
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pybreaker
from httpx_aiohttp import AiohttpTransport
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from gateway import metrics
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
from gateway.settings import EngineConfig

log = logging.getLogger(__name__)

STATE_VALUES = {pybreaker.STATE_CLOSED: 0, pybreaker.STATE_HALF_OPEN: 1, pybreaker.STATE_OPEN: 2}
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BACKOFF = wait_exponential_jitter(multiplier=0.05, max=1.0, jitter=0.05)


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

    def __init__(self, engine: str, fail_max: int, reset_timeout: float) -> None:
        self.engine = engine
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

    def snapshot(self) -> dict[str, Any]:
        opened_at = self.storage.opened_at if self.breaker.current_state != pybreaker.STATE_CLOSED else None
        return {"state": self.state, "failure_count": self.breaker.fail_counter, "opened_at": opened_at}

    def seconds_until_probe(self) -> float:
        opened_at = self.storage.opened_at
        if opened_at is None:
            return 0.0
        remaining = opened_at + timedelta(seconds=self.breaker.reset_timeout) - datetime.now(UTC)
        return max(0.0, remaining.total_seconds())

    def _reject(self) -> EngineUnavailable:
        metrics.circuit_rejections.labels(self.engine).inc()
        wait = max(1, round(self.seconds_until_probe()))
        return EngineUnavailable(
            f"Engine '{self.engine}' is unavailable: its circuit is open after repeated failures",
            engine=self.engine,
            headers={"Retry-After": str(wait)},
        )

    async def run(self, attempt: Callable[[], Any]) -> Any:
        current = self.breaker.current_state
        probe = current != pybreaker.STATE_CLOSED
        if probe:
            if self._probe_running or self.seconds_until_probe() > 0:
                raise self._reject()
            self._probe_running = True
        try:
            with self.breaker.calling():
                return await attempt()
        except pybreaker.CircuitBreakerError:
            raise self._reject() from None
        finally:
            if probe:
                self._probe_running = False
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
        self.client = httpx.AsyncClient(
            base_url=(config.url or "").rstrip("/"),
            timeout=httpx.Timeout(config.read_timeout, connect=config.connect_timeout, pool=config.connect_timeout),
            limits=limits,
            auth=auth,
            # aiohttp's connection handling behind the httpx API: about half the per-call cost of httpx's
            # own transport (bench/overhead.py), with the same request/response objects for the adapters.
            transport=transport or AiohttpTransport(limits=limits),
            headers={"Accept": "application/json"},
        )

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
        self.budget.record_call()
        started = time.perf_counter()
        outcome = "error"
        try:
            response = await self._with_retries(method, path, operation, idempotent, kwargs)
            outcome = "ok"
            return response
        finally:
            metrics.engine_calls.labels(self.engine, operation, outcome).observe(time.perf_counter() - started)

    async def _with_retries(
        self, method: str, path: str, operation: str, idempotent: bool, kwargs: dict[str, Any]
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
                    return await self.breaker.run(lambda: self._attempt(method, path, kwargs))
        except _EngineFault as fault:
            raise fault.error from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, method: str, path: str, kwargs: dict[str, Any]) -> httpx.Response:
        where = f"{method} {path}"
        try:
            async with asyncio.timeout(self.deadline):
                response = await self.client.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise _EngineFault(
                EngineUnavailable(
                    f"Engine '{self.engine}' is unreachable ({where}): {exc.__class__.__name__}", engine=self.engine
                )
            ) from None
        except (httpx.TimeoutException, TimeoutError):
            raise _EngineFault(
                EngineTimeout(f"Engine '{self.engine}' did not answer {where} in time", engine=self.engine)
            ) from None
        except httpx.TransportError as exc:
            raise _EngineFault(
                EngineUnavailable(f"Engine '{self.engine}' connection failed ({where}): {exc}", engine=self.engine)
            ) from None
        if response.status_code < 400:
            return response
        raise self._error_for(response, where)

    def _error_for(self, response: httpx.Response, where: str) -> Exception:
        status = response.status_code
        message = self.engine_message(response)
        special = self.classify(response, message)
        context = {"engine": self.engine, "engine_status": status, "engine_message": message}
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
                    breaker.storage.apply_remote(*self._decode(stored))
            return pubsub
        except Exception:  # noqa: BLE001 - /ready reports Redis; engine calls go on with local state
            log.warning("could not reach Redis to share circuit states; retrying every second", exc_info=True)
            return None

    @staticmethod
    def _decode(fields: dict[Any, Any]) -> tuple[str, datetime | None]:
        text = {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v for k, v in fields.items()}
        opened_at = datetime.fromisoformat(text["opened_at"]) if text.get("opened_at") else None
        return text["state"], opened_at

    def _publish(self, engine: str, state: str, opened_at: datetime | None) -> None:
        fields = {"state": state, "opened_at": opened_at.isoformat() if opened_at else ""}

        async def send() -> None:
            try:
                await self.redis.hset(f"pm:breaker:{engine}", mapping=fields)
                await self.redis.publish(self.CHANNEL, jsonlib.dumps({"engine": engine, "origin": self.origin, **fields}))
            except Exception:  # noqa: BLE001 - a Redis outage must not fail engine calls
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
            except Exception:  # noqa: BLE001 - keep listening across Redis outages
                log.warning("circuit state listener lost Redis", exc_info=True)
                pubsub = None
                continue
            if message:
                self._apply(jsonlib.loads(message["data"]))

    def _apply(self, data: dict[str, Any]) -> None:
        breaker = self.breakers.get(data.get("engine", ""))
        if breaker is not None and data.get("origin") != self.origin:
            breaker.storage.apply_remote(*self._decode(data))

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
