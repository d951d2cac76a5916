// One process instance: diagram with token positions (active), the path taken (completed) and incidents
// (failed), activity history, typed variables, incidents, suspend / activate / terminate, send a message
// (POST /messages) and modification (POST /instances/{id}/modification). Each action is offered only when the
// caller holds its permission and, for the optional ones, the engine's capabilities (GET /engines) declare it.
import { api, can } from "./api.js";
import { flowNodes, renderDiagram } from "./diagram.js";
import { debounce, listen } from "./live.js";
import { attempt, badge, choice, field, h, notify, table, when } from "./ui.js";
import { variablesEditor } from "./variables.js";

const INSTRUCTIONS = [["start_before", "Start before"], ["start_after", "Start after"], ["cancel", "Cancel"]];

/** The capabilities of engine `name` (GET /engines), or an empty set when the caller may not read them. */
async function capabilities(name) {
  const engines = await api("engines").catch(() => []);
  return new Set(engines.find((engine) => engine.name === name)?.capabilities || []);
}

/** The variables as a read-only table, for a caller who may not change them. */
function variablesTable(variables) {
  return table(["Name", "Type", "Value"], Object.entries(variables).map(([name, typed]) => h("tr", {},
    h("td", {}, name), h("td", {}, typed.type || ""), h("td", {}, typed.type === "Json" ? JSON.stringify(typed.value) : String(typed.value ?? "")))));
}

/** The "Send a message" form: a message the definition's catch events wait for, typed variables. */
function messageForm(instance, definition, onSent) {
  const waiting = (definition.catch_events || []).filter((event) => event.trigger === "message" && event.message_name);
  const names = [...new Set(waiting.map((event) => event.message_name))];
  if (!names.length) return h("section", { "aria-label": "Send a message" }, h("h2", {}, "Send a message"), h("p", { class: "muted" }, "The process waits for no message."));
  const label = (name) => {
    const where = waiting.filter((event) => event.message_name === name).map((event) => event.name || event.id);
    return [name, `${name} (${where.join(", ")})`];
  };
  const editor = variablesEditor({}, "message-var");
  const form = h("form", { "aria-label": "Send a message" }, h("h2", {}, "Send a message"),
    choice("Message", "message_name", names.map(label), names[0]), editor.element,
    h("p", {}, h("button", { type: "submit" }, "Send message")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let variables;
    try { variables = editor.changes(); } catch (error) { notify(error.message); return; }
    const body = { message_name: form.elements.message_name.value, process_instance_id: instance.id, variables };
    const outcome = await attempt(() => api("messages", { method: "POST", query: { engine: instance.engine }, body }));
    if (!outcome) return;
    notify(outcome.published ? "Message published: the engine delivers it when the instance waits for it" : `Message ${body.message_name} delivered`, true);
    onSent();
  });
  return form;
}

/** The modification form: instructions (start before / start after / cancel an activity picked from the list or
 * by clicking the diagram) applied in order, all or none. Answers {element, pick(id, name)} for the diagram. */
function modificationForm(instance, onApplied) {
  const instructions = [];
  const activity = h("select", { name: "activity_id", id: "modification-activity" });
  const list = h("ol", { id: "modification-instructions", "aria-label": "Steps to apply" });
  const apply = h("button", { type: "submit", class: "primary", disabled: true }, "Apply modification");
  const annotation = h("input", { name: "annotation", size: 30 });
  const show = () => {
    list.replaceChildren(...instructions.map((instruction, index) => h("li", {},
      `${INSTRUCTIONS.find(([type]) => type === instruction.type)[1]} ${instruction.name} `,
      h("button", { type: "button", onclick: () => { instructions.splice(index, 1); show(); } }, `Remove ${instruction.type.replace("_", " ")} ${instruction.name}`))));
    apply.disabled = instructions.length === 0;
  };
  const add = h("button", { type: "button" }, "Add instruction");
  const form = h("form", { "aria-label": "Modify the instance" }, h("h2", {}, "Modification"),
    h("p", { class: "muted" }, "Pick an activity on the diagram or from the list; the instructions run in order, all or none."),
    h("div", { class: "bar" }, choice("Instruction", "type", INSTRUCTIONS, "start_before"), field("Activity", activity), add),
    list, h("div", { class: "bar" }, field("Annotation (why)", annotation), apply));
  add.addEventListener("click", () => {
    if (!activity.value) return;
    instructions.push({ type: form.elements.type.value, activity_id: activity.value, name: activity.selectedOptions[0].textContent });
    show();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { instructions: instructions.map(({ type, activity_id }) => ({ type, activity_id })), annotation: annotation.value || undefined };
    const changed = await attempt(() => api(`instances/${instance.id}/modification`, { method: "POST", query: { engine: instance.engine }, body }), "Instance modified");
    if (changed) onApplied();
  });
  const pick = (nodes) => {
    activity.replaceChildren(...nodes.map((node) => h("option", { value: node.id }, node.name ? `${node.name} (${node.id})` : node.id)));
  };
  return { element: form, pick, select: (id) => {
    activity.value = id;
    activity.dispatchEvent(new Event("change", { bubbles: true }));  // a pick on the diagram begins the form too
    activity.focus();
  } };
}

export async function instancePage(view, params, id) {
  const engine = params.get("engine") || undefined;
  let definition, engineCapabilities;
  // A live update re-renders the page, which would wipe a form the user has begun (queued modification steps,
  // a message's variables, edited variables): while one is begun, the page offers the update instead.
  let editing = false;
  const begin = () => { editing = true; };
  view.addEventListener("input", begin);
  view.addEventListener("change", begin);
  view.addEventListener("click", (event) => { if (event.target.matches("button[type=button]")) begin(); });
  const offerUpdate = () => {
    if (view.querySelector("#instance-changed")) return;
    view.prepend(h("p", { id: "instance-changed", role: "status", class: "notice" },
      "This instance changed while you were editing. ",
      h("button", { type: "button", onclick: () => render() }, "Show the changes")));
  };
  const render = async (live = false) => {
    if (live && editing) return offerUpdate();
    const instance = await api(`instances/${id}`, { query: { engine } });
    const key = instance.definition_key;
    definition ||= await api(`definitions/${instance.definition_id}`, { query: { engine } });
    engineCapabilities ||= await capabilities(instance.engine);
    const running = ["active", "suspended"].includes(instance.status);
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
    const diagram = h("div", { class: "diagram", id: "diagram", role: "img", "aria-label": `Diagram of ${key} with token positions` });
    const change = (request, done) => attempt(request, done).then((r) => r !== undefined && render());
    const maySuspend = can("instance:suspend", key) && engineCapabilities.has("suspend_instance");
    const lifecycle = h("div", { class: "bar" },
      maySuspend && instance.status === "active" ? h("button", { type: "button", onclick: () => change(() => api(`instances/${id}/suspended`, { method: "PUT", query: { engine }, body: { suspended: true } }), "Suspended") }, "Suspend") : null,
      maySuspend && instance.status === "suspended" ? h("button", { type: "button", onclick: () => change(() => api(`instances/${id}/suspended`, { method: "PUT", query: { engine }, body: { suspended: false } }), "Activated") }, "Activate") : null,
      running && can("instance:terminate", key) ? h("button", { type: "button", onclick: () => confirm("Terminate this instance?") && change(() => api(`instances/${id}`, { method: "DELETE", query: { engine } }), "Terminated") }, "Terminate") : null);
    let variables;
    if (can("instance:write-variables", key)) {
      const editor = variablesEditor(instance.variables || {}, "instance-var");
      const save = h("button", { type: "button", class: "primary" }, "Save variables");
      save.addEventListener("click", () => {
        let changes;
        try { changes = editor.changes(); } catch (error) { notify(error.message); return; }
        change(() => api(`instances/${id}/variables`, { method: "PUT", query: { engine }, body: { variables: changes } }), "Variables saved");
      });
      variables = [editor.element, h("p", {}, save)];
    } else variables = variablesTable(instance.variables || {});
    const activities = (instance.activities || []).map((a) => h("tr", {}, h("td", {}, a.name || a.id), h("td", {}, a.type), h("td", {}, badge(a.status)), h("td", {}, when(a.start_time)), h("td", {}, when(a.end_time))));
    const incidents = (instance.incidents || []).map((i) => h("tr", {}, h("td", {}, i.incident_type), h("td", {}, i.activity_id || ""), h("td", {}, i.message || "")));
    const message = running && can("message:correlate", key) && engineCapabilities.has("correlate_message") ? messageForm(instance, definition, render) : null;
    const modification = running && can("instance:modify", key) && engineCapabilities.has("modify_instance") ? modificationForm(instance, render) : null;
    if (live && editing) return offerUpdate();  // the user began a form while this render fetched
    editing = false;
    view.replaceChildren(
      h("h1", {}, `${instance.definition_name || key} `, badge(instance.status)),
      h("p", { class: "muted" }, `Instance ${instance.id}`, instance.business_key ? `, business key ${instance.business_key}` : "", `, engine ${instance.engine}, started ${when(instance.start_time)}`),
      lifecycle,
      h("div", { class: "cols" },
        h("div", {}, diagram, modification?.element, h("h2", {}, "Activity history"), table(["Activity", "Type", "Status", "Started", "Ended"], activities)),
        h("div", {}, h("h2", {}, "Variables"), variables,
          h("h2", {}, "Incidents"), incidents.length ? table(["Type", "Activity", "Message"], incidents) : h("p", { class: "muted" }, "None"),
          message)));
    const xml = await api(`definitions/${instance.definition_id}/xml`, { query: { engine } });
    const viewer = await renderDiagram(diagram, xml, { markers, counts, onClick: modification?.select });
    if (viewer && modification) modification.pick(flowNodes(viewer));
  };
  const stop = listen(debounce((event) => event.instance_id === id && render(true), 300));
  await stop.ready;
  await render();
  return stop;
}
