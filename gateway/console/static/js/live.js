// Live updates from the gateway's SSE stream (GET /events/stream, starting with the next new event).
import { BASE } from "./api.js";

// Each SSE message is named by its event type (README "Events"), so EventSource needs a listener per name.
export const EVENT_TYPES = [
  "definition.deployed",
  "instance.started", "instance.completed", "instance.terminated", "instance.suspended", "instance.activated",
  "task.created", "task.assigned", "task.completed", "task.overdue",
  "incident.created", "incident.updated", "incident.resolved",
  "subscription.disabled",
].map((type) => `process_manager.${type}`);

/**
 * Calls `onEvent(envelope)` for each new event whose type contains `typePart`; answers a function that stops,
 * whose `ready` promise settles once the stream is open (at most 3 s): the stream starts with the next new
 * event, so a page awaits `ready` before its first load and misses nothing written in between.
 */
export function listen(onEvent, typePart = "") {
  const source = new EventSource(`${BASE}/events/stream`);
  const stop = () => source.close();
  stop.ready = new Promise((resolve) => {
    source.addEventListener("open", resolve, { once: true });
    setTimeout(resolve, 3000);
  });
  const handler = (message) => {
    const envelope = JSON.parse(message.data);
    if (!typePart || envelope.type.includes(typePart)) onEvent(envelope);
  };
  for (const type of EVENT_TYPES) source.addEventListener(type, handler);
  return stop;
}

/** Runs `fn` once, `ms` after the last of a burst of calls (refreshes triggered by many events). */
export function debounce(fn, ms = 300) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}
