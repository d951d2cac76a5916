// Copies the dist files the console and /docs load from node_modules into gateway/console/static/vendor,
// so the gateway serves them itself (no CDN, works offline). Run by `make` after `npm ci`.
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "node_modules");
const vendor = join(here, "..", "gateway", "console", "static", "vendor");

const files = {
  "bpmn-js/dist/bpmn-navigated-viewer.production.min.js": "bpmn-js/bpmn-navigated-viewer.production.min.js",
  "bpmn-js/dist/assets/diagram-js.css": "bpmn-js/diagram-js.css",
  "bpmn-js/dist/assets/bpmn-js.css": "bpmn-js/bpmn-js.css",
  "bpmn-js/dist/assets/bpmn-font": "bpmn-js/bpmn-font",
  "bpmn-js/LICENSE": "bpmn-js/LICENSE",
  "eventsource-parser/dist/index.js": "eventsource-parser/index.js",
  "eventsource-parser/dist/parse.js": "eventsource-parser/parse.js",
  "eventsource-parser/dist/errors.js": "eventsource-parser/errors.js",
  "eventsource-parser/dist/stream.js": "eventsource-parser/stream.js",
  "eventsource-parser/LICENSE": "eventsource-parser/LICENSE",
  "oauth4webapi/build/index.js": "oauth4webapi/index.js",
  "oauth4webapi/LICENSE.md": "oauth4webapi/LICENSE.md",
  "swagger-ui-dist/swagger-ui-bundle.js": "swagger-ui/swagger-ui-bundle.js",
  "swagger-ui-dist/swagger-ui.css": "swagger-ui/swagger-ui.css",
  "swagger-ui-dist/favicon-32x32.png": "swagger-ui/favicon-32x32.png",
  "swagger-ui-dist/LICENSE": "swagger-ui/LICENSE",
};

rmSync(vendor, { recursive: true, force: true });
for (const [from, to] of Object.entries(files)) {
  mkdirSync(dirname(join(vendor, to)), { recursive: true });
  cpSync(join(modules, from), join(vendor, to), { recursive: true });
}
console.log(`console assets copied to ${vendor}`);
