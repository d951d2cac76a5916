// Live updates from the gateway's SSE stream (GET /events/stream). Read with fetch, not EventSource, so the
// caller's bearer token goes along; the SSE framing is parsed by eventsource-parser. After a drop it resumes
// from the last event id (`?after=`), as EventSource would.
import { EventSourceParserStream } from "eventsource-parser/stream";
import { BASE, authHeaders } from "./api.js";

const RECONNECT_MS = 1000;
const READY_MS = 10000;  // a page waits at most this long for the stream before its first load

/**
 * Calls `onEvent(envelope)` for each new event whose type contains `typePart`; answers a function that stops,
 * whose `ready` promise settles once the stream has fixed the cursor it starts after (its opening message's `id:`;
 * at most READY_MS): a page awaits `ready` before its first load and misses nothing written in between, and a
 * reconnection resumes from that cursor even before the first event. A caller without `events:read` (401/403)
 * simply gets no live updates.
 */
export function listen(onEvent, typePart = "") {
  const controller = new AbortController();
  const stop = () => controller.abort();
  let answered;
  stop.ready = new Promise((resolve) => { answered = resolve; setTimeout(resolve, READY_MS); });
  let lastId = null;
  const remember = (id) => { lastId = id; answered(); };

  async function follow() {
    while (!controller.signal.aborted) {
      try {
        const url = lastId === null ? `${BASE}/events/stream` : `${BASE}/events/stream?after=${lastId}`;
        const response = await fetch(url, { headers: authHeaders(), signal: controller.signal });
        if (!response.ok) answered();  // no live updates now: the page loads without waiting for them
        if (response.status === 401 || response.status === 403) return;
        if (response.ok) {
          const parser = new EventSourceParserStream({ onId: remember });
          const messages = response.body.pipeThrough(new TextDecoderStream()).pipeThrough(parser).getReader();
          for (;;) {
            const { value, done } = await messages.read();
            if (done) break;
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
