// Per-action hiding: an auditor (reads everything, changes nothing) sees the incident, the instance, the task
// and the definitions without a single action button or form; a process operator signed in next sees the
// instance's actions, so the hiding follows the permissions (GET /me), not the page.
import { baseUrl, check, run } from "./browser.mjs";

const [, , , , auditor, operator, instanceId] = process.argv;

/** Fails unless no button named by one of `names` is on the page. */
async function noButtons(page, names, where) {
  for (const name of names) {
    check(await page.getByRole("button", { name }).count() === 0, `${where}: no "${name}" button`);
  }
}

await run("permissions", async (page, { shot, signInWithToken }) => {
  await signInWithToken(auditor);
  await page.getByRole("link", { name: /Cannot evaluate/ }).waitFor();
  await noButtons(page, [/^Retry selected/, "Retry all matching"], "incident list");
  check(await page.getByRole("checkbox", { name: /^Select incident/ }).count() === 0, "incident list: nothing to select for a retry");
  await shot("auditor-incidents");

  await page.getByRole("link", { name: /Cannot evaluate/ }).click();
  await page.locator("#diagram[data-rendered]").waitFor();
  await noButtons(page, ["Assign", "Acknowledge", "Comment", "Escalate", "Resolve", "Save variables and retry"], "incident");
  await shot("auditor-incident");

  await page.goto(`${baseUrl}/console#/instances/${instanceId}`);
  await page.locator("#diagram[data-rendered]").waitFor();
  await noButtons(page, ["Suspend", "Terminate", "Save variables", "Send message", "Apply modification"], "instance");
  check(await page.getByRole("form").count() === 0, "instance: no form at all");
  check(await page.getByRole("cell", { name: "amount", exact: true }).isVisible(), "instance: the variables are shown, read-only");
  await shot("auditor-instance");

  await page.getByRole("link", { name: "Tasks" }).click();
  await page.getByRole("link", { name: "Approve order" }).click();
  await page.getByRole("heading", { name: "Approve order" }).waitFor();
  await noButtons(page, ["Claim next task", /^Claim Approve/, "Complete task"], "tasks");
  await shot("auditor-tasks");

  await page.getByRole("link", { name: "Definitions" }).click();
  await page.getByRole("link", { name: "order-process" }).click();
  await page.locator("#diagram[data-rendered]").waitFor();
  await noButtons(page, ["Deploy", "Start instance"], "definitions");
  await shot("auditor-definition");

  await signInWithToken(operator);
  await page.goto(`${baseUrl}/console#/instances/${instanceId}`);
  await page.locator("#diagram[data-rendered]").waitFor();
  for (const name of ["Suspend", "Terminate", "Save variables", "Apply modification"]) {
    check(await page.getByRole("button", { name }).count() === 1, `operator: the "${name}" button is offered`);
  }
  await shot("operator-instance");
});
