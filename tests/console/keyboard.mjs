// Keyboard and labels: the skip link comes first and moves focus to the page, the navigation is reachable with
// Tab, a row is selected with Space, and every control on every page has an accessible name.
import { baseUrl, check, run } from "./browser.mjs";

/** Controls without an accessible name (label, aria-label, or a button's text) on the current page. */
const unlabelled = (page) => page.evaluate(() => [...document.querySelectorAll("input:not([type=hidden]), select, textarea, button")]
  .filter((c) => !(c.labels?.length || c.getAttribute("aria-label") || (c.tagName === "BUTTON" && c.textContent.trim())))
  .map((c) => c.outerHTML.slice(0, 80)));

await run("keyboard", async (page, { shot, signIn }) => {
  await signIn("carol", "sales");
  await page.goto(`${baseUrl}/console#/tasks`);
  await page.reload();  // a fresh load keeps focus at the document's start (route changes move it to <main>)
  await page.locator("main [data-loaded]").waitFor();
  await page.keyboard.press("Tab");
  check(await page.evaluate(() => document.activeElement.textContent) === "Skip to content", "Tab first reaches the skip link");
  await page.keyboard.press("Tab");
  check(await page.evaluate(() => document.activeElement.textContent) === "Incidents", "then the navigation");
  await page.keyboard.press("Enter");
  await page.waitForURL(/#\/incidents/);
  const box = page.getByRole("checkbox", { name: /Select incident/ }).first();
  await box.waitFor();
  await box.focus();
  await page.keyboard.press("Space");
  check(await page.getByRole("button", { name: "Retry selected (1)" }).isEnabled(), "Space selects a row for retry");
  await shot("incidents-keyboard");

  for (const hash of ["#/incidents", "#/incidents?group=1", "#/tasks", "#/definitions", "#/events", "#/login"]) {
    await page.goto(`${baseUrl}/console${hash}`);
    await page.locator("main h1").waitFor();
    const missing = await unlabelled(page);
    check(missing.length === 0, `every control on ${hash} is labelled: ${missing.join(", ")}`);
    await shot(`page-${hash.replace(/[^a-z0-9]+/gi, "-").replace(/^-|-$/g, "")}`);
  }
  await page.goto(`${baseUrl}/console#/definitions`);
  await page.getByRole("link", { name: "order-process" }).click();
  await page.locator("#diagram[data-rendered]").waitFor();
  check((await unlabelled(page)).length === 0, "every control on the definition page is labelled");
  await shot("page-definition-heatmap");
  await page.getByRole("link", { name: "Incidents" }).click();
  await page.getByRole("link", { name: /Cannot evaluate/ }).first().click();
  await page.locator("#diagram[data-rendered]").waitFor();
  const missing = await unlabelled(page);
  check(missing.length === 0, `every control on the incident page is labelled: ${missing.join(", ")}`);
});
