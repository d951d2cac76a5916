// One process instance: diagram with token positions (active), the path taken (completed) and incidents
// (failed), activity history, typed variables, incidents, suspend / activate / terminate.
import { api } from "./api.js";
import { renderDiagram } from "./diagram.js";
import { debounce, listen } from "./live.js";
import { attempt, badge, h, notify, table, when } from "./ui.js";
import { variablesEditor } from "./variables.js";

export async function instancePage(view, params, id) {
  const engine = params.get("engine") || undefined;
  const render = async () => {
    const instance = await api(`instances/${id}`, { query: { engine } });
    const markers = {};
    const counts = {};
    for (const step of instance.execution_path || []) markers[step.activity_id] = "completed";
    for (const activity of instance.current_activities || []) {
      markers[activity.id] = "active";
      counts[activity.id] = { active: (counts[activity.id]?.active || 0) + 1 };
    }
    for (const incident of instance.incidents || []) {
      if (!incident.activity_id) continue;
      markers[incident.activity_id] = "failed";
      counts[incident.activity_id] = { ...counts[incident.activity_id], incidents: (counts[incident.activity_id]?.incidents || 0) + 1 };
    }
    const diagram = h("div", { class: "diagram", id: "diagram", role: "img", "aria-label": `Diagram of ${instance.definition_key} with token positions` });
    const change = (request, done) => attempt(request, done).then((r) => r !== undefined && render());
    const lifecycle = h("div", { class: "bar" },
      instance.status === "active" ? h("button", { type: "button", onclick: () => change(() => api(`instances/${id}/suspended`, { method: "PUT", query: { engine }, body: { suspended: true } }), "Suspended") }, "Suspend") : null,
      instance.status === "suspended" ? h("button", { type: "button", onclick: () => change(() => api(`instances/${id}/suspended`, { method: "PUT", query: { engine }, body: { suspended: false } }), "Activated") }, "Activate") : null,
      ["active", "suspended"].includes(instance.status) ? h("button", { type: "button", onclick: () => confirm("Terminate this instance?") && change(() => api(`instances/${id}`, { method: "DELETE", query: { engine } }), "Terminated") }, "Terminate") : null);
    const editor = variablesEditor(instance.variables || {}, "instance-var");
    const save = h("button", { type: "button", class: "primary" }, "Save variables");
    save.addEventListener("click", () => {
      let variables;
      try { variables = editor.changes(); } catch (error) { notify(error.message); return; }
      change(() => api(`instances/${id}/variables`, { method: "PUT", query: { engine }, body: { variables } }), "Variables saved");
    });
    const activities = (instance.activities || []).map((a) => h("tr", {}, h("td", {}, a.name || a.id), h("td", {}, a.type), h("td", {}, badge(a.status)), h("td", {}, when(a.start_time)), h("td", {}, when(a.end_time))));
    const incidents = (instance.incidents || []).map((i) => h("tr", {}, h("td", {}, i.incident_type), h("td", {}, i.activity_id || ""), h("td", {}, i.message || "")));
    view.replaceChildren(
      h("h1", {}, `${instance.definition_name || instance.definition_key} `, badge(instance.status)),
      h("p", { class: "muted" }, `Instance ${instance.id}`, instance.business_key ? `, business key ${instance.business_key}` : "", `, engine ${instance.engine}, started ${when(instance.start_time)}`),
      lifecycle,
      h("div", { class: "cols" },
        h("div", {}, diagram, h("h2", {}, "Activity history"), table(["Activity", "Type", "Status", "Started", "Ended"], activities)),
        h("div", {}, h("h2", {}, "Variables"), editor.element, h("p", {}, save),
          h("h2", {}, "Incidents"), incidents.length ? table(["Type", "Activity", "Message"], incidents) : h("p", { class: "muted" }, "None"),
          h("p", { class: "muted" }, "Sending a message and instance modification are not offered: the unified API has no route for them yet."))));
    const xml = await api(`definitions/${instance.definition_id}/xml`, { query: { engine } });
    await renderDiagram(diagram, xml, { markers, counts });
  };
  const stop = listen(debounce((event) => event.instance_id === id && render(), 300));
  await stop.ready;
  await render();
  return stop;
}
