// Times the console's incident list in headless Debian chromium: from navigation start to the first page of
// the list rendered (the console's User Timing mark pm-incidents-rendered). Prints one JSON line: {"samples_ms": [...]}.
//   node bench/console_first_render.mjs BASE_URL SAMPLES
import { createRequire } from "node:module";

const require = createRequire(new URL("../console/package.json", import.meta.url));
const { chromium } = require("playwright-core");
const [baseUrl, samples = "10"] = process.argv.slice(2);

const browser = await chromium.launch({ executablePath: process.env.PM_CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
const samplesMs = [];
try {
  for (let n = 0; n < Number(samples); n++) {
    // A new context each time: an empty HTTP cache and no session, as the first load in a new browser.
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${baseUrl}/console#/incidents`);
    await page.locator("main [data-loaded] tbody tr").first().waitFor();
    samplesMs.push(await page.evaluate(() => performance.getEntriesByName("pm-incidents-rendered")[0].startTime));
    await context.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify({ samples_ms: samplesMs }));
