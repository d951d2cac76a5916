// The task inbox by clicking: bob (group sales) claims "Approve order" from his group's queue, completes it with a
// typed Boolean, then takes the next waiting (oldest) task with "Claim next task".
import { run, waitForCount } from "./browser.mjs";

await run("tasks", async (page, { shot, signIn }) => {
  await signIn("bob", "sales");
  await page.getByRole("link", { name: "Tasks" }).click();
  await page.getByRole("button", { name: "Claim Approve order", exact: true }).first().click();
  await page.getByRole("button", { name: "Unclaim Approve order" }).waitFor();
  await waitForCount(page.getByRole("button", { name: "Claim Approve order", exact: true }), 2, "two tasks are left in the sales queue");
  await shot("claimed");

  await page.locator("main").getByRole("link", { name: "Approve order" }).first().click();
  await page.getByRole("button", { name: "Add variable" }).click();
  await page.getByLabel("Variable name").last().fill("approved");
  await page.getByLabel("Type of new variable").selectOption("Boolean");
  await page.getByLabel("Value of new variable").fill("true");
  await shot("complete-form");
  await page.getByRole("button", { name: "Complete task" }).click();
  await page.getByText("Completed Approve order").waitFor();
  await page.getByRole("button", { name: "Unclaim Approve order" }).waitFor({ state: "detached" });

  await page.getByRole("button", { name: "Claim next task" }).click();
  await page.getByText("Claimed Approve order").waitFor();
  await page.getByRole("button", { name: "Unclaim Approve order" }).waitFor();
  await waitForCount(page.getByRole("button", { name: "Claim Approve order", exact: true }), 1, "one task is left in the sales queue");
  await shot("claim-next");
});
