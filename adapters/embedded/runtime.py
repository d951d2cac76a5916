"""Running workflows with SpiffWorkflow: one `Execution` per change, and what the change did.

An execution restores a workflow from its run state, applies one change (start, complete a user task,
retry a failed task, fire timers, cancel), lets the engine run until every branch waits, and reports
what happened as plain data (`Changes`) for the repository to store. Nothing here touches the database.

Rules the engine follows:
- Variables live in the instance row, typed; before a change the workflow's data is brought in line with
  them (API edits reach every waiting branch) and afterwards they are read back from the open tasks.
- Service and business rule tasks wait (STARTED) until the handler of their topic has run. Handlers run
  inline, in the same transaction as the change that reached them; the timer poller runs them for tasks
  that waited for a handler registered later.
- A failure (script error, condition error, handler exception, uncaught BPMN error) puts the task in ERROR,
  records a `Failure` (an incident) and the other branches carry on. A retry resets the task and runs it again.
- SpiffWorkflow is synchronous: every piece of engine work runs in a worker thread (`asyncio.to_thread`),
  never on the event loop, and one change may run at most MAX_ENGINE_STEPS tasks, MAX_LOOP_ROUNDS rounds of one
  loop, MAX_ENGINE_SECONDS of engine time and MAX_CALL_DEPTH nested call activities; beyond that the task that
  would run next fails with an incident and the change stops there (a runaway process, not a hung gateway).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast
from uuid import UUID

import orjson
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.config import DEFAULT_CONFIG
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.bpmn.specs.control import BoundaryEventJoin, BoundaryEventSplit
from SpiffWorkflow.bpmn.specs.defaults import BoundaryEvent, ExclusiveGateway, InclusiveGateway, StartEvent, UserTask
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import ErrorEventDefinition, SignalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.simple import NoneEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.util.diff import migrate_workflow
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import TaskNotFoundException
from SpiffWorkflow.specs.Join import Join
from SpiffWorkflow.task import Task as SpiffTask
from SpiffWorkflow.util.task import TaskState

from adapters.embedded.errors import BpmnError
from adapters.embedded.expressions import EmbeddedScriptEngine, ExpressionError, evaluate
from adapters.embedded.parsing import EventGatewayEvents, ExternalTask, ParsedProcess
from adapters.embedded.serializer import USER_DATA_CONVERTERS, UserDataWorkflowMixin, data_to_dict
from gateway.errors import BadRequest, Conflict, EngineError, NotFound
from gateway.variables import parse_datetime

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]

OPEN = TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR
_WHERE_RANK = {"waits": 0, "passed": 1, "ahead": 2}  # how an activity the migration target lacks is reported
MAX_ENGINE_STEPS = 1_000  # tasks one change may run: an endless loop becomes an incident, not a hang
# Rounds one element may loop in one change. SpiffWorkflow keeps every round in the task tree and scans the whole
# tree at each step, so a loop's rounds cost quadratically: a step budget alone let a tight loop run ~1 s.
MAX_LOOP_ROUNDS = 50
LOOP_LOOKBACK = 50  # ancestors searched for the element's previous round (longer loops hit MAX_ENGINE_STEPS)
MAX_ENGINE_SECONDS = 1.0  # engine time one change may use (SpiffWorkflow's steps grow with the task tree)
MAX_CALL_DEPTH = 20  # nested call activities / subprocesses: a recursive call becomes an incident
MAX_HANDLER_RUNS = 100  # handler calls one change may make; the rest wait for the poller
DEFAULT_PRIORITY = 50
DETAIL_LIMIT = 8_000


@dataclass(frozen=True)
class Failure:
    task_id: str
    activity_id: str | None
    activity_name: str | None
    incident_type: str  # failedJob, failedExternalTask, conditionError, unhandledBpmnError
    message: str
    detail: str | None = None


@dataclass(frozen=True)
class HumanTask:
    """A user task that became ready, with its assignment resolved."""

    id: str
    activity_id: str
    name: str | None
    description: str | None
    assignee: str | None
    candidate_users: list[str]
    candidate_groups: list[str]
    form_key: str | None
    priority: int
    due: datetime | None
    follow_up: datetime | None
    created: datetime
    variables: dict[str, Any] = field(default_factory=dict)  # its own, where they differ from the instance's


@dataclass(frozen=True)
class Activity:
    """An activity instance (one SpiffWorkflow task of a BPMN element) seen for the first time."""

    id: str
    activity_id: str
    activity_name: str | None
    activity_type: str
    status: str  # active, waiting, failed, completed, cancelled
    started_at: datetime
    ended_at: datetime | None
    assignee: str | None = None


@dataclass(frozen=True)
class ActivityUpdate:
    id: str
    status: str
    ended_at: datetime | None


@dataclass(frozen=True)
class Job:
    """Something the engine resumes by itself: a due timer, or external work once a handler exists."""

    id: str
    kind: str  # "timer" or "external"
    activity_id: str
    due_at: datetime | None = None
    topic: str | None = None


@dataclass(frozen=True)
class Subscription:
    """A waiting activity's interest in a message or signal (Camunda's event subscription)."""

    task_id: str
    event_type: str  # "message" or "signal"
    event_name: str
    activity_id: str


@dataclass
class Changes:
    state: str
    variables: dict[str, Any]
    completed: bool
    opened_tasks: list[HumanTask]
    closed_tasks: dict[str, str]  # task id -> "completed" or "cancelled"
    new_activities: list[Activity]
    updated_activities: list[ActivityUpdate]
    failures: list[Failure]
    jobs_added: list[Job]
    jobs_removed: list[str]
    subscriptions: list[Subscription]
    subscriptions_changed: bool


class _RunawayProcess(Exception):
    """The change ran out of its engine budget (steps, time or call depth); `task` is the one to blame."""

    task: SpiffTask | None = None


class EmbeddedWorkflow(BpmnWorkflow):
    """SpiffWorkflow's workflow, with engine steps that survive a subprocess ending while they run.

    SpiffWorkflow runs the subprocesses it found active when the round began; when one of them throws an
    error that a boundary event catches, its sibling instances (a parallel multi-instance subprocess) are
    cancelled and dropped, and the round then asked for a task that no longer exists.
    """

    def _do_engine_steps(self, will_complete_task: Any = None, did_complete_task: Any = None) -> bool:
        def update_workflow(workflow: Any) -> int:
            count = 0
            for task in workflow.get_tasks(state=TaskState.READY):
                if not task.task_spec.manual and task.state == TaskState.READY:
                    if will_complete_task is not None:
                        will_complete_task(task)
                    task.run()
                    count += 1
                    if did_complete_task is not None:
                        did_complete_task(task)
            return count

        active_subprocesses = self.get_active_subprocesses()
        for subprocess in sorted(active_subprocesses, key=lambda workflow: workflow.depth, reverse=True):
            if self.subprocesses.get(subprocess.parent_task_id) is not subprocess:
                continue  # ended and dropped by an earlier step of this round
            while update_workflow(subprocess) > 0:
                pass
            try:
                task = self.get_task_from_id(subprocess.parent_task_id)
            except TaskNotFoundException:
                continue
            task.task_spec._update(task)

        count = update_workflow(self)
        self._drop_orphan_subprocesses()
        return count > 0 or len(self.get_active_subprocesses()) > len(active_subprocesses)

    def _drop_orphan_subprocesses(self) -> None:
        """Subprocesses whose task has left the tree (its siblings' error cancelled it) end with it."""
        while True:
            orphans = [
                subprocess
                for subprocess in self.subprocesses.values()
                if subprocess.parent_task_id not in self.tasks
                and not any(subprocess.parent_task_id in other.tasks for other in self.subprocesses.values())
            ]
            if not orphans:
                return
            for subprocess in orphans:
                for task in subprocess.tasks.values():
                    self.event_manager.remove_task(task)
                del self.subprocesses[subprocess.parent_task_id]


class _RunStateConverter(UserDataWorkflowMixin, BpmnWorkflowConverter):
    """The workflow's run state without its specs: those come from the parsed definition, shared and cached."""

    def __init__(self, target_class: type, registry: Any, typename: str | None = None) -> None:
        super().__init__(EmbeddedWorkflow, registry, typename="BpmnWorkflow")  # the name stored states carry

    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["data"] = data_to_dict(self.registry, workflow.data)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct: dict[str, Any], *, spec: Any, subprocess_specs: dict[str, Any]) -> BpmnWorkflow:
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


class Runtime:
    """What every execution of one adapter shares: the script engine, the serializer and the handlers."""

    def __init__(self, *, allow_scripts: bool, handler_timeout: float, max_cardinality: int = 1_000) -> None:
        self.script_engine = EmbeddedScriptEngine(allow_scripts=allow_scripts, max_cardinality=max_cardinality)
        self.handler_timeout = handler_timeout
        self.handlers: dict[str, Handler] = {}
        self._registry = BpmnWorkflowSerializer.configure(
            {**DEFAULT_CONFIG, **USER_DATA_CONVERTERS, BpmnWorkflow: _RunStateConverter}
        )
        self._serializer = BpmnWorkflowSerializer(self._registry)
        self._encoder = self._serializer._encoder_cls()

    def start(
        self,
        process: ParsedProcess,
        variables: dict[str, Any],
        timer_start: str | None = None,
        *,
        message: str | None = None,
        signal: str | None = None,
    ) -> Execution:
        """A new workflow, started through the message start event of `message`, or the signal start event of
        `signal`; without either through its (first) none start event, else (as Camunda's
        startProcessInstanceByKey does) at once through its first timer start event, else its only message start
        event. `timer_start` names the timer start event whose schedule is due (see
        `adapter.EmbeddedAdapter.fire_start_timers`). Timer start events never wait inside an instance: their
        schedules start instances. BadRequest naming the message or signal when no start event catches it;
        Conflict when it starts only by a signal, or by one of several messages: the error says how it starts."""
        if message is not None:
            start, through = _start_event(process, MessageEventDefinition, message), None
        elif signal is not None:
            start, through = _start_event(process, SignalEventDefinition, signal), None
        else:
            through = _direct_start(process, timer_start)
            start = None if through is not None else _message_start(process)
        workflow = EmbeddedWorkflow(process.spec, process.subprocess_specs, script_engine=self.script_engine)
        for task in workflow.get_tasks(state=TaskState.READY):
            task.data.update(copy.deepcopy(variables))
        execution = Execution(self, process, workflow, variables)
        if through is not None:
            root = workflow.get_tasks(state=TaskState.READY)[0]
            execution._guarded(lambda: _start_through(workflow, through), blame=root)
        elif start is not None:

            def receive_event() -> None:
                workflow.do_engine_steps()  # the start event begins to wait for its message or signal
                workflow.catch(BpmnEvent(start.event_definition, payload=copy.deepcopy(variables)))

            execution._guarded(receive_event, blame=workflow.get_tasks(state=TaskState.READY)[0])
        return execution

    def resume(self, process: ParsedProcess, state: str, variables: dict[str, Any]) -> Execution:
        dct = _state_from_json(state)
        self._serializer.migrate(dct)
        workflow = self._registry.restore(dct, spec=process.spec, subprocess_specs=process.subprocess_specs)
        workflow.script_engine = self.script_engine  # never SpiffWorkflow's default: it runs eval()
        return Execution(self, process, workflow, variables)

    def dump(self, workflow: BpmnWorkflow) -> str:
        """The workflow's run state as JSON text: SpiffWorkflow's `serialize_json`, with orjson in place of `json`
        where it can (the C `json` module holds the interpreter for all of a multi-MB state, ~10 times as long,
        and the event loop waits that long); integers beyond 64 bits and NaN, which orjson does not write as
        `json` does, fall back to `serialize_json`."""
        serializer = self._serializer
        serializer.registry._encoder_mode = True  # as serialize_json: the encoder's default converts the rest
        try:
            dct = serializer.to_dict(workflow)
            dct[serializer.VERSION_KEY] = serializer.VERSION
            return orjson.dumps(dct, default=self._encoder.default, option=STATE_JSON_OPTIONS).decode()
        except orjson.JSONEncodeError:
            return serializer.serialize_json(workflow)
        finally:
            serializer.registry._encoder_mode = False


class Execution:
    """One change to one workflow, from the state before to the state after."""

    def __init__(self, runtime: Runtime, process: ParsedProcess, workflow: BpmnWorkflow, variables: dict[str, Any]):
        self.runtime = runtime
        self.process = process
        self.workflow = workflow
        self.before = {task.id: task.state for task in workflow.get_tasks()}
        self.open_activities_before = {task.id for task in workflow.get_tasks(state=OPEN) if _is_open_activity(task)}
        self.open_user_tasks_before = {
            task.id for task in workflow.get_tasks(state=TaskState.READY) if _is_user_task(task)
        }
        self.jobs_before = {job.id: job for job in self._jobs()}
        self.subscriptions_before = set(self._subscriptions())
        self.failures: list[Failure] = []
        self._started_at: dict[UUID, datetime] = {}
        self._running: SpiffTask | None = None
        self._steps = 0
        self._loop_rounds: dict[Any, int] = {}  # task spec -> rounds it looped in this change
        self._engine_started = 0.0
        self._runaway = False
        self._apply_variables(variables)

    # ------------------------------------------------------------ changes
    def complete(self, task_id: str, data: dict[str, Any]) -> None:
        task = self._task(task_id)
        if task.state != TaskState.READY or not _is_user_task(task):
            raise NotFound(f"Task {task_id} is not open")
        task.data.update(copy.deepcopy(data))
        self._guarded(task.run, blame=task)

    def retry(self, task_id: str) -> None:
        task = self._task(task_id)
        if task.state != TaskState.ERROR:
            raise Conflict(f"The failed activity {task.task_spec.bpmn_id} is no longer failed; nothing to retry")
        self._guarded(lambda: self.workflow.reset_from_task_id(task.id), blame=task)

    def fire_timers(self) -> None:
        for task in list(self.workflow.event_manager.tasks.values()):
            if _waits_for_timer(task.task_spec):
                self._guarded(functools.partial(task.task_spec._update, task), blame=task)

    def cancel(self) -> None:
        self.workflow.cancel()

    def modify(self, instructions: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
        """Move tokens as far as SpiffWorkflow can, instructions (type, activity id, variables) in order; returns
        the ids of the tasks that were open and no longer are (their incidents are resolved).

        - `start_after X`: X's open task ends without running (a failing activity is skipped) and its outgoing
          flow is taken; a passed X is reset to first ("reset to task") and then skipped.
        - `start_before X`: X was passed: the instance goes back to it (what ran after it is undone, but the process
          variables stay as they are, as on Camunda); X is open: nothing to do. The engine cannot start an activity
          ahead of the token.
        - `cancel X`: X's open tasks end; a later `start_after X` skips them instead. What is still cancelled at the
          end must leave another token (`stranded`): the embedded engine ends an instance only by terminating it.
        BadRequest naming the activity when an instruction cannot be carried out (nothing is applied)."""
        open_before = {task.id for task in self.workflow.get_tasks(state=OPEN)}
        variables = project_variables(self.workflow)  # kept when going back, as Camunda keeps process variables
        cancelled: list[SpiffTask] = []
        for kind, activity_id, data in instructions:
            open_tasks = [t for t in self.workflow.get_tasks(state=OPEN) if t.task_spec.bpmn_id == activity_id]
            if kind == "cancel":
                if not open_tasks:
                    raise BadRequest(f"Activity {activity_id!r} is not active in this instance: nothing to cancel")
                cancelled += [t for t in open_tasks if t not in cancelled]
                continue
            if kind == "start_before" and open_tasks and not any(t in cancelled for t in open_tasks):
                continue
            if kind == "start_after" and open_tasks:
                target = open_tasks[0]
            else:
                passed = [
                    t for t in self.workflow.get_tasks(state=TaskState.COMPLETED) if t.task_spec.bpmn_id == activity_id
                ]
                if not passed:
                    raise BadRequest(
                        f"The embedded engine cannot start {'before' if kind == 'start_before' else 'after'} activity "
                        f"{activity_id!r}: the instance has not reached it. It can go back to an activity it passed "
                        "(start_before), or skip an active one (start_after)"
                    )
                latest = max(passed, key=lambda t: t.last_state_change)
                self.workflow.reset_from_task_id(latest.id)
                cancelled = [t for t in cancelled if self._find(t.id) is not None]
                target = self._task(str(latest.id))
                target.data.update(copy.deepcopy(variables))  # the reset restored the data the task had then
            target.data.update(copy.deepcopy(data))
            if kind == "start_after":
                cancelled = [t for t in cancelled if t.id != target.id]
                target._set_state(TaskState.READY)
                target.complete()  # without running it: the activity is skipped
        moved = any(kind != "cancel" for kind, _, _ in instructions)
        if not moved and all(t in cancelled for t in self.workflow.get_tasks(state=OPEN) if _is_open_activity(t)):
            raise BadRequest(
                "The modification would leave the instance without an active activity; the embedded engine ends an "
                "instance only by terminating it (DELETE /instances/{id})"
            )
        for task in cancelled:
            if self._find(task.id) is not None and task.state & OPEN:
                # an activity with boundary events: its events stop waiting with it
                scope = task.parent if isinstance(task.parent.task_spec, BoundaryEventSplit) else task
                for waiting in scope:
                    self.workflow.event_manager.remove_task(waiting)
                scope.cancel()
        return [str(task_id) for task_id in open_before if (t := self._find(task_id)) is None or not t.state & OPEN]

    def migrate(self, target: ParsedProcess, mappings: Mapping[str, str]) -> list[tuple[str, str]]:
        """Put the workflow on `target`'s specs (SpiffWorkflow's `migrate_workflow`): each task goes to the spec of
        the same name, or of the activity `mappings` names for its BPMN id; the open activities are reset onto
        their new spec (same task ids) and predicted again. Returns (task id, new activity id) of every open
        activity. BadRequest naming the activities when an open one has no counterpart in `target`, or a passed
        one (its history) has none, or the instance runs subprocesses (not migrated); nothing is changed then."""
        if self.workflow.subprocesses:
            raise BadRequest("The embedded engine cannot migrate an instance inside a subprocess or call activity")
        alignment: dict[SpiffTask, Any] = {}
        unmapped: dict[str, str] = {}  # BPMN id -> "waits" | "passed" | "ahead", the lowest _WHERE_RANK of its tasks
        for task in self.workflow.tasks.values():
            spec = task.task_spec
            name = spec.name
            activity = spec.bpmn_id
            if activity is None and isinstance(spec, BoundaryEventSplit | BoundaryEventJoin):
                # SpiffWorkflow's split and join around an activity with boundary events (`ship.BoundaryEventSplit`)
                # belong to that activity: they move with it and are reported under its id
                activity = name.rpartition(".")[0]
            if activity in mappings:
                name = mappings[activity] + name.removeprefix(activity)
            elif spec.bpmn_id is None and name.startswith(f"{self.workflow.spec.name}."):
                # SpiffWorkflow's own bookkeeping specs carry the process id (`approval.EndJoin`)
                name = target.spec.name + name.removeprefix(self.workflow.spec.name)
            new = target.spec.task_specs.get(name)
            if new is None:
                where = "passed" if task.state & TaskState.FINISHED_MASK else "ahead"
                where = "waits" if _is_open_activity(task) else where
                label = activity or spec.name
                if label not in unmapped or _WHERE_RANK[where] < _WHERE_RANK[unmapped[label]]:
                    unmapped[label] = where
            alignment[task] = new
        if unmapped:
            listed = {
                where: ", ".join(repr(a) for a, w in unmapped.items() if w == where) for where in unmapped.values()
            }
            reasons = []
            if "waits" in listed:
                reasons.append(f"it waits in {listed['waits']}, which the target lacks and no mapping moves")
            if "passed" in listed:
                reasons.append(f"it passed {listed['passed']}, which the target lacks")
            if "ahead" in listed:
                reasons.append(f"its path ahead holds {listed['ahead']}, which the target lacks")
            raise BadRequest(
                f"Cannot migrate the instance: {'; '.join(reasons)} (the embedded engine keeps the activities an "
                "instance passed and the ones predicted ahead in its state; map each to an activity of the target)"
            )
        migrate_workflow(SimpleNamespace(alignment=alignment), self.workflow, target.spec)
        self.process = target
        return [
            (str(task.id), task.task_spec.bpmn_id)
            for task in self.workflow.get_tasks(state=OPEN)
            if _is_open_activity(task)
        ]

    def stranded(self) -> bool:
        """Whether the workflow has neither ended nor an active activity (after a modification cancelled its last)."""
        remaining = [t for t in self.workflow.get_tasks(state=OPEN) if _is_open_activity(t)]
        return not remaining and not self.workflow.is_completed()

    def receive(self, task_id: str, event_type: str, name: str, data: dict[str, Any]) -> None:
        """Deliver message or signal `name` with `data` (its variables) to the waiting task `task_id` alone (the
        gateway has correlated it); the task moves on at the next `advance`. NotFound when it no longer waits."""
        task = self._task(task_id)
        if task.state != TaskState.WAITING or (event_type, name) not in _catches(task.task_spec):
            raise NotFound(f"Activity {task.task_spec.bpmn_id} no longer waits for {event_type} {name!r}")
        definition_class = MessageEventDefinition if event_type == "message" else SignalEventDefinition
        event = BpmnEvent(definition_class(name), payload=copy.deepcopy(data))
        task.data.update(copy.deepcopy(data))

        def catch() -> None:
            definition = task.task_spec.event_definition
            if isinstance(definition, MessageEventDefinition):
                # Without SpiffWorkflow's correlation-property check: the gateway chose this task.
                definition.update_internal_data(task, event)
                task._set_internal_data(event_fired=True)
                task._set_state(TaskState.WAITING)
            else:
                task.task_spec.catch(task, event)
            task.task_spec._update(task)

        self._guarded(catch, blame=task)

    async def advance(self, first: Callable[[], object] | None = None) -> None:
        """Run until every branch waits: engine steps (in a worker thread), then the handlers of external tasks
        (on the loop), until nothing moves. `first`: a change to make in the same worker thread right before the
        first engine steps (e.g. completing a task): a hand-off to a thread costs 0.1-0.5 ms on a busy machine."""
        handler_runs = 0
        while True:
            runnable = await asyncio.to_thread(self._run_engine_steps, first)
            first = None
            if not runnable or handler_runs >= MAX_HANDLER_RUNS or self._runaway:
                return
            for task in runnable:
                handler_runs += 1
                await self._run_handler(task, self.runtime.handlers[task.task_spec.topic])

    # ------------------------------------------------------------ the result
    def finish(self) -> Changes:
        opened = self._open_user_tasks()  # may fail tasks whose assignment cannot be resolved: do it first
        new_activities, updated_activities = self._activity_changes({task.id: task.assignee for task in opened})
        jobs_after = {job.id: job for job in self._jobs()}
        subscriptions = list(self._subscriptions())
        variables = project_variables(self.workflow)
        contested = self._contested_names()
        opened = [replace(task, variables=self._own_variables(task.id, variables, contested)) for task in opened]
        return Changes(
            state=self.runtime.dump(self.workflow),
            variables=variables,
            completed=self.workflow.is_completed(),
            opened_tasks=opened,
            closed_tasks=self._closed_user_tasks(),
            new_activities=new_activities,
            updated_activities=updated_activities,
            failures=self.failures,
            jobs_added=[job for job_id, job in jobs_after.items() if self.jobs_before.get(job_id) != job],
            jobs_removed=[job_id for job_id, job in self.jobs_before.items() if jobs_after.get(job_id) != job],
            subscriptions=subscriptions,
            subscriptions_changed=set(subscriptions) != self.subscriptions_before,
        )

    # ------------------------------------------------------------ running
    def _run_engine_steps(self, first: Callable[[], object] | None = None) -> list[SpiffTask]:
        """`first` if given, then engine steps until every branch waits; returns the external tasks whose handler
        is registered."""
        if first is not None:
            first()
        if not self._runaway:
            for _ in range(MAX_ENGINE_STEPS):  # each failed attempt fails one more task, so this ends
                if self._guarded(lambda: self.workflow.do_engine_steps(self._will_run, self._did_run)):
                    break
                if self._runaway:
                    break
            else:
                self._runaway = True  # every attempt failed a task: what failed is an incident; stop here
        return [
            task
            for task in self.workflow.get_tasks(state=TaskState.STARTED)
            if isinstance(task.task_spec, ExternalTask) and task.task_spec.topic in self.runtime.handlers
        ]

    def _will_run(self, task: SpiffTask) -> None:
        self._running = task
        self._steps += 1
        if self._steps == 1:
            self._engine_started = time.monotonic()
        if _loops_back(task):
            rounds = self._loop_rounds[task.task_spec] = self._loop_rounds.get(task.task_spec, 0) + 1
            if rounds >= MAX_LOOP_ROUNDS:
                self._stop_runaway(
                    f"The {self.process.node(task.task_spec.bpmn_id).type} {task.task_spec.bpmn_id!r} ran {rounds} "
                    "rounds of a loop without waiting: is there an endless loop?"
                )
        if self._steps > MAX_ENGINE_STEPS:
            self._stop_runaway(f"The process ran {MAX_ENGINE_STEPS} steps without waiting: is there an endless loop?")
        if time.monotonic() - self._engine_started > MAX_ENGINE_SECONDS:
            self._stop_runaway(
                f"The process ran {self._steps} steps in {MAX_ENGINE_SECONDS:g} s without waiting: "
                "is there an endless loop?"
            )
        if task.workflow.depth > MAX_CALL_DEPTH:
            caller = self.workflow.get_task_from_id(task.workflow.parent_task_id)
            self._stop_runaway(
                f"Call activities and subprocesses nest deeper than {MAX_CALL_DEPTH} levels: "
                "does a process call itself without end?",
                blame=caller,
            )
        self._started_at.setdefault(task.id, _moment(task))

    def _stop_runaway(self, message: str, blame: SpiffTask | None = None) -> None:
        """Fail the task about to run (or `blame`) and stop this change: the rest of a runaway waits for a retry."""
        self._runaway = True
        error = _RunawayProcess(message)
        error.task = blame or self._running
        raise error

    def _did_run(self, task: SpiffTask) -> None:
        self._running = None

    async def _run_handler(self, task: SpiffTask, handler: Handler) -> None:
        try:
            result = await asyncio.wait_for(handler(copy.deepcopy(task.data)), self.runtime.handler_timeout)
            if result is not None and not isinstance(result, dict):
                raise TypeError(f"the handler returned {type(result).__name__}; expected a dict of variables or None")
        except BpmnError as error:
            await asyncio.to_thread(self._throw_bpmn_error, task, error)
        except TimeoutError:
            self._fail(
                task, "failedExternalTask", f"The handler did not finish within {self.runtime.handler_timeout:g} s"
            )
        except Exception as exc:  # any handler failure becomes an incident
            self._fail(task, "failedExternalTask", f"{type(exc).__name__}: {exc}", failure_report(_cause(exc)))
        else:
            task.data.update(copy.deepcopy(result or {}))
            await asyncio.to_thread(self._guarded, task.complete, task)

    def _throw_bpmn_error(self, task: SpiffTask, error: BpmnError) -> None:
        task.data.update(copy.deepcopy(error.variables))
        payload = copy.deepcopy(task.data)  # what the catching event passes on to its path
        event = BpmnEvent(ErrorEventDefinition(error.code, code=error.code), payload=payload, target=task.workflow)
        self.workflow.catch(event)
        if event in self.workflow.bpmn_events:  # nobody caught it
            self.workflow.bpmn_events.remove(event)
            message = f"BPMN error {error.code!r} was not caught by any boundary event"
            self._fail(task, "unhandledBpmnError", f"{message}: {error.message}" if error.message else message)

    def _guarded(self, action: Callable[[], Any], blame: SpiffTask | None = None) -> bool:
        """Run a step of the engine; a failure becomes an incident on the task that caused it."""
        try:
            action()
            return True
        except Exception as exc:  # scripts and expressions may raise anything
            culprit = getattr(exc, "task", None) or self._running or blame
            self._running = None
            if culprit is None:
                raise EngineError(f"The embedded engine failed: {exc}") from exc
            self._fail(culprit, _incident_type(culprit), _message(exc), failure_report(_cause(exc)))
            return False

    def _fail(self, task: SpiffTask, incident_type: str, message: str, detail: str | None = None) -> None:
        if task.state != TaskState.ERROR:
            task.error()
        self.workflow.event_manager.remove_task(task)  # a failed timer must not fire (and fail) again
        spec = task.task_spec
        self.failures.append(
            Failure(
                task_id=str(task.id),
                activity_id=spec.bpmn_id,
                activity_name=spec.bpmn_name,
                incident_type=incident_type,
                message=message,
                detail=detail,
            )
        )

    def _find(self, task_id: UUID) -> SpiffTask | None:
        """The task, or None when the engine has dropped it from the tree (a join or a cancelled subprocess)."""
        try:
            return self.workflow.get_task_from_id(task_id)
        except TaskNotFoundException:
            return None

    def _task(self, task_id: str) -> SpiffTask:
        task = self._find(UUID(task_id))
        if task is None:
            raise NotFound(f"Task {task_id} is not part of its instance's workflow")
        return task

    # ------------------------------------------------------------ variables
    def _apply_variables(self, variables: dict[str, Any]) -> None:
        """Make the workflow's data match the instance's variables, where the API changed them."""
        current = project_variables(self.workflow)
        changed = {name: value for name, value in variables.items() if name not in current or current[name] != value}
        removed = [name for name in current if name not in variables]
        if not changed and not removed:
            return
        # Parents too: a waiting task takes its parent's data again each time the workflow moves.
        targets = {task.id: task for task in self.workflow.get_tasks(state=OPEN)}
        targets |= {task.parent.id: task.parent for task in list(targets.values()) if task.parent is not None}
        for task in targets.values():
            for name, value in changed.items():
                task.data[name] = copy.deepcopy(value)
            for name in removed:
                task.data.pop(name, None)

    # ------------------------------------------------------------ projections
    def _open_user_tasks(self) -> list[HumanTask]:
        opened = []
        for task in self.workflow.get_tasks(state=TaskState.READY):
            if _is_user_task(task) and task.id not in self.open_user_tasks_before:
                try:
                    opened.append(_human_task(task))
                except ExpressionError as exc:
                    self._fail(task, "failedJob", f"Cannot assign the task: {exc}")
        return opened

    def _contested_names(self) -> set[str]:
        """Variables whose value differs between open tasks (a multi-instance element variable, say)."""
        seen: dict[str, Any] = {}
        contested = set()
        for task in self.workflow.get_tasks(state=OPEN):
            for name, value in task.data.items():
                if name in seen and seen[name] != value:
                    contested.add(name)
                seen.setdefault(name, value)
        return contested

    def _own_variables(self, task_id: str, variables: dict[str, Any], contested: set[str]) -> dict[str, Any]:
        """The task's variables that its instance's do not show: contested or differing ones."""
        data = self.workflow.get_task_from_id(UUID(task_id)).data
        return {
            name: value
            for name, value in data.items()
            if name in contested or name not in variables or variables[name] != value
        }

    def _closed_user_tasks(self) -> dict[str, str]:
        closed = {}
        for task_id in self.open_user_tasks_before:
            task = self._find(task_id)
            if task is None or task.state != TaskState.READY:
                completed = task is not None and task.state == TaskState.COMPLETED
                closed[str(task_id)] = "completed" if completed else "cancelled"
        return closed

    def _activity_changes(self, assignees: dict[str, str | None]) -> tuple[list[Activity], list[ActivityUpdate]]:
        new, updated = [], []
        seen = set()
        for task in self.workflow.get_tasks():
            seen.add(task.id)
            if task.task_spec.bpmn_id is None:  # SpiffWorkflow's own bookkeeping tasks
                continue
            before = self.before.get(task.id)
            if task.id in self.open_activities_before:
                if task.state != before:
                    updated.append(
                        ActivityUpdate(id=str(task.id), status=_activity_status(task), ended_at=_ended(task))
                    )
            elif _is_open_activity(task) and before == TaskState.COMPLETED:
                # reset to a passed activity (modification): its record is open again
                updated.append(ActivityUpdate(id=str(task.id), status=_activity_status(task), ended_at=None))
            elif _is_open_activity(task) or self._ended_here(task, before):
                new.append(self._activity(task, assignees.get(str(task.id))))
        now = datetime.now(UTC)
        for task_id in self.open_activities_before - seen:  # removed from the tree by a reset
            updated.append(ActivityUpdate(id=str(task_id), status="cancelled", ended_at=now))
        return new, updated

    def _ended_here(self, task: SpiffTask, before: int | None) -> bool:
        """Completed in this change, or cancelled after it started running in it (not a path never taken)."""
        if task.state == TaskState.COMPLETED:
            return before != TaskState.COMPLETED
        return task.state == TaskState.CANCELLED and task.id in self._started_at

    def _activity(self, task: SpiffTask, assignee: str | None) -> Activity:
        return Activity(
            id=str(task.id),
            activity_id=task.task_spec.bpmn_id,
            activity_name=task.task_spec.bpmn_name,
            activity_type=self.process.node(task.task_spec.bpmn_id).type,
            status=_activity_status(task),
            started_at=self._started_at.get(task.id, _moment(task)),
            ended_at=_ended(task),
            assignee=assignee,
        )

    def _jobs(self) -> Iterator[Job]:
        for task in self.workflow.get_tasks(state=TaskState.WAITING | TaskState.STARTED):
            spec = task.task_spec
            if task.state == TaskState.STARTED and isinstance(spec, ExternalTask):
                yield Job(id=str(task.id), kind="external", activity_id=spec.bpmn_id, topic=spec.topic)
            elif task.state == TaskState.WAITING and _waits_for_timer(spec) and not _cycle_exhausted(task):
                yield Job(id=str(task.id), kind="timer", activity_id=spec.bpmn_id, due_at=_timer_due(task))

    def _subscriptions(self) -> Iterator[Subscription]:
        for task in self.workflow.get_tasks(state=TaskState.WAITING):
            for event_type, name in _catches(task.task_spec):
                yield Subscription(str(task.id), event_type, name, task.task_spec.bpmn_id)


def _catches(spec: Any) -> list[tuple[str, str]]:
    """The (event type, name) pairs of the messages and signals a waiting task spec catches."""
    definition = getattr(spec, "event_definition", None)
    if definition is None:
        return []
    definitions = getattr(definition, "event_definitions", [definition])
    found = []
    for one in definitions:
        if isinstance(one, MessageEventDefinition):
            found.append(("message", one.name))
        elif isinstance(one, SignalEventDefinition):
            found.append(("signal", one.name))
    return found


def _start_event(process: ParsedProcess, kind: type, name: str) -> Any:
    """The process's own start event catching message or signal `name`; BadRequest naming the start events."""
    starts = [spec for spec in process.spec.task_specs.values() if isinstance(spec, StartEvent)]
    for start in starts:
        if isinstance(start.event_definition, kind) and getattr(start.event_definition, "name", None) == name:
            return start
    what = "message" if kind is MessageEventDefinition else "signal"
    known = ", ".join(f"{start.bpmn_id!r} ({_trigger(start.event_definition)})" for start in starts)
    raise BadRequest(f"Process {process.key!r} has no start event for {what} {name!r}; its start events: {known}")


def _trigger(definition: Any) -> str:
    if isinstance(definition, MessageEventDefinition):
        return f"message {definition.name!r}"
    if isinstance(definition, SignalEventDefinition):
        return f"signal {definition.name!r}"
    if isinstance(definition, TimerEventDefinition):
        return "timer"
    return "none"


def _direct_start(process: ParsedProcess, timer_start: str | None) -> Any:
    """In a process with timer start events, the start event to start through: `timer_start`, else the first none
    start event, else the first timer start event. None without timer start events (SpiffWorkflow's own way)."""
    starts = [spec for spec in process.spec.task_specs.values() if isinstance(spec, StartEvent)]
    timers = [start for start in starts if isinstance(start.event_definition, TimerEventDefinition)]
    if timer_start is not None:
        return next(start for start in timers if start.bpmn_id == timer_start)  # schedules come from these specs
    if not timers:
        return None
    nones = [start for start in starts if isinstance(start.event_definition, NoneEventDefinition)]
    return (nones or timers)[0]


def _start_through(workflow: BpmnWorkflow, start: Any) -> None:
    """Start at once through the start event `start`: SpiffWorkflow's start tasks run, the other start events
    are withdrawn (a due timer would start the instance a second time) and `start` fires (a timer cycle's path
    is added as SpiffWorkflow adds each of its rounds)."""
    for _ in range(2):  # the root task, then the split before several start events
        for task in workflow.get_tasks(state=TaskState.READY):
            if task.task_spec.bpmn_id is None:
                task.run()
    starts = [
        task for task in workflow.get_tasks(state=TaskState.READY | TaskState.WAITING)
        if isinstance(task.task_spec, StartEvent)
    ]  # fmt: skip
    for task in starts:
        workflow.event_manager.remove_task(task)
        if task.task_spec is not start:
            task.cancel()
    fired = next(task for task in starts if task.task_spec is start)
    if not fired.children:
        for output in start.outputs:
            child = fired._add_child(output, TaskState.FUTURE)
            child.task_spec._predict(child, mask=TaskState.NOT_FINISHED_MASK)
    fired._set_internal_data(event_fired=True)
    start._update(fired)


def _message_start(process: ParsedProcess) -> Any:
    """The start event to start through when the process has no none or timer start event (see Runtime.start)."""
    starts = [spec for spec in process.spec.task_specs.values() if isinstance(spec, StartEvent)]
    if any(not isinstance(start.event_definition, MessageEventDefinition | SignalEventDefinition) for start in starts):
        return None
    messages = [start for start in starts if isinstance(start.event_definition, MessageEventDefinition)]
    if len(messages) == 1:
        return messages[0]
    described = ", ".join(
        f"{'message' if isinstance(start.event_definition, MessageEventDefinition) else 'signal'} "
        f"{start.event_definition.name!r} (start event {start.bpmn_id!r})"
        for start in starts
    )
    raise Conflict(
        f"Process {process.key!r} has no none start event; it starts by {described}. Name the message with "
        "`start_message` on POST /instances, or broadcast the signal with POST /api/processes/signals"
    )


def project_variables(workflow: BpmnWorkflow) -> dict[str, Any]:
    """The workflow's variables as one map: the data of every open task (the ended workflow: of its last task)."""
    open_tasks = workflow.get_tasks(state=OPEN)
    if not open_tasks:
        return dict(workflow.last_task.data) if workflow.last_task is not None else {}
    merged: dict[str, Any] = {}
    for task in open_tasks:
        if isinstance(task.task_spec, Join) and task.parent is not None:
            merged.update(task.parent.data)  # a waiting join has not merged its incoming branches yet
        merged.update(task.data)
    return merged


def _is_open_activity(task: SpiffTask) -> bool:
    if task.task_spec.bpmn_id is None or not task.state & OPEN:
        return False
    # A boundary event waits with its activity and a join for its other branches: neither is an activity yet.
    return not (task.state == TaskState.WAITING and isinstance(task.task_spec, BoundaryEvent | Join))


def _loops_back(task: SpiffTask) -> bool:
    """The task is another round of an element that ran before on its own path (a loop), not a sibling (a
    multi-instance or a parallel branch): SpiffWorkflow adds each round as a descendant of the previous one."""
    ancestor = task.parent
    for _ in range(LOOP_LOOKBACK):
        if ancestor is None:
            return False
        if ancestor.task_spec is task.task_spec:
            return True
        ancestor = ancestor.parent
    return False


def _is_user_task(task: SpiffTask) -> bool:
    return isinstance(task.task_spec, UserTask)


def _activity_status(task: SpiffTask) -> str:
    match task.state:
        case TaskState.READY:
            return "active"
        case TaskState.STARTED:
            return "waiting" if isinstance(task.task_spec, ExternalTask) else "active"
        case TaskState.WAITING:
            return "waiting"
        case TaskState.ERROR:
            return "failed"
        case TaskState.COMPLETED:
            return "completed"
        case _:
            return "cancelled"


def _moment(task: SpiffTask) -> datetime:
    return datetime.fromtimestamp(task.last_state_change, UTC)


def _ended(task: SpiffTask) -> datetime | None:
    return _moment(task) if task.state in (TaskState.COMPLETED, TaskState.CANCELLED) else None


def _incident_type(task: SpiffTask) -> str:
    if isinstance(task.task_spec, ExclusiveGateway | InclusiveGateway):
        return "conditionError"
    if isinstance(task.task_spec, ExternalTask):
        return "failedExternalTask"
    return "failedJob"


def _message(exc: Exception) -> str:
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    notes = [note for note in getattr(exc, "notes", []) if note]
    line = getattr(exc, "line_number", None)
    error_line = getattr(exc, "error_line", None)
    if line and error_line:
        notes.append(f"(line {line}: {error_line.strip()})")
    return " ".join([text, *notes]).strip()


_MEMORY_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _cause(exc: BaseException) -> BaseException | None:
    """What raised `exc` (`raise ... from`, or raised while handling), as Python's own traceback follows it."""
    return exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)


def failure_report(exc: BaseException | None) -> str | None:
    """An incident's `detail`: `exc` and the chain of its causes, one line each ("KeyError: 'amount'", then
    "caused by: ..."), at most DETAIL_LIMIT characters; None for None. The embedded engine's stand-in for a stack
    trace: never a Python traceback (no file, line or code of the gateway) and no memory address."""
    lines: list[str] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = _MEMORY_ADDRESS.sub("", str(exc))
        line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        lines.append(f"caused by: {line}" if lines else line)
        exc = _cause(exc)
    return "\n".join(lines)[:DETAIL_LIMIT] or None


def _waits_for_timer(spec: Any) -> bool:
    """A timer event, or an event-based gateway with a timer among its events."""
    definition = getattr(spec, "event_definition", None)
    if isinstance(definition, EventGatewayEvents):
        return any(isinstance(d, TimerEventDefinition) for d in definition.event_definitions)
    return isinstance(definition, TimerEventDefinition)


def _cycle_exhausted(task: SpiffTask) -> bool:
    """A repeating timer that has fired its last cycle: it waits for nothing any more."""
    value = task.internal_data.get("event_value")
    return isinstance(value, dict) and value.get("cycles") == 0


def _timer_due(task: SpiffTask) -> datetime:
    """When a waiting timer fires; now if SpiffWorkflow has not worked it out yet (the poller will)."""
    definition = task.task_spec.event_definition
    value = task.internal_data.get("event_value")
    now = datetime.now(UTC)
    if isinstance(definition, EventGatewayEvents):
        return definition.next_due(task) or now
    try:
        if isinstance(definition, CycleTimerEventDefinition) and isinstance(value, dict):
            return datetime.fromisoformat(value["next"]) if value.get("cycles") else now
        if isinstance(definition, DurationTimerEventDefinition | TimeDateEventDefinition) and isinstance(value, str):
            due = TimerEventDefinition.parse_time_or_duration(value)
            return due if isinstance(due, datetime) else now
    except (ValueError, KeyError, TypeError):
        pass
    return now


# ------------------------------------------------------------ user task assignment
def _human_task(task: SpiffTask) -> HumanTask:
    settings: Mapping[str, str] = task.task_spec.extensions
    now = datetime.now(UTC)

    def setting(name: str) -> Any:
        raw = settings.get(name)
        if raw is None or not raw.strip():
            return None
        text = raw.strip()
        return evaluate(text, task.data) if text.startswith(("${", "#{")) and text.endswith("}") else text

    return HumanTask(
        id=str(task.id),
        activity_id=task.task_spec.bpmn_id,
        name=task.task_spec.bpmn_name,
        description=task.task_spec.documentation,
        assignee=_text(setting("assignee")),
        candidate_users=_names(setting("candidateUsers")),
        candidate_groups=_names(setting("candidateGroups")),
        form_key=_text(setting("formKey")),
        priority=_priority(setting("priority")),
        due=_deadline(setting("dueDate"), now),
        follow_up=_deadline(setting("followUpDate"), now),
        created=_moment(task),
    )


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _names(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def _priority(value: Any) -> int:
    if value is None:
        return DEFAULT_PRIORITY
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ExpressionError(f"the priority {value!r} is not a whole number") from None


def _deadline(value: Any, now: datetime) -> datetime | None:
    """An ISO 8601 date-time, or a duration from now (`P2D`)."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        if text.upper().startswith("P"):
            return now + TimerEventDefinition.get_timedelta_from_start(
                TimerEventDefinition.parse_iso_duration(text), now
            )
        return parse_datetime(text)
    except Exception:  # SpiffWorkflow's duration parser raises a bare Exception
        raise ExpressionError(f"{text!r} is neither an ISO 8601 date-time nor a duration") from None


# Natively, orjson writes datetimes, dataclasses and UUIDs its own way; SpiffWorkflow's encoder must convert the
# first two (UUIDs never reach it: to_dict converts them). Keys that are not strings are written as `json` does.
STATE_JSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS


def _state_from_json(state: str) -> dict[str, Any]:
    """A stored run state as a dict: orjson where it can (faster, so the interpreter is held for less time);
    `json` for what only it reads (integers beyond 64 bits, NaN)."""
    try:
        return cast(dict[str, Any], orjson.loads(state))
    except orjson.JSONDecodeError:
        return cast(dict[str, Any], json.loads(state))
