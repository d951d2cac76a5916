// Live updates from the gateway's SSE stream (GET /events/stream). Read with fetch, not EventSource, so the
// caller's bearer token goes along; the SSE framing is parsed by eventsource-parser. After a drop it resumes
// from the last event id (`?after=`), as EventSource would.
import { EventSourceParserStream } from "eventsource-parser/stream";
import { BASE, authHeaders } from "./api.js";

const RECONNECT_MS = 1000;

/**
 * Calls `onEvent(envelope)` for each new event whose type contains `typePart`; answers a function that stops,
 * whose `ready` promise settles once the stream answered (at most 3 s): the stream starts with the next new
 * event, so a page awaits `ready` before its first load and misses nothing written in between. A caller
 * without `events:read` (401/403) simply gets no live updates.
 */
export function listen(onEvent, typePart = "") {
  const controller = new AbortController();
  const stop = () => controller.abort();
  let answered;
  stop.ready = new Promise((resolve) => { answered = resolve; setTimeout(resolve, 3000); });
  let lastId = null;

  async function follow() {
    while (!controller.signal.aborted) {
      try {
        const url = lastId === null ? `${BASE}/events/stream` : `${BASE}/events/stream?after=${lastId}`;
        const response = await fetch(url, { headers: authHeaders(), signal: controller.signal });
        answered();
        if (response.status === 401 || response.status === 403) return;
        if (response.ok) {
          const messages = response.body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream()).getReader();
          for (;;) {
            const { value, done } = await messages.read();
            if (done) break;
            if (value.id) lastId = value.id;
            if (!value.event || !value.data) continue;
            const envelope = JSON.parse(value.data);
            if (!typePart || envelope.type.includes(typePart)) onEvent(envelope);
          }
        }
      } catch (error) {
        if (controller.signal.aborted) return;
      }
      await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
    }
  }
  follow();
  return stop;
}

/** Runs `fn` once, `ms` after the last of a burst of calls (refreshes triggered by many events). */
export function debounce(fn, ms = 300) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}
