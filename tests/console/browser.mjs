// Shared by the console's end-to-end scenarios: headless Debian chromium driven by playwright-core (installed
// with the console's npm packages; its own browser download does not work offline), screenshots, assertions.
import { createRequire } from "node:module";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";

const require = createRequire(new URL("../../console/package.json", import.meta.url));
const { chromium } = require("playwright-core");

export const [baseUrl, outputDir] = process.argv.slice(2);
mkdirSync(outputDir, { recursive: true });

/** Fails the scenario with `message` unless `condition` holds. */
export function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

/** Runs `scenario(page, tools)` in a fresh browser; exits 1 with the error (and a screenshot) when it throws. */
export async function run(name, scenario) {
  rmSync(join(outputDir, `${name}-failure.png`), { force: true });  // only this run's failure is shown
  const browser = await chromium.launch({ executablePath: process.env.PM_CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const consoleErrors = [];
  page.on("pageerror", (error) => consoleErrors.push(String(error)));
  const shot = async (label) => {
    const path = join(outputDir, `${name}-${label}.png`);
    await page.screenshot({ path, fullPage: true });
    console.log(`screenshot ${path}`);
  };
  try {
    await scenario(page, { shot, signIn: (user, groups = "") => signIn(page, user, groups), signInWithToken: (token) => signInWithToken(page, token) });
    check(consoleErrors.length === 0, `no script errors in the page: ${consoleErrors.join("; ")}`);
    console.log(`${name}: ok`);
  } catch (error) {
    await shot("failure").catch(() => {});
    console.error(`${name}: ${error.stack || error}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

/** Signs in through the console's sign-in page (user id and groups; no token while auth is off). */
export async function signIn(page, user, groups) {
  await page.goto(`${baseUrl}/console#/login`);
  await page.getByLabel("User id").fill(user);
  await page.getByLabel("Groups (comma-separated)").fill(groups);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/#\/incidents/);
}

/** Signs in with a pasted bearer token (auth on); the user id and groups come from its claims. */
export async function signInWithToken(page, token) {
  await page.goto(`${baseUrl}/console#/login`);
  await page.getByLabel("Bearer token (when the gateway requires one)").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/#\/incidents/);
}

/** Waits (up to `ms`) until `locator` matches exactly `count` elements; fails naming `what` otherwise. */
export async function waitForCount(locator, count, what, ms = 20000) {
  const deadline = Date.now() + ms;
  let seen;
  while ((seen = await locator.count()) !== count) {
    if (Date.now() > deadline) throw new Error(`check failed: ${what} (expected ${count}, saw ${seen})`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
