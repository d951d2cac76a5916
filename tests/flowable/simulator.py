"""A stateful simulator of the Flowable 7.2 process REST API (`flowable-rest`), as an httpx transport.

It serves the paths, bodies and status codes of the official spec (flowable-rest-process-swagger-7.2.0,
the spec the `flowable/flowable-rest:7.2.0` webapp serves); each route names its operationId. Behaviour
the spec leaves open follows Flowable's REST and engine code: error bodies are ErrorInfo
`{"message": <status phrase>, "exception": <the exception's text>}` with BaseExceptionHandlerAdvice's
statuses, lists are DataResponse pages (PaginateListUtil), and basic auth is always required. The engine
model is in `tests.flowable.engine`. A filter the simulator does not implement fails the test loudly
rather than being ignored.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from tests.flowable.engine import (
    ActivityInstance,
    ConflictError,
    Definition,
    Deployment,
    Engine,
    FlowableException,
    IllegalArgument,
    Instance,
    Job,
    ObjectNotFound,
    TaskAlreadyClaimed,
    TaskEntity,
    Variable,
)

BASE_PATH = "/flowable-rest/service"
ENGINE_VERSION = "7.2.0"
INT32 = (-(2**31), 2**31 - 1)
JOB_TABLES = {"jobs": "job", "timer-jobs": "timer", "deadletter-jobs": "deadletter"}


# ---------------------------------------------------------------- formats
def fmt(moment: datetime | None) -> str | None:
    """Jackson's StdDateFormat, as Spring Boot configures it: milliseconds and a `+00:00` offset."""
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+00:00"


def parse_moment(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def iso_seconds(moment: datetime) -> str:
    """Jackson's ISO8601DateFormat (the `date` variable converter): UTC, no milliseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_instant(moment: datetime) -> str:
    """java.time.Instant.toString(): the fraction only when there is one, in groups of three digits."""
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    millis = moment.microsecond // 1000
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def flag(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    return str(value).lower() == "true"


# ---------------------------------------------------------------- variables (RestResponseFactory converters)
def variable_from_rest(item: dict[str, Any]) -> tuple[str, Variable]:
    name, kind, value = item.get("name"), item.get("type"), item.get("value")
    if name is None:
        raise IllegalArgument("Variable name is required")
    if value is None:
        return name, Variable(None, None)
    match kind:
        case None:  # no type: what Jackson made of the JSON value
            if isinstance(value, bool):
                return name, Variable("boolean", value)
            if isinstance(value, int):
                return name, Variable("integer" if INT32[0] <= value <= INT32[1] else "long", value)
            if isinstance(value, float):
                return name, Variable("double", value)
            if isinstance(value, str):
                return name, Variable("string", value)
            raise NotImplementedError("the simulator does not store serializable (untyped object) variables")
        case "string":
            if not isinstance(value, str):
                raise IllegalArgument("Converter can only convert strings")
        case "integer" | "long" | "short" | "double":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise IllegalArgument(f"Converter can only convert {kind}s")
            value = float(value) if kind == "double" else int(value)
        case "boolean":
            if not isinstance(value, bool):
                raise IllegalArgument("Converter can only convert booleans")
        case "date" | "instant":
            try:
                value = parse_moment(str(value))
            except ValueError:
                raise IllegalArgument(f"The given variable value is not a {kind}: '{value}'") from None
        case "json":
            if not isinstance(value, dict | list):  # JsonObjectRestVariableConverter keeps scalars as they are
                return variable_from_rest({"name": name, "value": value})
        case _:
            raise IllegalArgument(f"Variable '{name}' has unsupported type: '{kind}'.")
    return name, Variable(kind, value)


def variables_from_rest(items: list[dict[str, Any]] | None) -> dict[str, Variable]:
    return dict(variable_from_rest(item) for item in items or [])


def variable_json(name: str, variable: Variable, scope: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "value": variable.value, "scope": scope}
    if variable.type is not None:
        body["type"] = variable.type
    if variable.type == "date":
        body["value"] = iso_seconds(variable.value)
    elif variable.type == "instant":
        body["value"] = iso_instant(variable.value)
    return body


# ---------------------------------------------------------------- JSON shapes (RestResponseFactory)
def url(path: str) -> str:
    return f"http://localhost:8080{BASE_PATH}{path}"


def deployment_json(deployment: Deployment) -> dict[str, Any]:
    return {
        "id": deployment.id,
        "name": deployment.name,
        "deploymentTime": fmt(deployment.time),
        "category": None,
        "parentDeploymentId": deployment.id,
        "url": url(f"/repository/deployments/{deployment.id}"),
        "tenantId": deployment.tenant_id,
    }


def definition_json(definition: Definition) -> dict[str, Any]:
    deployment = definition.deployment
    return {
        "id": definition.id,
        "url": url(f"/repository/process-definitions/{definition.id}"),
        "key": definition.key,
        "version": definition.version,
        "name": definition.name,
        "description": definition.description,
        "tenantId": definition.tenant_id,
        "deploymentId": deployment.id,
        "deploymentUrl": url(f"/repository/deployments/{deployment.id}"),
        "resource": url(f"/repository/deployments/{deployment.id}/resources/{deployment.resource_name}"),
        "diagramResource": None,
        "category": definition.category,
        "graphicalNotationDefined": False,
        "suspended": definition.suspended,
        "startFormDefined": False,
    }


def instance_json(instance: Instance) -> dict[str, Any]:
    definition = instance.definition
    return {
        "id": instance.id,
        "url": url(f"/runtime/process-instances/{instance.id}"),
        "name": None,
        "businessKey": instance.business_key,
        "businessStatus": None,
        "suspended": instance.suspended,
        "ended": instance.ended,
        "processDefinitionId": definition.id,
        "processDefinitionUrl": url(f"/repository/process-definitions/{definition.id}"),
        "processDefinitionName": definition.name,
        "processDefinitionDescription": definition.description,
        "activityId": None,
        "startUserId": instance.start_user,
        "startTime": fmt(instance.start_time),
        "superProcessInstanceId": None,
        "variables": [],
        "callbackId": None,
        "callbackType": None,
        "referenceId": None,
        "referenceType": None,
        "propagatedStageInstanceId": None,
        "tenantId": instance.tenant_id,
        "completed": instance.ended,
    }


def historic_instance_json(instance: Instance) -> dict[str, Any]:
    definition = instance.definition
    duration = instance.end_time - instance.start_time if instance.end_time else None
    return {
        "id": instance.id,
        "url": url(f"/history/historic-process-instances/{instance.id}"),
        "name": None,
        "businessKey": instance.business_key,
        "businessStatus": None,
        "processDefinitionId": definition.id,
        "processDefinitionUrl": url(f"/repository/process-definitions/{definition.id}"),
        "processDefinitionName": definition.name,
        "processDefinitionDescription": definition.description,
        "startTime": fmt(instance.start_time),
        "endTime": fmt(instance.end_time),
        "durationInMillis": int(duration.total_seconds() * 1000) if duration is not None else None,
        "startUserId": instance.start_user,
        "startActivityId": definition.start,
        "endActivityId": None,
        "deleteReason": instance.delete_reason,
        "superProcessInstanceId": None,
        "variables": [],
        "callbackId": None,
        "callbackType": None,
        "referenceId": None,
        "referenceType": None,
        "propagatedStageInstanceId": None,
        "tenantId": instance.tenant_id,
    }


def activity_json(activity: ActivityInstance, historic: bool) -> dict[str, Any]:
    instance = activity.instance
    duration = activity.end_time - activity.start_time if activity.end_time else None
    prefix = "/history/historic-process-instances" if historic else "/runtime/process-instances"
    return {
        "id": activity.id,
        "activityId": activity.activity_id,
        "activityName": activity.name,
        "activityType": activity.type,
        "processDefinitionId": instance.definition.id,
        "processDefinitionUrl": url(f"/repository/process-definitions/{instance.definition.id}"),
        "processInstanceId": instance.id,
        "processInstanceUrl": url(f"{prefix}/{instance.id}"),
        "executionId": instance.id,
        "taskId": activity.task_id,
        "calledProcessInstanceId": None,
        "assignee": activity.assignee,
        "startTime": fmt(activity.start_time),
        "endTime": fmt(activity.end_time),
        "durationInMillis": int(duration.total_seconds() * 1000) if duration is not None else None,
        "tenantId": instance.tenant_id,
    }


def task_json(task: TaskEntity) -> dict[str, Any]:
    instance = task.instance
    return {
        "id": task.id,
        "url": url(f"/runtime/tasks/{task.id}"),
        "owner": task.owner,
        "assignee": task.assignee,
        "delegationState": task.delegation_state,
        "name": task.node.name,
        "description": None,
        "createTime": fmt(task.create_time),
        "dueDate": None,
        "priority": 50,
        "suspended": task.suspended,
        "claimTime": fmt(task.claim_time),
        "taskDefinitionKey": task.node.id,
        "scopeDefinitionId": None,
        "scopeId": None,
        "subScopeId": None,
        "scopeType": None,
        "propagatedStageInstanceId": None,
        "tenantId": instance.tenant_id,
        "category": None,
        "formKey": task.node.form_key,
        "parentTaskId": None,
        "parentTaskUrl": None,
        "executionId": instance.id,
        "executionUrl": url(f"/runtime/executions/{instance.id}"),
        "processInstanceId": instance.id,
        "processInstanceUrl": url(f"/runtime/process-instances/{instance.id}"),
        "processDefinitionId": instance.definition.id,
        "processDefinitionUrl": url(f"/repository/process-definitions/{instance.definition.id}"),
        "variables": [],
    }


def historic_task_json(task: TaskEntity) -> dict[str, Any]:
    instance = task.instance
    duration = task.end_time - task.create_time if task.end_time else None
    return {
        "id": task.id,
        "processDefinitionId": instance.definition.id,
        "processDefinitionUrl": url(f"/repository/process-definitions/{instance.definition.id}"),
        "processInstanceId": instance.id,
        "processInstanceUrl": url(f"/history/historic-process-instances/{instance.id}"),
        "executionId": instance.id,
        "name": task.node.name,
        "description": None,
        "deleteReason": task.delete_reason,
        "owner": task.owner,
        "assignee": task.assignee,
        "startTime": fmt(task.create_time),
        "endTime": fmt(task.end_time),
        "durationInMillis": int(duration.total_seconds() * 1000) if duration is not None else None,
        "workTimeInMillis": None,
        "claimTime": fmt(task.claim_time),
        "taskDefinitionKey": task.node.id,
        "formKey": task.node.form_key,
        "priority": 50,
        "dueDate": None,
        "parentTaskId": None,
        "url": url(f"/history/historic-task-instances/{task.id}"),
        "variables": [],
        "scopeDefinitionId": None,
        "scopeId": None,
        "subScopeId": None,
        "scopeType": None,
        "propagatedStageInstanceId": None,
        "tenantId": instance.tenant_id,
        "category": None,
    }


def identity_links(task: TaskEntity) -> list[tuple[str | None, str | None, str]]:
    links: list[tuple[str | None, str | None, str]] = [(None, g, "candidate") for g in task.node.candidate_groups]
    links += [(u, None, "candidate") for u in task.node.candidate_users]
    if task.assignee:
        links.append((task.assignee, None, "assignee"))
    if task.owner:
        links.append((task.owner, None, "owner"))
    return links


def job_json(job: Job, collection: str) -> dict[str, Any]:
    instance = job.instance
    return {
        "id": job.id,
        "url": url(f"/management/{collection}/{job.id}"),
        "correlationId": job.id,
        "processInstanceId": instance.id,
        "processInstanceUrl": url(f"/runtime/process-instances/{instance.id}"),
        "processDefinitionId": instance.definition.id,
        "processDefinitionUrl": url(f"/repository/process-definitions/{instance.definition.id}"),
        "executionId": instance.id,
        "executionUrl": url(f"/runtime/executions/{instance.id}"),
        "elementId": job.node.id,
        "elementName": job.node.name,
        "handlerType": "async-continuation",
        "retries": job.retries,
        "exceptionMessage": job.exception_message,
        "dueDate": fmt(job.due_date),
        "createTime": fmt(job.create_time),
        "lockOwner": None,
        "lockExpirationTime": None,
        "tenantId": instance.tenant_id,
    }


# ---------------------------------------------------------------- paging (PaginateListUtil)
Sorts = dict[str, Callable[[Any], Any]]


def paginate(
    items: list[Any], params: dict[str, Any], default_sort: str, sorts: Sorts, render: Callable[[Any], dict[str, Any]]
) -> dict[str, Any]:
    start = max(int(params.get("start") or 0), 0)
    size = int(params["size"]) if params.get("size") is not None else 10
    sort, order = params.get("sort") or default_sort, params.get("order") or "asc"
    if sort not in sorts:
        raise IllegalArgument(f"Value for param 'sort' is not valid, '{sort}' is not a valid property")
    if order not in ("asc", "desc"):
        raise IllegalArgument(f"Value for param 'order' is not valid : '{order}', must be 'asc' or 'desc'")
    key = sorts[sort]
    present = sorted((i for i in items if key(i) is not None), key=key, reverse=order == "desc")
    missing = [i for i in items if key(i) is None]  # NULLs sort last ascending, first descending
    ordered = present + missing if order == "asc" else missing + present
    page = ordered[start : start + size]
    return {
        "data": [render(item) for item in page],
        "total": len(items),
        "start": start,
        "sort": sort,
        "order": order,
        "size": len(page),
    }


QUERY_OPERATIONS: dict[str, Callable[[Any, Any], bool]] = {
    "equals": lambda a, b: a == b,
    "notEquals": lambda a, b: a != b,
    "greaterThan": lambda a, b: a > b,
    "greaterThanOrEquals": lambda a, b: a >= b,
    "lessThan": lambda a, b: a < b,
    "lessThanOrEquals": lambda a, b: a <= b,
    "like": lambda a, b: re.fullmatch(re.escape(b).replace("%", ".*").replace("_", "."), a) is not None,
}


def variables_meet(variables: dict[str, Variable], conditions: list[dict[str, Any]] | None) -> bool:
    """QueryVariables (`{name, operation, value}`) against typed variables: a value meets only variables of its
    own kind (numbers with numbers, strings with strings), as Flowable compares typed columns."""
    for condition in conditions or []:
        operation = condition.get("operation", "equals")
        if operation not in QUERY_OPERATIONS:
            raise IllegalArgument(f"Unsupported variable query operation: {operation}")
        if operation == "like" and not isinstance(condition.get("value"), str):
            raise IllegalArgument("Only string variable values are supported for like comparison")
        variable = variables.get(condition.get("name"))
        actual, expected = (None if variable is None else variable.value), condition.get("value")
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (actual, expected))
        if not (numbers or (actual is not None and type(actual) is type(expected))):
            return False
        if not QUERY_OPERATIONS[operation](actual, expected):
            return False
    return True


def only(params: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(params) - allowed - {"start", "size", "sort", "order"}
    if unknown:
        raise NotImplementedError(f"the Flowable simulator does not implement the filters {sorted(unknown)}")


def without_nulls(value: Any) -> Any:
    """Flowable's Jackson writes absent fields as null, which the spec's schemas (none nullable) do not allow.

    The simulator leaves them out instead, as the spec describes; a variable's `value` stays as it is, since a
    null variable is a null value there and a Json value's null entries are data (`{"n": null}` keeps `n`).
    """
    if isinstance(value, dict):
        return {k: v if k == "value" else without_nulls(v) for k, v in value.items() if v is not None or k == "value"}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value


class SpecJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return super().render(without_nulls(content))


def error(status: int, phrase: str, exception: str | None) -> JSONResponse:
    body = {"message": phrase}
    if exception is not None:
        body["exception"] = exception
    return JSONResponse(body, status_code=status)


# ---------------------------------------------------------------- the REST API
class FlowableSimulator:
    def __init__(self, username: str = "rest-admin", password: str = "test") -> None:
        self.engine = Engine()
        self._authorization = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.app = Starlette(routes=[Mount(BASE_PATH, routes=self._routes())])

    @property
    def transport(self) -> httpx.AsyncBaseTransport:
        return httpx.ASGITransport(app=self)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or [])
        if headers.get(b"authorization", b"").decode() != self._authorization:
            response: Response = Response(status_code=401, headers={"WWW-Authenticate": 'Basic realm="Flowable"'})
            await response(scope, receive, send)
            return
        self.engine.run_due_jobs()
        await self.app(scope, receive, send)

    def _routes(self) -> list[Route]:
        def route(path: str, method: str, handler: Callable[..., Any], *, transactional: bool = True) -> Route:
            async def endpoint(request: Request) -> Response:
                try:
                    # a query (GET, POST /query/...) changes nothing: no snapshot to roll back to
                    if method == "GET" or path.startswith("/query/") or not transactional:
                        return await handler(request)
                    with self.engine.transaction():
                        return await handler(request)
                except TaskAlreadyClaimed as exc:
                    return error(409, "Task was already claimed", str(exc))
                except ConflictError as exc:
                    return error(409, "Conflict", str(exc))
                except ObjectNotFound as exc:
                    return error(404, "Not found", str(exc))
                except IllegalArgument as exc:
                    return error(400, "Bad request", str(exc))
                except FlowableException as exc:
                    return error(500, "Internal server error", str(exc))

            return Route(path, endpoint, methods=[method])

        return [
            route("/management/engine", "GET", self.engine_info),
            route("/repository/deployments", "GET", self.list_deployments),
            route("/repository/deployments", "POST", self.upload_deployment),
            route("/repository/deployments/{deploymentId}", "GET", self.get_deployment),
            route("/repository/deployments/{deploymentId}", "DELETE", self.delete_deployment),
            route("/repository/process-definitions", "GET", self.list_definitions),
            route("/repository/process-definitions/{id}", "GET", self.get_definition),
            route("/repository/process-definitions/{id}", "PUT", self.definition_action),
            route("/repository/process-definitions/{id}/resourcedata", "GET", self.definition_resource),
            route("/runtime/process-instances", "POST", self.create_instance),
            route("/query/process-instances", "POST", self.query_instances),
            route("/runtime/process-instances/{id}", "GET", self.get_instance),
            route("/runtime/process-instances/{id}", "PUT", self.update_instance),
            route("/runtime/process-instances/{id}", "DELETE", self.delete_instance),
            route("/runtime/process-instances/{id}/variables", "GET", self.list_instance_variables),
            route("/runtime/process-instances/{id}/variables", "PUT", self.put_instance_variables),
            route("/runtime/process-instances/{id}/variables/{name}", "DELETE", self.delete_instance_variable),
            route("/runtime/activity-instances", "GET", self.list_activity_instances),
            route("/query/executions", "POST", self.query_executions),
            route("/runtime/executions/{id}", "PUT", self.execution_action),
            route("/runtime/signals", "POST", self.signal_received),
            route("/runtime/process-instances/{id}/change-state", "POST", self.change_state),
            route("/runtime/process-instances/{id}/migrate", "POST", self.migrate_instance),
            route("/query/historic-process-instances", "POST", self.query_historic_instances),
            route("/history/historic-process-instances/{id}", "GET", self.get_historic_instance),
            route("/query/historic-activity-instances", "POST", self.query_historic_activities),
            route("/history/historic-variable-instances", "GET", self.list_historic_variables),
            route("/query/tasks", "POST", self.query_tasks),
            route("/runtime/tasks/{id}", "GET", self.get_task),
            route("/runtime/tasks/{id}", "POST", self.task_action),
            route("/runtime/tasks/{id}", "PUT", self.update_task),
            route("/runtime/tasks/{id}/identitylinks", "GET", self.task_identity_links),
            route("/runtime/tasks/{id}/variables", "GET", self.task_variables),
            route("/query/historic-task-instances", "POST", self.query_historic_tasks),
            route("/history/historic-task-instances/{id}", "GET", self.get_historic_task),
            route("/history/historic-task-instances/{id}/identitylinks", "GET", self.historic_task_identity_links),
            route("/management/{table}", "GET", self.list_jobs),
            route("/management/{table}/{id}", "GET", self.get_job),
            # A job runs in its own transaction, and its failure is recorded after that one rolled back.
            route("/management/{table}/{id}", "POST", self.job_action, transactional=False),
            route("/management/{table}/{id}/exception-stacktrace", "GET", self.job_stacktrace),
        ]

    # ------------------------------------------------------------ management
    async def engine_info(self, request: Request) -> Response:
        # getEngineInfo
        return SpecJSONResponse({"name": "default", "resourceUrl": None, "exception": None, "version": ENGINE_VERSION})

    # ------------------------------------------------------------ repository
    async def upload_deployment(self, request: Request) -> Response:
        # uploadDeployment: the first file part; its file name decides how it is deployed
        form = await request.form()
        files = [value for value in form.values() if not isinstance(value, str)]
        if not files:
            raise IllegalArgument("Multipart request with file content is required")
        upload = files[0]
        filename = upload.filename or ""
        if not filename.endswith((".bpmn20.xml", ".bpmn")):
            raise IllegalArgument("File must be of type .bpmn20.xml, .bpmn, .bar or .zip")
        name = request.query_params.get("deploymentName") or filename.split(".")[0]
        deployment = self.engine.deploy(filename, await upload.read(), name, request.query_params.get("tenantId"))
        return SpecJSONResponse(deployment_json(deployment), status_code=201)

    async def list_deployments(self, request: Request) -> Response:
        # listDeployments
        params = dict(request.query_params)
        only(params, set())
        sorts: Sorts = {"id": lambda d: d.id, "name": lambda d: d.name, "deployTime": lambda d: d.time}
        found = list(self.engine.deployments.values())
        return SpecJSONResponse(paginate(found, params, "id", sorts, deployment_json))

    async def get_deployment(self, request: Request) -> Response:
        # getDeployment
        return SpecJSONResponse(deployment_json(self.engine.deployment(request.path_params["deploymentId"])))

    async def delete_deployment(self, request: Request) -> Response:
        # deleteDeployment
        cascade = flag(request.query_params.get("cascade")) or False
        self.engine.delete_deployment(request.path_params["deploymentId"], cascade)
        return Response(status_code=204)

    async def list_definitions(self, request: Request) -> Response:
        # listProcessDefinitions
        params = dict(request.query_params)
        only(params, {"key", "name", "latest", "suspended", "tenantId", "deploymentId"})
        found = list(self.engine.definitions.values())
        for name, attribute in (("key", "key"), ("name", "name"), ("tenantId", "tenant_id")):
            if name in params:
                found = [d for d in found if getattr(d, attribute) == params[name]]
        if "deploymentId" in params:
            found = [d for d in found if d.deployment.id == params["deploymentId"]]
        if "suspended" in params:
            found = [d for d in found if d.suspended == flag(params["suspended"])]
        if flag(params.get("latest")):
            newest: dict[tuple[str, str], Definition] = {}
            for definition in self.engine.definitions.values():
                known = newest.get((definition.key, definition.tenant_id))
                if known is None or known.version < definition.version:
                    newest[(definition.key, definition.tenant_id)] = definition
            found = [d for d in found if newest[(d.key, d.tenant_id)] is d]
        sorts: Sorts = {
            "id": lambda d: d.id,
            "key": lambda d: d.key,
            "category": lambda d: d.category,
            "name": lambda d: d.name,
            "version": lambda d: d.version,
            "deploymentId": lambda d: d.deployment.id,
            "tenantId": lambda d: d.tenant_id,
        }
        return SpecJSONResponse(paginate(found, params, "name", sorts, definition_json))

    async def get_definition(self, request: Request) -> Response:
        # getProcessDefinition
        return SpecJSONResponse(definition_json(self.engine.definition(request.path_params["id"])))

    async def definition_action(self, request: Request) -> Response:
        # executeProcessDefinitionAction
        definition = self.engine.definition(request.path_params["id"])
        body = await request.json()
        if body.get("action") not in ("suspend", "activate"):
            raise IllegalArgument(f"Invalid action: '{body.get('action')}'.")
        include = bool(body.get("includeProcessInstances"))
        self.engine.set_definition_suspended(definition, body["action"] == "suspend", include)
        return SpecJSONResponse(definition_json(definition))

    async def definition_resource(self, request: Request) -> Response:
        # getProcessDefinitionResource: the raw resource, typed by its file name
        deployment = self.engine.definition(request.path_params["id"]).deployment
        return Response(deployment.resource, media_type="text/xml")

    # ------------------------------------------------------------ process instances
    async def create_instance(self, request: Request) -> Response:
        # createProcessInstance: an unknown definition is a 400 (the not-found is re-thrown as illegal argument)
        body = await request.json()
        by_id, by_key = body.get("processDefinitionId"), body.get("processDefinitionKey")
        if body.get("message") is not None and by_id is None and by_key is None:
            variables = variables_from_rest(body.get("variables"))
            try:
                instance = self.engine.start_by_message(
                    body["message"], body.get("businessKey"), variables, body.get("tenantId")
                )
            except ObjectNotFound as exc:
                raise IllegalArgument(str(exc)) from None
            return SpecJSONResponse(instance_json(instance), status_code=201)
        if (by_id is None) == (by_key is None):
            raise IllegalArgument("Either processDefinitionId, processDefinitionKey or message is required.")
        if by_id is not None and "tenantId" in body:
            raise IllegalArgument("TenantId can only be used with either processDefinitionKey or message.")
        variables = variables_from_rest(body.get("variables"))
        try:
            if by_id is not None:
                if by_id not in self.engine.definitions:
                    raise ObjectNotFound(f"no deployed process definition found with id '{by_id}'")
                definition = self.engine.definitions[by_id]
            else:
                definition = self.engine.latest(by_key, body.get("tenantId"))
        except ObjectNotFound as exc:
            raise IllegalArgument(str(exc)) from None
        instance = self.engine.start(definition, body.get("businessKey"), variables)
        return SpecJSONResponse(instance_json(instance), status_code=201)

    def _instance_filters(self, body: dict[str, Any], instances: list[Instance]) -> list[Instance]:
        checks: dict[str, Callable[[Instance, Any], bool]] = {
            "processDefinitionKey": lambda i, v: i.definition.key == v,
            "processDefinitionId": lambda i, v: i.definition.id == v,
            "processBusinessKey": lambda i, v: i.business_key == v,
            "processInstanceIds": lambda i, v: i.id in v,
            "startedAfter": lambda i, v: i.start_time > parse_moment(v),
            "startedBefore": lambda i, v: i.start_time < parse_moment(v),
            "tenantId": lambda i, v: i.tenant_id == v,
            "suspended": lambda i, v: i.suspended == v,
            "finished": lambda i, v: i.ended == v,
        }
        for name, value in body.items():
            if name in checks:
                instances = [i for i in instances if checks[name](i, value)]
        return instances

    # ------------------------------------------------------------ executions, signals, change-state
    async def query_executions(self, request: Request) -> Response:
        # queryExecutions: the executions waiting for a message or signal (the simulator keeps one per instance)
        body = await request.json()
        only(
            body,
            {
                "messageEventSubscriptionName",
                "signalEventSubscriptionName",
                "processInstanceId",
                "processBusinessKey",
                "processInstanceVariables",
                "tenantId",
                "start",
                "size",
                "sort",
                "order",
            },
        )
        if body.get("messageEventSubscriptionName") is not None:
            rows = self.engine.catching("message", body["messageEventSubscriptionName"])
        elif body.get("signalEventSubscriptionName") is not None:
            rows = self.engine.catching("signal", body["signalEventSubscriptionName"])
        else:
            raise NotImplementedError("the Flowable simulator queries executions by event subscription only")
        instances = [instance for instance, _ in rows]
        if body.get("processBusinessKey") is not None:
            # As ExecutionQuery.processInstanceBusinessKey: only process-instance executions carry the business
            # key, and the executions subscribed to an event are their children: none of them matches.
            instances = []
        for name, check in (
            ("processInstanceId", lambda i, v: i.id == v),
            ("tenantId", lambda i, v: i.tenant_id == v),
        ):
            if body.get(name) is not None:
                instances = [i for i in instances if check(i, body[name])]
        for condition in body.get("processInstanceVariables") or []:
            if condition.get("operation") != "equals":
                raise NotImplementedError("the Flowable simulator compares variables with equals only")
            instances = [
                i
                for i in instances
                if condition["name"] in i.variables and i.variables[condition["name"]].value == condition["value"]
            ]

        def render(instance: Instance) -> dict[str, Any]:
            return {
                "id": instance.execution_id,
                "url": url(f"/runtime/executions/{instance.execution_id}"),
                "parentId": instance.id,
                "parentUrl": url(f"/runtime/executions/{instance.id}"),
                "superExecutionId": None,
                "superExecutionUrl": None,
                "processInstanceId": instance.id,
                "processInstanceUrl": url(f"/runtime/process-instances/{instance.id}"),
                "suspended": instance.suspended,
                "activityId": instance.current,
                "tenantId": instance.tenant_id,
            }

        return SpecJSONResponse(
            paginate(instances, body, "processInstanceId", {"processInstanceId": lambda i: i.id}, render)
        )

    async def execution_action(self, request: Request) -> Response:
        # performExecutionAction: messageEventReceived / signalEventReceived (204: no execution to return)
        body = await request.json()
        execution_id = request.path_params["id"]
        instance = next(
            (i for i in self.engine.instances.values() if i.execution_id == execution_id and not i.ended), None
        )
        if instance is None:
            raise ObjectNotFound(f"Could not find an execution with id '{execution_id}'.")
        action = body.get("action")
        variables = variables_from_rest(body.get("variables"))
        if action == "messageEventReceived":
            if not body.get("messageName"):
                raise IllegalArgument("Message name is required.")
            self.engine.deliver(instance, "message", body["messageName"], variables)
        elif action == "signalEventReceived":
            if not body.get("signalName"):
                raise IllegalArgument("Signal name is required")
            self.engine.deliver(instance, "signal", body["signalName"], variables)
        else:
            raise IllegalArgument(f"Invalid action: '{action}'.")
        return Response(status_code=204)

    async def signal_received(self, request: Request) -> Response:
        # signalEventReceived: synchronous unless `async` (then 202); variables only when synchronous
        body = await request.json()
        if not body.get("signalName"):
            raise IllegalArgument("signalName is required")
        if body.get("async"):
            raise NotImplementedError("the Flowable simulator handles signals synchronously only")
        self.engine.signal(body["signalName"], variables_from_rest(body.get("variables")), body.get("tenantId"))
        return Response(status_code=204)

    async def change_state(self, request: Request) -> Response:
        # changeActivityState: 200 without a body
        body = await request.json()
        instance = self.engine.instance(request.path_params["id"])
        self.engine.change_state(instance, body.get("cancelActivityIds") or [], body.get("startActivityIds") or [])
        return Response(status_code=200)

    async def migrate_instance(self, request: Request) -> Response:
        # migrateProcessInstance: the body is a migration document (ProcessInstanceMigrationDocumentConverter);
        # 200 without a body
        document = json.loads(await request.body())
        instance = self.engine.instance(request.path_params["id"])
        if "toProcessDefinitionId" not in document:
            raise NotImplementedError("the Flowable simulator migrates to a definition id only")
        try:
            target = self.engine.definition(document["toProcessDefinitionId"])
        except ObjectNotFound:
            raise FlowableException(
                "Cannot find the process definition to migrate to, with process definition identified by "
                f"[id:'{document['toProcessDefinitionId']}']"
            ) from None
        mappings = {}
        for mapping in document.get("activityMappings") or []:
            if not isinstance(mapping.get("fromActivityId"), str) or not isinstance(mapping.get("toActivityId"), str):
                raise NotImplementedError("the Flowable simulator takes one-to-one activity mappings only")
            mappings[mapping["fromActivityId"]] = mapping["toActivityId"]
        self.engine.migrate(instance, target, mappings)
        return Response(status_code=200)

    async def query_instances(self, request: Request) -> Response:
        # queryProcessInstances
        body = await request.json()
        only(
            body,
            {
                "processDefinitionKey",
                "processDefinitionId",
                "processBusinessKey",
                "processInstanceIds",
                "startedAfter",
                "startedBefore",
                "tenantId",
                "suspended",
                "variables",
            },
        )
        running = [
            i
            for i in self.engine.instances.values()
            if not i.ended and variables_meet(i.variables, body.get("variables"))
        ]
        sorts: Sorts = {
            "processDefinitionId": lambda i: i.definition.id,
            "processDefinitionKey": lambda i: i.definition.key,
            "id": lambda i: i.id,
            "startTime": lambda i: i.start_time,
            "tenantId": lambda i: i.tenant_id,
            "businessKey": lambda i: i.business_key,
        }
        return SpecJSONResponse(paginate(self._instance_filters(body, running), body, "id", sorts, instance_json))

    async def get_instance(self, request: Request) -> Response:
        # getProcessInstance
        return SpecJSONResponse(instance_json(self.engine.instance(request.path_params["id"])))

    async def update_instance(self, request: Request) -> Response:
        # updateProcessInstance with an action
        instance = self.engine.instance(request.path_params["id"])
        action = (await request.json()).get("action")
        if action not in ("suspend", "activate"):
            raise IllegalArgument(f"Invalid action: '{action}'.")
        self.engine.set_instance_suspended(instance, action == "suspend")
        return SpecJSONResponse(instance_json(instance))

    async def delete_instance(self, request: Request) -> Response:
        # deleteProcessInstance
        instance = self.engine.instance(request.path_params["id"])
        self.engine.delete_instance(instance, request.query_params.get("deleteReason"))
        return Response(status_code=204)

    async def list_instance_variables(self, request: Request) -> Response:
        # listProcessInstanceVariables: the spec documents an unknown process instance as 400 here
        try:
            instance = self.engine.execution(request.path_params["id"])
        except ObjectNotFound as exc:
            raise IllegalArgument(str(exc)) from None
        return SpecJSONResponse([variable_json(n, v, "local") for n, v in instance.variables.items()])

    async def put_instance_variables(self, request: Request) -> Response:
        # createOrUpdateProcessVariable (JSON array form)
        instance = self.engine.execution(request.path_params["id"])
        try:
            items = json.loads(await request.body())
        except ValueError:
            raise IllegalArgument("Failed to serialize to a RestVariable instance") from None
        if not isinstance(items, list) or not items:
            raise IllegalArgument("Request did not contain a list of variables to create.")
        variables = variables_from_rest(items)
        instance.variables.update(variables)
        return SpecJSONResponse([variable_json(n, v, "local") for n, v in variables.items()], status_code=201)

    async def delete_instance_variable(self, request: Request) -> Response:
        # deleteProcessInstanceVariable
        instance = self.engine.execution(request.path_params["id"])
        name = request.path_params["name"]
        if name not in instance.variables:
            raise ObjectNotFound(f"Process instance '{instance.id}' does not have a variable '{name}'.")
        del instance.variables[name]
        return Response(status_code=204)

    # ------------------------------------------------------------ activity instances and history
    ACTIVITY_SORTS: ClassVar[Sorts] = {
        "activityId": lambda a: a.activity_id,
        "activityName": lambda a: a.name,
        "activityType": lambda a: a.type,
        "endTime": lambda a: a.end_time,
        "startTime": lambda a: (a.start_time, a.order),
        "processInstanceId": lambda a: a.instance.id,
    }

    def _activities(self, params: dict[str, Any]) -> list[ActivityInstance]:
        found = self.engine.activities
        if params.get("processInstanceId") is not None:
            found = [a for a in found if a.instance.id == params["processInstanceId"]]
        if params.get("processDefinitionId") is not None:
            found = [a for a in found if a.instance.definition.id == params["processDefinitionId"]]
        if params.get("finished") is not None:
            found = [a for a in found if (a.end_time is not None) == flag(params["finished"])]
        return found

    async def list_activity_instances(self, request: Request) -> Response:
        # listActivityInstances: the runtime keeps the activity instances of running process instances
        params = dict(request.query_params)
        only(params, {"processInstanceId"})
        found = [a for a in self._activities(params) if not a.instance.ended]
        page = paginate(found, params, "startTime", self.ACTIVITY_SORTS, lambda a: activity_json(a, False))
        return SpecJSONResponse(page)

    async def query_historic_activities(self, request: Request) -> Response:
        # queryHistoricActivityInstances
        body = await request.json()
        only(body, {"processInstanceId", "processDefinitionId", "finished"})
        found = self._activities(body)
        page = paginate(found, body, "startTime", self.ACTIVITY_SORTS, lambda a: activity_json(a, True))
        return SpecJSONResponse(page)

    async def query_historic_instances(self, request: Request) -> Response:
        # queryHistoricProcessInstance
        body = await request.json()
        only(
            body,
            {
                "processDefinitionKey",
                "processDefinitionId",
                "processBusinessKey",
                "processInstanceIds",
                "startedAfter",
                "startedBefore",
                "tenantId",
                "finished",
                "finishedAfter",
                "finishedBefore",
                "variables",
            },
        )
        sorts: Sorts = {
            "processInstanceId": lambda i: i.id,
            "processDefinitionId": lambda i: i.definition.id,
            "businessKey": lambda i: i.business_key,
            "startTime": lambda i: i.start_time,
            "endTime": lambda i: i.end_time,
            "tenantId": lambda i: i.tenant_id,
        }
        found = self._instance_filters(body, list(self.engine.instances.values()))
        found = [i for i in found if variables_meet(i.variables, body.get("variables"))]
        for name, test in (
            ("finishedAfter", lambda end, bound: end > bound),
            ("finishedBefore", lambda end, bound: end < bound),
        ):
            if body.get(name) is not None:
                bound = parse_moment(body[name])
                found = [i for i in found if i.end_time is not None and test(i.end_time, bound)]
        return SpecJSONResponse(paginate(found, body, "processInstanceId", sorts, historic_instance_json))

    async def get_historic_instance(self, request: Request) -> Response:
        # getHistoricProcessInstance
        return SpecJSONResponse(historic_instance_json(self.engine.instance(request.path_params["id"], running=False)))

    async def list_historic_variables(self, request: Request) -> Response:
        # listHistoricVariableInstances: process-level variables only here (task and local ones excluded)
        params = dict(request.query_params)
        only(params, {"processInstanceId", "excludeTaskVariables", "excludeLocalVariables"})
        if not (flag(params.get("excludeTaskVariables")) and flag(params.get("excludeLocalVariables"))):
            raise NotImplementedError("the simulator keeps process-level variables only")
        instance = self.engine.instances.get(params.get("processInstanceId") or "")
        items = [(instance, name, variable) for name, variable in instance.variables.items()] if instance else []
        sorts: Sorts = {"variableName": lambda item: item[1]}

        def render(item: tuple[Instance, str, Variable]) -> dict[str, Any]:
            owner, name, variable = item
            return {
                "id": f"{owner.id}-{name}",
                "processInstanceId": owner.id,
                "processInstanceUrl": url(f"/history/historic-process-instances/{owner.id}"),
                "taskId": None,
                "executionId": owner.id,
                "variable": variable_json(name, variable, None),
            }

        return SpecJSONResponse(paginate(items, params, "variableName", sorts, render))

    # ------------------------------------------------------------ tasks
    TASK_SORTS: ClassVar[Sorts] = {
        "id": lambda t: t.id,
        "name": lambda t: t.node.name,
        "createTime": lambda t: t.create_time,
        "priority": lambda t: 50,
        "dueDate": lambda t: None,
        "assignee": lambda t: t.assignee,
        "owner": lambda t: t.owner,
        "processInstanceId": lambda t: t.instance.id,
    }

    async def query_tasks(self, request: Request) -> Response:
        # queryTasks
        body = await request.json()
        only(
            body,
            {
                "assignee",
                "assigneeLike",
                "candidateGroup",
                "candidateUser",
                "unassigned",
                "delegationState",
                "processInstanceId",
                "processDefinitionKey",
                "tenantId",
                "dueBefore",
                "processInstanceVariables",
                "taskVariables",
            },
        )
        found = [
            t
            for t in self.engine.open_tasks()
            if variables_meet(t.instance.variables, body.get("processInstanceVariables"))
            and variables_meet({}, body.get("taskVariables"))  # the simulated tasks have no local variables
        ]
        checks: dict[str, Callable[[TaskEntity, Any], bool]] = {
            "assignee": lambda t, v: t.assignee == v,
            "assigneeLike": lambda t, v: v == "%" and t.assignee is not None,
            "candidateGroup": lambda t, v: t.assignee is None and v in t.node.candidate_groups,
            "candidateUser": lambda t, v: t.assignee is None and v in t.node.candidate_users,
            "unassigned": lambda t, v: not v or t.assignee is None,
            "delegationState": lambda t, v: t.delegation_state == v,
            "processInstanceId": lambda t, v: t.instance.id == v,
            "processDefinitionKey": lambda t, v: t.instance.definition.key == v,
            "tenantId": lambda t, v: t.instance.tenant_id == v,
            "dueBefore": lambda t, v: False,  # the simulated tasks have no due date
        }
        for name, value in body.items():
            if name in checks:
                found = [t for t in found if checks[name](t, value)]
        return SpecJSONResponse(paginate(found, body, "id", self.TASK_SORTS, task_json))

    async def get_task(self, request: Request) -> Response:
        # getTask
        return SpecJSONResponse(task_json(self.engine.task(request.path_params["id"])))

    async def task_action(self, request: Request) -> Response:
        # executeTaskAction: 200 with an empty body
        task = self.engine.task(request.path_params["id"])
        body = await request.json()
        match body.get("action"):
            case "claim":
                self.engine.claim(task, body.get("assignee"))
            case "delegate":
                if body.get("assignee") is None:
                    raise IllegalArgument("An assignee is required when delegating a task.")
                self.engine.delegate(task, body["assignee"])
            case "complete":
                self.engine.complete(task, variables_from_rest(body.get("variables")))
            case "resolve":
                self.engine.resolve(task)
            case action:
                raise IllegalArgument(f"Invalid action: '{action}'.")
        return Response(status_code=200)

    async def update_task(self, request: Request) -> Response:
        # updateTask: only the fields present in the body change
        task = self.engine.task(request.path_params["id"])
        body = await request.json()
        only(body, {"assignee"})
        if "assignee" in body:
            self.engine.update_assignee(task, body["assignee"])
        return SpecJSONResponse(task_json(task))

    async def task_identity_links(self, request: Request) -> Response:
        # listTasksInstanceIdentityLinks
        task = self.engine.task(request.path_params["id"])
        return SpecJSONResponse(
            [
                {"url": url(f"/runtime/tasks/{task.id}/identitylinks"), "user": user, "group": group, "type": kind}
                for user, group, kind in identity_links(task)
            ]
        )

    async def task_variables(self, request: Request) -> Response:
        # listTaskVariables: task-local ones (none here) and the process's, scope global
        task = self.engine.task(request.path_params["id"])
        return SpecJSONResponse([variable_json(n, v, "global") for n, v in task.instance.variables.items()])

    async def query_historic_tasks(self, request: Request) -> Response:
        # queryHistoricTaskInstance
        body = await request.json()
        only(
            body,
            {
                "finished",
                "withoutDeleteReason",
                "taskDeleteReasonLike",
                "taskAssignee",
                "taskCandidateGroup",
                "processInstanceId",
                "processDefinitionKey",
                "tenantId",
                "dueDateBefore",
                "taskCreatedAfter",
                "taskCreatedBefore",
                "taskCompletedAfter",
                "taskCompletedBefore",
                "processVariables",
                "taskVariables",
            },
        )
        checks: dict[str, Callable[[TaskEntity, Any], bool]] = {
            "finished": lambda t, v: (t.end_time is not None) == v,
            "withoutDeleteReason": lambda t, v: not v or t.delete_reason is None,
            "taskDeleteReasonLike": lambda t, v: v == "%" and t.delete_reason is not None,
            "taskAssignee": lambda t, v: t.assignee == v,
            "taskCandidateGroup": lambda t, v: v in t.node.candidate_groups,
            "processInstanceId": lambda t, v: t.instance.id == v,
            "processDefinitionKey": lambda t, v: t.instance.definition.key == v,
            "tenantId": lambda t, v: t.instance.tenant_id == v,
            "dueDateBefore": lambda t, v: False,
            "taskCreatedAfter": lambda t, v: t.create_time > parse_moment(v),
            "taskCreatedBefore": lambda t, v: t.create_time < parse_moment(v),
            "taskCompletedAfter": lambda t, v: t.end_time is not None and t.end_time > parse_moment(v),
            "taskCompletedBefore": lambda t, v: t.end_time is not None and t.end_time < parse_moment(v),
        }
        found = [
            t
            for t in self.engine.tasks.values()
            if variables_meet(t.instance.variables, body.get("processVariables"))
            and variables_meet({}, body.get("taskVariables"))
        ]
        for name, value in body.items():
            if name in checks:
                found = [t for t in found if checks[name](t, value)]
        sorts: Sorts = {
            **self.TASK_SORTS,
            "taskInstanceId": lambda t: t.id,
            "startTime": lambda t: t.create_time,
            "endTime": lambda t: t.end_time,
        }
        return SpecJSONResponse(paginate(found, body, "taskInstanceId", sorts, historic_task_json))

    async def get_historic_task(self, request: Request) -> Response:
        # getTaskInstance
        return SpecJSONResponse(historic_task_json(self.engine.historic_task(request.path_params["id"])))

    async def historic_task_identity_links(self, request: Request) -> Response:
        # listHistoricTaskInstanceIdentityLinks
        task = self.engine.historic_task(request.path_params["id"])
        return SpecJSONResponse(
            [
                {
                    "type": kind,
                    "userId": user,
                    "groupId": group,
                    "taskId": task.id,
                    "taskUrl": url(f"/history/historic-task-instances/{task.id}"),
                    "processInstanceId": None,
                    "processInstanceUrl": None,
                }
                for user, group, kind in identity_links(task)
            ]
        )

    # ------------------------------------------------------------ jobs
    def _table(self, request: Request) -> tuple[str, str]:
        collection = request.path_params["table"]
        if collection not in JOB_TABLES:
            raise ObjectNotFound(f"No resource at /management/{collection}")
        return collection, JOB_TABLES[collection]

    async def list_jobs(self, request: Request) -> Response:
        # listJobs, listTimerJobs, listDeadLetterJobs
        collection, table = self._table(request)
        params = dict(request.query_params)
        only(params, {"processInstanceId", "withException"})
        found = [j for j in self.engine.jobs.values() if j.table == table]
        if "processInstanceId" in params:
            found = [j for j in found if j.instance.id == params["processInstanceId"]]
        if flag(params.get("withException")):
            found = [j for j in found if j.exception_message is not None]
        sorts: Sorts = {"id": lambda j: j.id, "dueDate": lambda j: j.due_date, "retries": lambda j: j.retries}
        return SpecJSONResponse(paginate(found, params, "id", sorts, lambda j: job_json(j, collection)))

    async def get_job(self, request: Request) -> Response:
        # getJob, getTimerJob, getDeadletterJob
        collection, table = self._table(request)
        return SpecJSONResponse(job_json(self.engine.job(table, request.path_params["id"]), collection))

    async def job_action(self, request: Request) -> Response:
        # executeJobAction ("execute"), executeTimerJobAction and executeDeadLetterJobAction ("move"): 204
        _, table = self._table(request)
        job = self.engine.job(table, request.path_params["id"])
        action = (await request.json()).get("action")
        if table == "job":
            if action != "execute":
                raise IllegalArgument("Invalid action, only 'execute' is supported.")
            self.engine.execute(job.id)
        elif action != "move":
            raise IllegalArgument(f"Invalid action: '{action}'.")
        else:
            self.engine.move_to_executable(job)
        return Response(status_code=204)

    async def job_stacktrace(self, request: Request) -> Response:
        # getJobStacktrace, getTimerJobStacktrace, getDeadLetterJobStacktrace: text/plain
        _, table = self._table(request)
        job = self.engine.job(table, request.path_params["id"])
        if job.stacktrace is None:
            raise ObjectNotFound(f"Job with id '{job.id}' does not have an exception stacktrace.")
        return Response(job.stacktrace, media_type="text/plain")
