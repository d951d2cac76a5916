// The README's incident flow, by clicking: deploy the order process, start an instance whose amount is not a
// number, see the incident marked on the diagram, open its stack trace, change the variable to a number and retry,
// see it resolved.
import { baseUrl, check, run } from "./browser.mjs";

const [, , , , bpmnFile] = process.argv;

await run("incident-flow", async (page, { shot, signIn }) => {
  await signIn("carol", "sales");
  await page.getByRole("link", { name: "Definitions" }).click();
  await page.getByLabel("BPMN file", { exact: true }).setInputFiles(bpmnFile);
  await page.getByRole("button", { name: "Deploy" }).click();
  await page.getByRole("link", { name: "order-process" }).click();
  await page.locator("#diagram[data-rendered]").waitFor();
  await shot("definition");

  await page.getByLabel("Business key").fill("order-2");
  await page.getByRole("button", { name: "Add variable" }).click();
  await page.getByLabel("Variable name").last().fill("amount");
  await page.getByLabel("Value of new variable").fill("abc");
  await page.getByRole("button", { name: "Start instance" }).click();
  await page.waitForURL(/#\/instances\//);
  await page.locator("#diagram[data-rendered]").waitFor();
  check(await page.locator('[data-element-id="check-amount"].marker-failed').count() === 1, "the instance diagram marks check-amount as failed");
  await shot("instance-failing");

  await page.getByRole("link", { name: "Incidents" }).click();
  const incident = page.getByRole("link", { name: /Cannot evaluate/ });
  await incident.waitFor({ timeout: 15000 });  // the Incident Center polls the engine every second
  await shot("incidents");
  await incident.click();
  await page.locator("#diagram[data-rendered]").waitFor();
  check(await page.locator('[data-element-id="check-amount"].marker-failed').count() === 1, "the incident diagram marks check-amount as failed");
  check(await page.locator(".bjs-powered-by").isVisible(), "bpmn-js's watermark is visible");
  check((await page.locator("#incident-message").textContent()).includes("'>' not supported"), "the engine's message is shown");
  await shot("incident-open");

  // The stack trace, opened by keyboard: the console reads the engine incident from the engine only now. The
  // README's failure is a condition the engine could not evaluate: its message says it all, the engine keeps no trace.
  const disclosure = page.locator("details[data-engine-incident]").first();
  const summary = disclosure.locator("summary");
  check((await summary.getAttribute("aria-label") || "").startsWith("Stack trace of engine incident "), "the stack trace disclosure is labelled");
  await summary.focus();
  await page.keyboard.press("Enter");
  await disclosure.locator(".stack-trace[data-loaded]").waitFor();
  check(await disclosure.evaluate((element) => element.open), "Enter opens the stack trace disclosure");
  check((await disclosure.locator(".stack-trace").textContent()).includes("The engine keeps no stack trace for this failure"), "the engine's (absent) stack trace is shown");
  await shot("stack-trace");

  await page.getByLabel("Type of amount").selectOption("Integer");
  await page.getByLabel("Value of amount").fill("75");
  await page.getByRole("button", { name: "Save variables and retry" }).click();
  await page.locator("#incident-status .badge.resolved").waitFor({ timeout: 15000 });
  check(await page.locator('[data-element-id="check-amount"].marker-failed').count() === 0, "a resolved incident is no longer marked failed");
  await shot("incident-resolved");

  await page.getByRole("link", { name: /^[0-9a-f-]{8,}/ }).first().click();
  await page.waitForURL(/#\/instances\//);
  await page.locator('[data-element-id="approve-order"].marker-active').waitFor();
  await shot("instance-continued");
});
