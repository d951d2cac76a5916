// The live event stream (SSE) with a type filter, and webhook subscriptions with their failed deliveries.
import { api, can } from "./api.js";
import { listen } from "./live.js";
import { attempt, field, h, table, when } from "./ui.js";

export async function eventPage(view) {
  const filter = h("input", { name: "type", placeholder: "e.g. incident.", size: 20 });
  const stream = h("tbody", { id: "event-stream" });
  const subscriptions = h("div");
  view.append(h("h1", {}, "Events"),
    h("div", { class: "bar" }, field("Show only types containing", filter)),
    h("div", { class: "stream" }, table(["When", "Type", "Instance", "Actor", "Data"], stream, "Live: newest first")),
    can("subscriptions:manage") ? [h("h2", {}, "Subscriptions"), subscriptions] : null);

  const stop = listen((event) => {
    if (filter.value && !event.type.includes(filter.value)) return;
    stream.prepend(h("tr", {}, h("td", {}, when(event.occurred_at)), h("td", {}, event.type.replace("process_manager.", "")),
      h("td", {}, event.instance_id || ""), h("td", {}, event.actor || ""), h("td", {}, h("code", {}, JSON.stringify(event.data).slice(0, 160)))));
    while (stream.children.length > 200) stream.lastChild.remove();
  });

  async function load() {
    const page = await api("subscriptions");
    const rows = [];
    for (const s of page.items) {
      const failed = await api(`subscriptions/${s.id}/deliveries`, { query: { status: "failed", size: 20 } });
      rows.push(h("tr", {}, h("td", {}, s.url), h("td", {}, s.active ? "active" : `disabled ${s.disabled_reason || ""}`),
        h("td", {}, (s.event_types || []).join(", ") || "all"),
        h("td", {}, failed.items.length ? failed.items.map((d) => h("div", {}, `${d.event_type} (${d.attempts} attempts) `,
          h("button", { type: "button", onclick: () => attempt(() => api(`subscriptions/${s.id}/deliveries/${d.id}/retry`, { method: "POST" }), "Delivery queued again").then(load) }, `Retry delivery ${d.event_cursor}`))) : "none")));
    }
    subscriptions.replaceChildren(table(["URL", "State", "Event types", "Failed deliveries"], rows));
  }
  if (can("subscriptions:manage")) await load();
  return stop;
}
