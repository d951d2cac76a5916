// The instance page's actions, by clicking: send the message the instance waits for (picked from the definition's
// catch events, with a typed variable), then modify the instance: an instruction the engine refuses shows its
// problem detail; skipping the active activity (start after, picked from the list) moves the token on.
import { baseUrl, check, run } from "./browser.mjs";

const [, , , , instanceId] = process.argv;

await run("instance-actions", async (page, { shot, signIn }) => {
  await signIn("olga", "");
  await page.goto(`${baseUrl}/console#/instances/${instanceId}`);
  await page.locator('[data-element-id="wait-payment"].marker-active').waitFor();

  const message = page.getByRole("form", { name: "Send a message" });
  check(await message.getByLabel("Message").inputValue() === "payment-received", "the message the catch event waits for is offered");
  await message.getByRole("button", { name: "Add variable" }).click();
  await message.getByLabel("Variable name").fill("paid");
  await message.getByLabel("Type of new variable").selectOption("Boolean");
  await message.getByLabel("Value of new variable").fill("true");
  await shot("message");
  await message.getByRole("button", { name: "Send message" }).click();
  await page.getByText("Message payment-received delivered").waitFor();
  await page.locator('[data-element-id="pack-order"].marker-active').waitFor();
  await shot("message-delivered");

  // Start before Ship order, picked on the diagram: the embedded engine cannot start ahead of the token.
  const modification = page.getByRole("form", { name: "Modify the instance" });
  await page.locator('[data-element-id="ship-order"]').click();
  check(await modification.getByLabel("Activity").inputValue() === "ship-order", "a click on the diagram picks the activity");
  await modification.getByLabel("Instruction").selectOption("start_before");
  await modification.getByRole("button", { name: "Add instruction" }).click();
  // Someone else changes the instance meanwhile (claims its task, which emits task.assigned): the live update must
  // not wipe the queued step.
  const headers = { "Content-Type": "application/json", "X-User-Id": "someone-else" };
  const tasks = await (await fetch(`${baseUrl}/api/processes/tasks?instance_id=${instanceId}`, { headers })).json();
  const changed = await fetch(`${baseUrl}/api/processes/tasks/${tasks.items[0].id}/claim`, {
    method: "POST", headers, body: JSON.stringify({ user_id: "someone-else" }),
  });
  check(changed.ok, `the outside change was made (${changed.status})`);
  await page.locator("#instance-changed").waitFor();
  check((await page.locator("#modification-instructions").textContent()).includes("Start before"), "a live update keeps the queued step");
  await modification.getByRole("button", { name: "Apply modification" }).click();
  await page.locator("#notice").getByText("cannot start before activity 'ship-order'").waitFor();
  check(await page.locator('[data-element-id="pack-order"].marker-active').count() === 1, "a refused modification changes nothing");
  await shot("modification-refused");

  // Start after Pack order, picked from the list: the active task is skipped and the token waits at Ship order.
  await modification.getByRole("button", { name: /^Remove start before/ }).click();
  await modification.getByLabel("Instruction").selectOption("start_after");
  await modification.getByLabel("Activity").selectOption("pack-order");
  await modification.getByRole("button", { name: "Add instruction" }).click();
  check((await page.locator("#modification-instructions").textContent()).includes("Start after Pack order"), "the instruction is listed");
  await modification.getByLabel("Annotation (why)").fill("packed by hand");
  await modification.getByRole("button", { name: "Apply modification" }).click();
  await page.getByText("Instance modified").waitFor();
  await page.locator('[data-element-id="ship-order"].marker-active').waitFor();
  await shot("modified");
});
