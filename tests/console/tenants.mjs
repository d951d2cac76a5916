// A permission-limited user: an incident responder of tenant t1 signs in with a pasted token. The console shows
// the one incident of t1 (not t2's), opens and acknowledges it; the task inbox, which the role does not grant,
// is not offered in the navigation, and typed in by hand shows the gateway's refusal instead of data.
import { baseUrl, check, run, waitForCount } from "./browser.mjs";

const [, , , , token, ownInstance] = process.argv;

await run("tenant-limited", async (page, { shot, signInWithToken }) => {
  await signInWithToken(token);
  await page.getByRole("link", { name: "Signed in: carol" }).waitFor();  // the user id is read from the token
  await page.getByText("1 incidents, page 1 of 1").waitFor();
  await waitForCount(page.getByRole("link", { name: /Cannot evaluate/ }), 1, "only the own tenant's incident is listed");
  await shot("incidents");
  await page.getByRole("link", { name: /Cannot evaluate/ }).click();
  await page.locator("#diagram[data-rendered]").waitFor();
  check(await page.getByRole("link", { name: ownInstance }).isVisible(), "the incident is the own tenant's instance");
  await page.getByRole("button", { name: "Acknowledge" }).click();
  await page.locator("#incident-status .badge.acknowledged").waitFor();
  await shot("incident-acknowledged");

  await page.getByRole("link", { name: "Events" }).waitFor({ state: "hidden" });
  check(!(await page.getByRole("link", { name: "Tasks" }).isVisible()), "the task inbox is not offered (no task:read)");
  check(await page.getByRole("link", { name: "Definitions" }).isVisible(), "definitions are (definition:read)");
  await page.goto(`${baseUrl}/console#/tasks`);  // typed in by hand: the gateway's refusal is shown
  await page.getByText("This needs the permission 'task:read'").waitFor();
  await shot("tasks-refused");
});
