// A typed variables form: one row per variable (name, type, value); answers only what the user changed.
import { h } from "./ui.js";

const TYPES = ["String", "Integer", "Long", "Double", "Boolean", "Date", "Json", "Null"];

function show(value, type) {
  if (value === null || value === undefined) return "";
  return type === "Json" ? JSON.stringify(value) : String(value);
}

/** Parses a row's text as its type; throws an Error naming the variable when the text is not one. */
function parse(name, type, text) {
  if (type === "Null") return null;
  if (type === "Integer" || type === "Long" || type === "Double") {
    const number = Number(text);
    if (text.trim() === "" || Number.isNaN(number) || ((type !== "Double") && !Number.isInteger(number))) {
      throw new Error(`Variable ${name}: "${text}" is not a ${type}`);
    }
    return number;
  }
  if (type === "Boolean") {
    if (text !== "true" && text !== "false") throw new Error(`Variable ${name}: a Boolean is true or false`);
    return text === "true";
  }
  if (type === "Json") {
    try { return JSON.parse(text); } catch { throw new Error(`Variable ${name}: not valid JSON`); }
  }
  return text;
}

/** `variables`: {name: {value, type}}. Answers {element, changes()} where changes() is {name: {value, type}}. */
export function variablesEditor(variables, idPrefix = "var") {
  const body = h("tbody");
  const rows = [];
  function addRow(name, typed, isNew) {
    const index = rows.length;
    const nameInput = h("input", { id: `${idPrefix}-name-${index}`, value: name, readonly: !isNew, "aria-label": "Variable name" });
    const typeSelect = h("select", { id: `${idPrefix}-type-${index}`, "aria-label": `Type of ${name || "new variable"}` },
      TYPES.map((t) => h("option", { value: t, selected: t === (typed.type || "String") }, t)));
    const valueInput = h("input", { id: `${idPrefix}-value-${index}`, value: show(typed.value, typed.type), "aria-label": `Value of ${name || "new variable"}` });
    rows.push({ nameInput, typeSelect, valueInput, original: isNew ? null : { ...typed } });
    body.append(h("tr", {}, h("td", {}, nameInput), h("td", {}, typeSelect), h("td", {}, valueInput)));
  }
  for (const [name, typed] of Object.entries(variables || {})) addRow(name, typed, false);
  const element = h("div", {},
    h("table", { class: "vars" }, h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Type"), h("th", {}, "Value"))), body),
    h("button", { type: "button", onclick: () => addRow("", { type: "String", value: "" }, true) }, "Add variable"));
  function changes() {
    const result = {};
    for (const row of rows) {
      const name = row.nameInput.value.trim();
      if (!name) continue;
      const type = row.typeSelect.value;
      const text = row.valueInput.value;
      const { original } = row;
      if (original && original.type === type && show(original.value, original.type) === text) continue;
      result[name] = { value: parse(name, type, text), type };
    }
    return result;
  }
  return { element, changes };
}
