// BPMN diagrams through bpmn-js's navigated viewer (window.BpmnJS). Its bpmn.io watermark stays visible, as
// bpmn-js's licence requires. The viewer (about 1 MB of script) and its stylesheets are loaded on the first
// diagram, so pages without one (the incident list) do not pay for them.
const VENDOR = "/console/static/vendor/bpmn-js";
let viewerLoaded;

/** Adds `element` (a script or stylesheet link) to the page; settles once it loaded. */
function load(element) {
  return new Promise((resolve, reject) => {
    element.onload = resolve;
    element.onerror = () => reject(new Error("The diagram viewer could not be loaded"));
    document.head.append(element);
  });
}

function loadViewer() {
  const stylesheet = (name) => Object.assign(document.createElement("link"), { rel: "stylesheet", href: `${VENDOR}/${name}` });
  viewerLoaded ||= Promise.all([
    load(Object.assign(document.createElement("script"), { src: `${VENDOR}/bpmn-navigated-viewer.production.min.js` })),
    load(stylesheet("diagram-js.css")),
    load(stylesheet("bpmn-js.css")),
  ]);
  return viewerLoaded;
}

/**
 * Renders `xml` into `container` and decorates it:
 * markers {elementId: "failed" | "active" | "completed"}, counts {elementId: {active, incidents}},
 * heat {elementId: 0..1} (fills from pale to red). Unknown element ids are skipped. `onClick(elementId)`, when
 * given, is called with the flow node clicked (which is marked selected). Answers the viewer, or null when
 * `container` left the page before the diagram was ready.
 */
export async function renderDiagram(container, xml, { markers = {}, counts = {}, heat = {}, onClick } = {}) {
  await loadViewer();
  const viewer = new window.BpmnJS({ container });
  await viewer.importXML(xml);
  if (!container.isConnected) {  // the page moved on (or re-rendered) meanwhile: a detached view has no size
    viewer.destroy();
    return null;
  }
  const canvas = viewer.get("canvas");
  const registry = viewer.get("elementRegistry");
  const overlays = viewer.get("overlays");
  canvas.zoom("fit-viewport");
  for (const [id, kind] of Object.entries(markers)) {
    if (registry.get(id)) canvas.addMarker(id, `marker-${kind}`);
  }
  for (const [id, { active = 0, incidents = 0 }] of Object.entries(counts)) {
    if (!registry.get(id)) continue;
    if (active) overlays.add(id, { position: { bottom: 8, left: -6 }, html: `<span class="overlay active" title="active">${active}</span>` });
    if (incidents) overlays.add(id, { position: { top: -8, right: 8 }, html: `<span class="overlay incidents" title="incidents">${incidents}</span>` });
  }
  for (const [id, level] of Object.entries(heat)) {
    const graphics = registry.get(id) && registry.getGraphics(id);
    const shape = graphics && graphics.querySelector(".djs-visual > :first-child");
    if (shape) shape.style.fill = `hsl(${Math.round(60 - 60 * level)}, 90%, ${Math.round(92 - 35 * level)}%)`;
  }
  if (onClick) {
    let selected = null;
    viewer.on("element.click", ({ element }) => {
      if (!isFlowNode(element)) return;
      if (selected) canvas.removeMarker(selected, "marker-selected");
      selected = element.id;
      canvas.addMarker(selected, "marker-selected");
      onClick(element.id);
    });
  }
  container.dataset.rendered = "true";
  return viewer;
}

const isFlowNode = (element) => element.type !== "label" && element.businessObject?.$instanceOf?.("bpmn:FlowNode");

/** The diagram's flow nodes (activities, events, gateways) in reading order: [{id, name}]. */
export function flowNodes(viewer) {
  return viewer.get("elementRegistry").filter(isFlowNode)
    .sort((a, b) => a.x - b.x || a.y - b.y)
    .map((element) => ({ id: element.id, name: element.businessObject.name || "" }));
}
