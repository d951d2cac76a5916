// Incidents: the list (filters, group by error, retry selected / retry all matching with live progress) and
// one incident (diagram with the failing activity marked, error, history, actions, typed variables + retry).
import { api, can } from "./api.js";
import { renderDiagram } from "./diagram.js";
import { debounce, listen } from "./live.js";
import { attempt, badge, choice, field, h, notify, table, when } from "./ui.js";
import { variablesEditor } from "./variables.js";

const STATUSES = ["", "open", "acknowledged", "retrying", "escalated", "resolved"];
const AGES = [["", "any age"], ["3600", "created in the last hour"], ["86400", "in the last day"], ["604800", "in the last 7 days"]];

/** The API's filter (IncidentSelection) from the page's parameters (`age` in seconds becomes created_after).
 * The API has no activity filter: `activity_id` narrows the page shown only, and bulk retry ignores it. */
function selection(params) {
  const filter = {};
  for (const name of ["status", "engine", "definition_key", "incident_type", "assignee", "error_hash"]) {
    if (params.get(name)) filter[name] = params.get(name);
  }
  const age = Number(params.get("age") || 0);
  if (age) filter.created_after = new Date(Date.now() - age * 1000).toISOString();
  return filter;
}

export async function incidentList(view, params) {
  const page = Number(params.get("page") || 1);
  const form = h("form", { class: "filters", "aria-label": "Incident filters" },
    choice("Status", "status", STATUSES, params.get("status") || ""),
    field("Definition", h("input", { name: "definition_key", value: params.get("definition_key") || "", size: 14 })),
    field("Activity", h("input", { name: "activity_id", value: params.get("activity_id") || "", size: 12 })),
    field("Type", h("input", { name: "incident_type", value: params.get("incident_type") || "", size: 14 })),
    field("Assignee", h("input", { name: "assignee", value: params.get("assignee") || "", size: 10 })),
    choice("Age", "age", AGES, params.get("age") || ""),
    field("Engine", h("input", { name: "engine", value: params.get("engine") || "", size: 10 })),
    h("input", { type: "hidden", name: "error_hash", value: params.get("error_hash") || "" }),
    h("button", { type: "submit", class: "primary" }, "Apply filters"),
    h("label", { class: "inline" }, h("input", { type: "checkbox", name: "group", checked: params.get("group") === "1" }), "Group by error"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [name, value] of new FormData(form)) if (value) next.set(name, name === "group" ? "1" : value);
    location.hash = `#/incidents?${next}`;
  });
  form.elements.group.addEventListener("change", () => form.requestSubmit());

  const progress = h("div", { id: "bulk-progress", role: "status", "aria-live": "polite" });
  const retrySelected = h("button", { type: "button", disabled: true }, "Retry selected");
  const retryAll = h("button", { type: "button" }, "Retry all matching");
  const results = h("div");
  // Offered only to those who may: a retry one by one needs incident:act, a retry by filter incident:bulk-retry.
  const mayRetry = can("incident:act");
  view.append(h("h1", {}, "Incidents"), form,
    h("div", { class: "bar" }, mayRetry ? retrySelected : null, can("incident:bulk-retry") ? retryAll : null, progress), results);

  async function load() {
    if (params.get("group") === "1") return showGroups();
    const answer = await api("incidents", { query: { ...selection(params), page, size: 50, sort: "created", order: "desc" } });
    let items = answer.items;
    if (params.get("activity_id")) items = items.filter((i) => i.activity_id === params.get("activity_id"));
    const rows = items.map((incident) => h("tr", {},
      h("td", {}, mayRetry && can("incident:act", incident.definition_key) ? h("input", { type: "checkbox", value: incident.id, checked: picked.has(incident.id), "aria-label": `Select incident ${incident.incident_type} at ${incident.activity_id || "?"}`, onchange: pick }) : null),
      h("td", {}, badge(incident.severity)),
      h("td", {}, badge(incident.status)),
      h("td", {}, h("a", { href: `#/incidents/${incident.id}` }, incident.incident_message || incident.incident_type)),
      h("td", {}, incident.incident_type),
      h("td", {}, incident.definition_key || ""),
      h("td", {}, incident.activity_name || incident.activity_id || ""),
      h("td", {}, incident.assignee || ""),
      h("td", {}, incident.engine),
      h("td", {}, when(incident.created))));
    const pages = Math.max(1, Math.ceil(answer.total / answer.size));
    const pageLink = (n, text) => {
      const next = new URLSearchParams(params);
      next.set("page", n);
      return h("a", { href: `#/incidents?${next}` }, text);
    };
    // A live refresh keeps the keyboard focus on the row's checkbox it was on (the row is rebuilt).
    const focused = results.contains(document.activeElement) && document.activeElement.type === "checkbox" ? document.activeElement.value : null;
    results.replaceChildren(
      table(["", "Severity", "Status", "Error", "Type", "Definition", "Activity", "Assignee", "Engine", "Created"], rows,
        `${answer.total} incidents, page ${page} of ${pages}`),
      h("p", { class: "bar" }, page > 1 ? pageLink(page - 1, "Previous page") : null, page < pages ? pageLink(page + 1, "Next page") : null));
    if (focused) [...results.querySelectorAll("input[type=checkbox]")].find((box) => box.value === focused)?.focus();
    results.dataset.loaded = "true";
    performance.mark("pm-incidents-rendered");  // User Timing: read by bench/console.py
    updateSelection();
  }

  async function showGroups() {
    const groups = await api("incidents/statistics/by-error", { query: { engine: params.get("engine") } });
    const rows = groups.items.map((group) => {
      const next = new URLSearchParams(params);
      next.delete("group");
      next.set("error_hash", group.error_hash);
      return h("tr", {},
        h("td", {}, String(group.open_count)),
        h("td", {}, h("a", { href: `#/incidents?${next}` }, group.incident_message || group.error_hash)),
        h("td", {}, (group.definitions || []).join(", ")));
    });
    results.replaceChildren(table(["Open", "Error", "Definitions"], rows, `${groups.items.length} distinct errors`));
    results.dataset.loaded = "true";
  }

  // The selection outlives the list's live refreshes (a refresh must not drop what the operator ticked).
  const picked = new Set();
  function pick(event) {
    if (event.target.checked) picked.add(event.target.value);
    else picked.delete(event.target.value);
    updateSelection();
  }
  function selected() {
    return [...picked];
  }
  function updateSelection() {
    const count = picked.size;
    retrySelected.disabled = count === 0;
    retrySelected.textContent = `Retry selected (${count})`;
  }

  // The bulk API takes a filter, so a hand-picked selection is retried one incident at a time; progress is shown alike.
  function showProgress(done, failed, total) {
    progress.replaceChildren(h("progress", { max: total, value: done + failed, "aria-label": "Retry progress" }),
      ` ${done} retried, ${failed} failed of ${total}`);
  }
  retrySelected.addEventListener("click", async () => {
    const ids = selected();
    let done = 0, failed = 0;
    showProgress(0, 0, ids.length);
    for (const id of ids) {
      try { await api(`incidents/${id}/retry`, { method: "POST", body: {} }); done++; } catch { failed++; }
      showProgress(done, failed, ids.length);
    }
    picked.clear();
    load();
  });
  retryAll.addEventListener("click", async () => {
    const accepted = await attempt(() => api("incidents/retry", { method: "POST", body: { filter: selection(params) } }));
    if (!accepted) return;
    const poll = async () => {
      const operation = await api(`operations/${accepted.operation_id}`);
      showProgress(operation.done, operation.failed, operation.total);
      if (operation.status === "completed") {
        progress.append(" - completed");
        load();
      } else timer = setTimeout(poll, 500);
    };
    poll();
  });
  let timer;
  // The stream starts with the next new event: the list is loaded again once it is open, so an incident written
  // before that is not missed, while the first render does not wait for the stream.
  const stop = listen(debounce(load, 500), "incident.");
  await load();
  stop.ready.then(load);
  return () => { stop(); clearTimeout(timer); };
}

/** A "Stack trace" disclosure for one engine incident of incident `incidentId`: opening it reads the engine
 * incident live from the engine (GET incidents/{id}/engine-incidents/{engine id}) and shows its `detail`; a
 * failed read shows the problem's detail and is tried again at the next opening. */
function stackTrace(incidentId, engineIncidentId) {
  const body = h("div", { class: "stack-trace", "aria-live": "polite" });
  const disclosure = h("details", { "data-engine-incident": engineIncidentId },
    h("summary", { "aria-label": `Stack trace of engine incident ${engineIncidentId}` }, "Stack trace"), body);
  let loaded = false;
  disclosure.addEventListener("toggle", async () => {
    if (!disclosure.open || loaded) return;
    body.setAttribute("aria-busy", "true");
    body.replaceChildren(h("p", { class: "muted" }, "Reading the stack trace from the engine..."));
    try {
      const found = await api(`incidents/${incidentId}/engine-incidents/${encodeURIComponent(engineIncidentId)}`);
      body.replaceChildren(found.detail
        ? h("pre", { tabindex: "0", "aria-label": `Stack trace of engine incident ${engineIncidentId}` }, found.detail)
        : h("p", { class: "muted" }, "The engine keeps no stack trace for this failure."));
      loaded = true;
    } catch (error) {
      body.replaceChildren(h("p", { role: "alert", class: "error" }, error.message || String(error)));
    } finally {
      body.removeAttribute("aria-busy");
      body.dataset.loaded = "true";
    }
  });
  return disclosure;
}

export async function incidentDetail(view, params, id) {
  const render = async () => {
    const incident = await api(`incidents/${id}`);
    const engine = incident.engine;
    const heading = h("h1", {}, `${incident.incident_type} at ${incident.activity_name || incident.activity_id || "?"}`);
    const diagram = h("div", { class: "diagram", id: "diagram", role: "img", "aria-label": `Diagram of ${incident.definition_key}, failing activity ${incident.activity_id} marked` });
    const facts = h("dl", {},
      h("dt", {}, "Status"), h("dd", { id: "incident-status" }, badge(incident.status)),
      h("dt", {}, "Severity"), h("dd", {}, badge(incident.severity)),
      h("dt", {}, "Instance"), h("dd", {}, incident.instance_id ? h("a", { href: `#/instances/${incident.instance_id}?engine=${engine}` }, incident.instance_id) : "-"),
      h("dt", {}, "Definition"), h("dd", {}, incident.definition_key || "-"),
      h("dt", {}, "Assignee"), h("dd", {}, incident.assignee || "-"),
      h("dt", {}, "Retries"), h("dd", {}, String(incident.retry_count)),
      incident.resolution ? [h("dt", {}, "Resolution"), h("dd", {}, `${incident.resolution.type}: ${incident.resolution.message || ""}`)] : null);
    const errors = h("div", {},
      h("h2", {}, "Error"),
      h("pre", { id: "incident-message" }, incident.incident_message || "(no message)"),
      incident.engine_incidents.map((linked) => h("section", { class: "engine-incident", "aria-label": `Engine incident ${linked.id}` },
        h("h3", {}, `Engine incident ${linked.id} (${linked.open ? "open" : "closed"})`),
        h("pre", {}, linked.message || "(no message)"),
        stackTrace(id, linked.id))));
    const history = table(["When", "Action", "User", "Message"], incident.history.map((entry) => h("tr", {},
      h("td", {}, when(entry.timestamp)), h("td", {}, entry.action), h("td", {}, entry.user), h("td", {}, entry.message || ""))));

    const act = (path, body, done) => attempt(() => api(`incidents/${id}/${path}`, { method: "POST", body }), done).then((r) => r && render());
    const text = (label, name) => field(label, h("input", { name, "aria-label": label }));
    const actionForm = (label, inputs, submit) => {
      const form = h("form", { class: "bar", "aria-label": label }, inputs, h("button", { type: "submit" }, label));
      form.addEventListener("submit", (event) => { event.preventDefault(); submit(Object.fromEntries(new FormData(form))); });
      return form;
    };
    const mayAct = can("incident:act", incident.definition_key);
    const actions = mayAct && h("div", {},
      h("h2", {}, "Actions"),
      actionForm("Assign", text("Assign to user", "user_id"), (v) => act("assign", { user_id: v.user_id }, "Assigned")),
      actionForm("Acknowledge", [], () => act("acknowledge", {}, "Acknowledged")),
      actionForm("Comment", text("Comment text", "message"), (v) => act("comments", { message: v.message }, "Comment added")),
      actionForm("Escalate", text("Escalation reason", "message"), (v) => act("escalate", { message: v.message }, "Escalated")),
      actionForm("Resolve", [choice("Resolution", "resolution_type", ["manual", "retry", "skip", "modify", "abort"], "manual"), text("Resolution note", "message")],
        (v) => act("resolve", { resolution_type: v.resolution_type, message: v.message }, "Resolved")));

    const variables = h("div", {}, h("h2", {}, "Variables"));
    if (!mayAct) variables.append(h("p", { class: "muted" }, "Retrying needs the permission incident:act."));
    else if (incident.instance_id && incident.status !== "resolved") {
      const current = await api(`instances/${incident.instance_id}/variables`, { query: { engine } }).catch(() => ({}));
      const editor = variablesEditor(current, "incident-var");
      const retry = h("button", { type: "button", class: "primary", id: "retry" }, "Save variables and retry");
      retry.addEventListener("click", async () => {
        let changes;
        try { changes = editor.changes(); } catch (error) { notify(error.message); return; }
        const body = Object.keys(changes).length ? { variables: changes } : {};
        await act("retry", body, "Retry requested");
      });
      variables.append(editor.element, h("p", {}, retry));
    } else variables.append(h("p", { class: "muted" }, "Nothing to edit: the incident is resolved or has no instance."));

    view.replaceChildren(heading, h("div", { class: "cols" }, h("div", {}, diagram, errors, variables), h("div", {}, facts, actions, h("h2", {}, "History"), history)));
    if (incident.definition_id) {
      const xml = await api(`definitions/${incident.definition_id}/xml`, { query: { engine } });
      const open = incident.status !== "resolved";
      await renderDiagram(diagram, xml, {
        markers: incident.activity_id ? { [incident.activity_id]: open ? "failed" : "completed" } : {},
        counts: incident.activity_id && open ? { [incident.activity_id]: { incidents: 1 } } : {},
      });
    }
  };
  const stop = listen(debounce((event) => event.data.incident_id === id && render(), 300), "incident.");
  await stop.ready;
  await render();
  return stop;
}
