// Bulk retry with progress: the incidents grouped by error, one group opened, "Retry all matching" runs a bulk
// operation whose progress bar reaches the group's size; then two hand-picked incidents are retried.
import { check, run } from "./browser.mjs";

const expected = Number(process.argv[4]);

await run("bulk-retry", async (page, { shot, signIn }) => {
  await signIn("carol", "");
  await page.getByLabel("Group by error").check();
  const group = page.getByRole("link", { name: /Cannot evaluate/ });
  await group.waitFor();
  check((await page.locator("tbody tr td").first().textContent()) === String(expected), `the group counts ${expected} open incidents`);
  await shot("groups");
  await group.click();
  await page.getByText(`${expected} incidents, page 1 of 1`).waitFor();
  await page.getByRole("button", { name: "Retry all matching" }).click();
  const progress = page.locator("#bulk-progress");
  await progress.getByText(/completed$/).waitFor({ timeout: 30000 });
  const bar = page.getByLabel("Retry progress");
  check(await bar.getAttribute("max") === String(expected) && await bar.getAttribute("value") === String(expected), "the progress bar is full");
  check((await progress.textContent()).includes(`of ${expected}`), "the progress names the total");
  await shot("bulk-done");

  const boxes = page.getByRole("checkbox", { name: /Select incident/ });
  await boxes.nth(0).check();
  await boxes.nth(1).check();
  await page.getByRole("button", { name: "Retry selected (2)" }).click();
  await progress.getByText("2 retried, 0 failed of 2").waitFor();
  await shot("selected-done");
});
