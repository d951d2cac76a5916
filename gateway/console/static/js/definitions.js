// Definitions and the dashboard: versions, deploy a BPMN file, statistics per day, bottlenecks, and the
// heatmap of GET /statistics/definitions/{key}/elements on the diagram.
import { api, can } from "./api.js";
import { renderDiagram } from "./diagram.js";
import { attempt, field, h, notify, table, when } from "./ui.js";
import { variablesEditor } from "./variables.js";

const duration = (ms) => (ms === null || ms === undefined ? "-" : ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`);

/** A bar chart of `values` (numbers), labelled for screen readers by `label`. */
function bars(values, label) {
  const top = Math.max(1, ...values);
  return h("div", { class: "bars", role: "img", "aria-label": label },
    values.map((v) => h("div", { style: `height:${(100 * v) / top}%`, title: String(v) })));
}

export async function definitionList(view) {
  const file = h("input", { type: "file", name: "file", accept: ".bpmn,.xml", required: true });
  const deploy = h("form", { class: "bar", "aria-label": "Deploy a BPMN file" }, field("BPMN file", file), h("button", { type: "submit", class: "primary" }, "Deploy"));
  const list = h("div");
  const dashboard = h("div");
  deploy.addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData();
    form.append("file", file.files[0]);
    const deployment = await attempt(() => api("definitions", { method: "POST", form }), "Deployed");
    if (deployment) load();
  });
  view.append(h("h1", {}, "Definitions and dashboard"), can("definition:deploy") ? deploy : null, list, dashboard);

  async function load() {
    const page = await api("definitions", { query: { latest_only: false, with_counts: true, size: 100, sort: "key" } });
    list.replaceChildren(table(["Key", "Name", "Version", "Running", "Deployed", "Engine"], page.items.map((d) => h("tr", {},
      h("td", {}, h("a", { href: `#/definitions/${d.id}?engine=${d.engine}` }, d.key)), h("td", {}, d.name || ""), h("td", {}, String(d.version)),
      h("td", {}, String(d.instances ?? "")), h("td", {}, when(d.deployed_at)), h("td", {}, d.engine))), `${page.total} definitions`));
    view.dataset.loaded = "true";
    if (!can("statistics:read")) return;
    const stats = await api("statistics");
    const s = stats.summary;
    dashboard.replaceChildren(h("h2", {}, "Last 30 days"),
      h("p", {}, `${s.total_instances} instances (${s.active_instances} active, ${s.completed_instances} completed, ${s.terminated_instances} terminated); ${s.incidents} incidents, ${s.resolved_incidents} resolved; mean duration ${duration(s.average_duration)}`),
      bars(stats.by_day.map((d) => d.instances), "Instances started per day"),
      h("p", { class: "muted" }, `Instances started per day, data as of ${when(stats.data_as_of)}`));
  }
  await load();
}

export async function definitionDetail(view, params, id) {
  const engine = params.get("engine") || undefined;
  const definition = await api(`definitions/${id}`, { query: { engine, with_counts: true } });
  const diagram = h("div", { class: "diagram", id: "diagram", role: "img", "aria-label": `Heatmap of ${definition.key}` });
  const statistics = can("statistics:read");  // else: the diagram, no heatmap
  const [elements, bottlenecks, xml] = await Promise.all([
    statistics ? api(`statistics/definitions/${encodeURIComponent(definition.key)}/elements`, { query: { engine } }) : { elements: [] },
    statistics ? api("bottlenecks", { query: { definition_key: definition.key } }) : { items: [] },
    api(`definitions/${id}/xml`, { query: { engine } }),
  ]);
  const items = elements.elements;
  const slowest = Math.max(1, ...items.map((e) => e.p95_duration || e.average_duration || 0));
  const heat = {}, counts = {};
  for (const e of items) {
    heat[e.activity_id] = (e.p95_duration || e.average_duration || 0) / slowest;
    counts[e.activity_id] = { active: e.active, incidents: e.incidents };
  }
  const businessKey = h("input", { name: "business_key", size: 16 });
  const editor = variablesEditor({}, "start-var");
  const start = h("form", { "aria-label": "Start an instance" }, h("h2", {}, "Start an instance"), field("Business key", businessKey), editor.element,
    h("p", {}, h("button", { type: "submit", class: "primary" }, "Start instance")));
  start.addEventListener("submit", async (event) => {
    event.preventDefault();
    let variables;
    try { variables = editor.changes(); } catch (error) { notify(error.message); return; }
    const instance = await attempt(() => api("instances", { method: "POST", query: { engine }, body: { definition_id: id, business_key: businessKey.value || undefined, variables } }));
    if (instance) location.hash = `#/instances/${instance.id}?engine=${instance.engine}`;
  });
  view.append(h("h1", {}, `${definition.name || definition.key} (version ${definition.version})`),
    h("p", { class: "muted" }, `${definition.instances ?? 0} running on ${definition.engine}; heat = p95 duration of completed runs, badges = active runs and open incidents`),
    diagram,
    h("h2", {}, "Elements"),
    table(["Element", "Active", "Completed", "Incidents", "Mean", "p95"], items.map((e) => h("tr", {},
      h("td", {}, e.activity_name || e.activity_id), h("td", {}, String(e.active)), h("td", {}, String(e.completed)), h("td", {}, String(e.incidents)),
      h("td", {}, duration(e.average_duration)), h("td", {}, duration(e.p95_duration))))),
    h("h2", {}, "Bottlenecks"),
    table(["Activity", "Mean wait", "Instances", "Severity"], bottlenecks.items.map((b) => h("tr", {},
      h("td", {}, b.activity_name || b.activity_id), h("td", {}, duration(b.average_wait_time)), h("td", {}, String(b.instances_affected)), h("td", {}, b.severity)))),
    can("instance:start", definition.key) ? start : null);
  await renderDiagram(diagram, xml, { heat, counts });
}
