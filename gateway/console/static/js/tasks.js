// The task inbox: my tasks and my groups' queues; claim, unclaim, claim next, complete with typed variables.
import { api, can, session } from "./api.js";
import { debounce, listen } from "./live.js";
import { attempt, h, notify, table, when } from "./ui.js";
import { variablesEditor } from "./variables.js";

export async function taskPage(view) {
  const { user, groups = [] } = session();
  const detail = h("section", { id: "task-detail", "aria-label": "Selected task" });
  const mine = h("div");
  const queue = h("div");
  const claimNext = h("button", { type: "button", class: "primary" }, "Claim next task");
  claimNext.addEventListener("click", async () => {
    const task = await attempt(() => api("tasks/claim-next", { method: "POST", body: groups.length ? { candidate_groups: groups } : {} }));
    if (task === null) notify("No task is waiting in your queues.", true);
    else if (task) { notify(`Claimed ${task.name}`, true); load(); open(task.id); }
  });
  view.append(h("h1", {}, "Tasks"),
    user ? "" : h("p", { class: "error" }, "Sign in (with your user and groups) to see your tasks."),
    can("task:claim") ? h("div", { class: "bar" }, claimNext) : null,
    h("div", { class: "cols" }, h("div", {}, h("h2", {}, "My tasks"), mine, h("h2", {}, `My groups' queues (${groups.join(", ") || "no groups"})`), queue), detail));

  const row = (task, action) => h("tr", {},
    h("td", {}, h("a", { href: "#/tasks", onclick: (e) => { e.preventDefault(); open(task.id); } }, task.name || task.id)),
    h("td", {}, task.definition_key || ""), h("td", {}, (task.candidate_groups || []).join(", ")), h("td", {}, String(task.priority ?? "")), h("td", {}, when(task.created)), h("td", {}, action));
  const columns = ["Task", "Process", "Groups", "Priority", "Created", ""];

  async function load() {
    if (!user) return;
    const own = await api("tasks", { query: { assignee: user, sort: "created" } });
    mine.replaceChildren(table(columns, own.items.map((t) => row(t, can("task:claim", t.definition_key) &&
      h("button", { type: "button", onclick: () => attempt(() => api(`tasks/${t.id}/unclaim`, { method: "POST" }), `Unclaimed ${t.name}`).then(load) }, `Unclaim ${t.name}`)))));
    const waiting = [];
    for (const group of groups) {
      const page = await api("tasks", { query: { candidate_group: group, unassigned: true, sort: "created" } });
      for (const t of page.items) if (!waiting.some((w) => w.id === t.id)) waiting.push(t);
    }
    queue.replaceChildren(table(columns, waiting.map((t) => row(t, can("task:claim", t.definition_key) &&
      h("button", { type: "button", onclick: () => attempt(() => api(`tasks/${t.id}/claim`, { method: "POST", body: { user_id: user } }), `Claimed ${t.name}`).then(load) }, `Claim ${t.name}`)))));
    view.dataset.loaded = "true";
  }

  async function open(taskId) {
    const task = await api(`tasks/${taskId}`);
    const editor = variablesEditor(task.variables || {}, "task-var");
    const complete = h("button", { type: "button", class: "primary" }, "Complete task");
    complete.addEventListener("click", async () => {
      let variables;
      try { variables = editor.changes(); } catch (error) { notify(error.message); return; }
      const done = await attempt(() => api(`tasks/${taskId}/complete`, { method: "POST", body: { variables } }).then(() => true), `Completed ${task.name}`);
      if (done) { detail.replaceChildren(); load(); }
    });
    detail.replaceChildren(h("h2", {}, task.name || task.id),
      h("p", { class: "muted" }, `Assignee ${task.assignee || "none"}; instance `, h("a", { href: `#/instances/${task.instance_id}?engine=${task.engine}` }, task.instance_id)),
      h("h2", {}, "Variables"), editor.element, can("task:complete", task.definition_key) ? h("p", {}, complete) : null);
  }

  const stop = listen(debounce(load, 400), "task.");
  await stop.ready;
  await load();
  return stop;
}
