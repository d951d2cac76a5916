// Builds what the console and /docs load into gateway/console/static/vendor, so the gateway serves them itself
// (no CDN, works offline). Run by `make console` after `npm ci`:
// - the console's own modules (gateway/console/static/js, entry app.js) bundled and minified by esbuild, with the
//   npm modules they import (eventsource-parser, oauth4webapi); the OIDC sign-in is a chunk loaded on demand;
// - bpmn-js's viewer and its CSS and fonts, loaded by the console on the first diagram, and Swagger UI for /docs.
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "node_modules");
const vendor = join(here, "..", "gateway", "console", "static", "vendor");

const files = {
  "bpmn-js/dist/bpmn-navigated-viewer.production.min.js": "bpmn-js/bpmn-navigated-viewer.production.min.js",
  "bpmn-js/dist/assets/diagram-js.css": "bpmn-js/diagram-js.css",
  "bpmn-js/dist/assets/bpmn-js.css": "bpmn-js/bpmn-js.css",
  "bpmn-js/dist/assets/bpmn-font": "bpmn-js/bpmn-font",
  "bpmn-js/LICENSE": "bpmn-js/LICENSE",
  "eventsource-parser/LICENSE": "console/LICENSE.eventsource-parser",
  "oauth4webapi/LICENSE.md": "console/LICENSE.oauth4webapi.md",
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
await build({
  entryPoints: [join(here, "..", "gateway", "console", "static", "js", "app.js")],
  outdir: join(vendor, "console"),
  nodePaths: [modules],
  bundle: true,
  splitting: true,
  format: "esm",
  target: "es2022",
  minify: true,
  legalComments: "linked",
  logLevel: "warning",
});
console.log(`console assets built into ${vendor}`);
