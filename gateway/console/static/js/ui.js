// Small DOM helpers: h() builds elements, notify() reports outcomes in the live region.
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "value") element.value = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null && child !== false) element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

export function notify(message, ok = false) {
  const notice = document.getElementById("notice");
  notice.className = ok ? "ok" : "";
  notice.textContent = message;
}

/** Runs an action, reporting its problem (detail, or title) instead of throwing; answers its result or undefined. */
export async function attempt(action, success) {
  try {
    const result = await action();
    if (success) notify(success, true);
    return result;
  } catch (error) {
    notify(error.message || String(error));
    return undefined;
  }
}

export const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
export const badge = (text) => h("span", { class: `badge ${text}` }, text);
export const field = (label, control) => h("label", {}, label, control);

/** A labelled <select> of `options` (strings or [value, text]). */
export function choice(label, name, options, value) {
  const select = h("select", { name }, options.map((o) => {
    const [v, text] = Array.isArray(o) ? o : [o, o || "any"];
    return h("option", { value: v, selected: v === value }, text);
  }));
  return field(label, select);
}

export function table(columns, rows, caption) {
  return h("table", {},
    caption ? h("caption", { class: "muted" }, caption) : null,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows));
}
