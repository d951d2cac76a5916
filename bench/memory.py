"""Gateway RSS before and after 50 hostile requests of each kind (issue 11, item 5): `python -m bench.memory`.

Runs a real gateway process (SQLite in a temporary directory, or BENCH_DATABASE_URL) and reads its resident
set size from /proc after a warm-up, then after each batch of 50 requests:
- a 300-term condition over a 1 MiB variable (`s + s + ...`; the evaluation budget stops it: an incident),
- multi-instance `loopCardinality ${n}` with n = 20,000 (over PM_EMBEDDED_MAX_CARDINALITY: an incident),
- 4.9 MiB uploads with 200,000 elements (over PM_MAX_BPMN_ELEMENTS: a 400 before the tree is built),
- 50 distinct 600-element definitions, each deployed and started (parsed specs in the byte-bounded cache).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import httpx

from bench.common import free_port

BATCH = 50
HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?><bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"'
    ' id="d" targetNamespace="http://example.com">'
)


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def routing(terms: int) -> bytes:
    condition = "${" + " + ".join(["s"] * terms) + " != ''}"
    return (
        HEAD + '<bpmn:process id="routing" isExecutable="true"><bpmn:startEvent id="start"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="choose"/><bpmn:exclusiveGateway id="choose" default="other"/>'
        f'<bpmn:sequenceFlow id="big" sourceRef="choose" targetRef="yes"><bpmn:conditionExpression>{condition}'
        '</bpmn:conditionExpression></bpmn:sequenceFlow><bpmn:sequenceFlow id="other" sourceRef="choose" targetRef="no"/>'
        '<bpmn:userTask id="yes"/><bpmn:userTask id="no"/></bpmn:process></bpmn:definitions>'
    ).encode()


def fanout() -> bytes:
    return (
        HEAD + '<bpmn:process id="fanout" isExecutable="true"><bpmn:startEvent id="start"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="each"/><bpmn:userTask id="each">'
        "<bpmn:multiInstanceLoopCharacteristics><bpmn:loopCardinality>${n}</bpmn:loopCardinality>"
        '</bpmn:multiInstanceLoopCharacteristics></bpmn:userTask><bpmn:sequenceFlow id="f2" sourceRef="each" targetRef="end"/>'
        '<bpmn:endEvent id="end"/></bpmn:process></bpmn:definitions>'
    ).encode()


def wide(key: str, tasks: int) -> bytes:
    """A chain start -> t0 -> ... -> end spread over `tasks` manual tasks (split into 400-long chains by
    parallel branches, so the parser's recursion is not the limit)."""
    body, branches = [], max(1, tasks // 400)
    body.append('<bpmn:startEvent id="s"/><bpmn:sequenceFlow id="fs" sourceRef="s" targetRef="fork"/>')
    body.append('<bpmn:parallelGateway id="fork"/><bpmn:parallelGateway id="join"/>')
    per = tasks // branches
    for b in range(branches):
        previous = "fork"
        for n in range(per):
            body.append(
                f'<bpmn:manualTask id="t{b}_{n}"/><bpmn:sequenceFlow id="f{b}_{n}" sourceRef="{previous}" targetRef="t{b}_{n}"/>'
            )
            previous = f"t{b}_{n}"
        body.append(f'<bpmn:sequenceFlow id="j{b}" sourceRef="{previous}" targetRef="join"/>')
    body.append('<bpmn:userTask id="wait"/><bpmn:sequenceFlow id="fw" sourceRef="join" targetRef="wait"/>')
    return (
        HEAD + f'<bpmn:process id="{key}" isExecutable="true">' + "".join(body) + "</bpmn:process></bpmn:definitions>"
    ).encode()


def huge_upload() -> bytes:
    tasks = "".join(f'<bpmn:task id="t{n}"/>' for n in range(200_000))
    return (
        HEAD
        + f'<bpmn:process id="huge" isExecutable="true"><bpmn:startEvent id="s"/>{tasks}</bpmn:process></bpmn:definitions>'
    ).encode()


def deploy(client: httpx.Client, xml: bytes) -> httpx.Response:
    return client.post("/api/processes/definitions", files={"file": ("p.bpmn", xml, "application/xml")})


def main() -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        env = {
            **os.environ,
            "PM_DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", f"sqlite+aiosqlite:///{directory}/bench.db"),
            "PM_PORT": str(port),
            "PM_LOG_LEVEL": "error",
            "PM_EMBEDDED_SPEC_CACHE_BYTES": str(256 * 1024),  # small, so the definitions below overflow it
            "PM_ENGINES": json.dumps([{"name": "local", "type": "embedded", "default": True}]),
        }
        process = subprocess.Popen([sys.executable, "-m", "gateway.cli"], env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(base + "/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the gateway did not start")
                time.sleep(0.2)
            with httpx.Client(base_url=base, timeout=120) as client:
                run(client, process.pid)
        finally:
            process.terminate()
            process.wait(timeout=20)


def run(client: httpx.Client, pid: int) -> None:
    assert deploy(client, routing(300)).status_code == 201
    assert deploy(client, fanout()).status_code == 201
    one_mib = "x" * (1 << 20)
    client.post("/api/processes/instances", json={"definition_key": "fanout", "variables": {"n": 2}})  # warm-up
    start = rss_mib(pid)
    print(f"memory: RSS after warm-up {start:.1f} MiB")

    def batch(name: str, call: object) -> None:
        before = rss_mib(pid)
        statuses: dict[int, int] = {}
        steps = [before]
        started = time.perf_counter()
        for n in range(BATCH):
            status = call(n)  # type: ignore[operator]
            statuses[status] = statuses.get(status, 0) + 1
            if (n + 1) % 10 == 0:
                steps.append(rss_mib(pid))
        health = client.get("/health")
        after = rss_mib(pid)
        print(
            f"memory: {name}: {BATCH} requests {dict(sorted(statuses.items()))} in {time.perf_counter() - started:.1f} s; "
            f"RSS {before:.1f} -> {after:.1f} MiB ({after - before:+.1f}); every 10: "
            + " ".join(f"{step:.0f}" for step in steps)
            + f"; /health {health.status_code}"
        )

    batch(
        "300-term condition over a 1 MiB variable",
        lambda n: (
            client.post(
                "/api/processes/instances", json={"definition_key": "routing", "variables": {"s": one_mib}}
            ).status_code
        ),
    )
    batch(
        "loopCardinality 20,000",
        lambda n: (
            client.post(
                "/api/processes/instances", json={"definition_key": "fanout", "variables": {"n": 20_000}}
            ).status_code
        ),
    )
    huge = huge_upload()
    print(f"memory: the hostile upload is {len(huge) / (1 << 20):.1f} MiB with 200,000 elements")
    batch("4.9 MiB uploads of 200,000 elements", lambda n: deploy(client, huge).status_code)

    def deploy_and_start(n: int) -> int:
        key = f"wide{n}"
        response = deploy(client, wide(key, 300))
        if response.status_code != 201:
            return response.status_code
        return client.post("/api/processes/instances", json={"definition_key": key}).status_code

    batch("distinct 600-element definitions, deployed and started", deploy_and_start)
    print(f"memory: RSS from warm-up to the end {start:.1f} -> {rss_mib(pid):.1f} MiB")


if __name__ == "__main__":
    main()
