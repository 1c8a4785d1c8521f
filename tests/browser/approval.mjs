// A whole restore through the console, in one language: the operator
// files it, the PD's Wali Data approves it in the browser (the identity is
// unwrapped and the envelope sealed in the page), the agent restores, the
// auditor sees request, approval and restore in the audit log. Around it:
// an auditor cannot approve (no form, and a direct POST is 403), a Wali
// Data of one PD can neither see nor act on another PD's request, no
// request the controller receives during the approval holds the passphrase
// or the identity, and every page stays under 100 KB on the wire.
import { config, main, person, signIn, shot, expect, fail, fetchStatus, csrfOf, checkSizes } from "./lib.mjs";

const cfg = config();
const sizes = {};

async function fileRequest(browser) {
  const { page, sizes: s } = await person(browser, cfg);
  await signIn(page, cfg, cfg.people.operator);
  await page.goto(`${cfg.url}/console/restores?lang=${cfg.lang}`);
  await shot(page, cfg, "operator-restores");
  const form = page.locator("form#file-restore");
  let id;
  if (await form.count()) {
    await form.locator("[name=pd]").selectOption(cfg.restore.pd);
    await form.locator("[name=snapshot]").fill("latest");
    await form.locator("[name=agent]").selectOption(cfg.restore.agent);
    await form.locator("[name=target]").fill(cfg.restore.target);
    await form.locator("[name=reason]").fill(cfg.restore.reason);
    await shot(page, cfg, "operator-file-form");
    await Promise.all([page.waitForLoadState("load"), form.locator("button[type=submit]").click()]);
    const m = page.url().match(/\/console\/restores\/([^/?#]+)/);
    expect(m, `filing did not lead to the request's page but to ${page.url()}`);
    id = decodeURIComponent(m[1]);
  } else {
    // No filing form on this console build: file as the page's own script
    // would, with the session and the CSRF token.
    const csrf = await csrfOf(page);
    const r = await page.evaluate(
      async ({ body, csrf }) => {
        const r = await fetch("/api/v1/restores", {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
          body: JSON.stringify(body),
        });
        return { status: r.status, body: await r.json().catch(() => ({})) };
      },
      { body: cfg.restore.fileBody, csrf },
    );
    expect(r.status === 200 || r.status === 201, `filing through the API answered ${r.status}: ${JSON.stringify(r.body)}`);
    id = r.body.id;
    await page.goto(`${cfg.url}/console/restores/${id}?lang=${cfg.lang}`);
  }
  await shot(page, cfg, "operator-request-filed");
  sizes.operator = checkSizes(s, "operator");
  return id;
}

async function approve(browser, id) {
  const { page, recorder, sizes: s } = await person(browser, cfg);
  await signIn(page, cfg, cfg.people.custodian);
  await page.goto(`${cfg.url}/console/restores/${id}?lang=${cfg.lang}`);
  const form = page.locator("form#approve");
  expect((await form.count()) === 1, `the Wali Data's request page has no approval form: ${await page.content()}`);
  await shot(page, cfg, "custodian-approve");
  const before = recorder.length;
  await page.fill("#passphrase", cfg.passphrase);
  await form.locator("button[type=submit]").click();
  const status = page.locator("#approve-status");
  await status.locator("xpath=self::*[@data-state='done' or @data-state='wrong' or @data-state='mismatch' or @data-state='failed']").waitFor({ timeout: 60000 });
  const state = await status.getAttribute("data-state");
  expect(state === "done", `the approval ended in ${state}: ${await status.textContent()}`);
  await shot(page, cfg, "custodian-approved");
  const during = recorder.slice(before);
  checkNoSecrets(during);
  const posts = during.filter((r) => r.method === "POST");
  expect(posts.length === 1 && posts[0].url.endsWith(`/api/v1/restores/${id}/approve`),
    `the approval sent ${JSON.stringify(posts.map((p) => p.url))}`);
  expect(JSON.parse(posts[0].body).envelope.startsWith("-----BEGIN AGE ENCRYPTED FILE-----"), "the approval posted no armored envelope");
  await page.waitForURL(new RegExp(`/console/restores/${id}`), { timeout: 10000 }).catch(() => {});
  sizes.custodian = checkSizes(s, "custodian");
  return { page, requests: during.length };
}

/// Nothing the controller received holds the passphrase or an identity:
/// not the URL, not a header, not a body.
function checkNoSecrets(requests) {
  for (const r of requests) {
    const all = [r.url, JSON.stringify(r.headers), r.body].join("\n");
    if (all.includes(cfg.passphrase)) fail(`the passphrase went to the controller in ${r.method} ${r.url}`);
    if (all.includes("AGE-SECRET-KEY-")) fail(`an identity went to the controller in ${r.method} ${r.url}`);
  }
}

async function waitDone(page, id) {
  const deadline = Date.now() + 180000;
  while (Date.now() < deadline) {
    const r = await page.evaluate(async (id) => {
      const r = await fetch(`/api/v1/restores/${id}`, { credentials: "same-origin" });
      return r.ok ? r.json() : null;
    }, id);
    const state = r && (r.state || (r.request && r.request.state));
    if (state === "done") return r;
    if (state === "failed" || state === "expired") fail(`the restore ended ${state}: ${JSON.stringify(r)}`);
    await page.waitForTimeout(1000);
  }
  fail(`restore ${id} was not done within 3 minutes`);
}

async function auditorLooks(browser, id) {
  const { page, sizes: s } = await person(browser, cfg);
  await signIn(page, cfg, cfg.people.auditor);
  await page.goto(`${cfg.url}/console/restores/${id}?lang=${cfg.lang}`);
  expect((await page.locator("form#approve").count()) === 0, "the auditor is offered the approval form");
  await shot(page, cfg, "auditor-request");
  const csrf = await csrfOf(page);
  const post = await fetchStatus(page, `/api/v1/restores/${id}/approve`, {
    method: "POST",
    csrf,
    body: JSON.stringify({ envelope: "-----BEGIN AGE ENCRYPTED FILE-----\nx\n-----END AGE ENCRYPTED FILE-----\n" }),
  });
  expect(post === 403, `the auditor's direct approval POST answered ${post}, not 403`);
  await page.goto(`${cfg.url}/console/audit?lang=${cfg.lang}`);
  const text = await page.locator("main").textContent();
  for (const action of ["restore.request", "restore.approve", "restore.done"]) {
    expect(text.includes(action), `the auditor's audit page does not show ${action}`);
  }
  expect(text.includes(id), `the auditor's audit page does not name ${id}`);
  await shot(page, cfg, "auditor-audit-log");
  sizes.auditor = checkSizes(s, "auditor");
  return post;
}

async function otherPd(browser, foreignId) {
  const { page } = await person(browser, cfg);
  await signIn(page, cfg, cfg.people.custodian);
  const pdPage = await page.goto(`${cfg.url}/console/pds/${cfg.other.pd}`);
  expect(pdPage.status() === 403, `the Wali Data of ${cfg.restore.pd} opened ${cfg.other.pd}'s page (${pdPage.status()})`);
  const reqPage = await page.goto(`${cfg.url}/console/restores/${foreignId}`);
  expect([403, 404].includes(reqPage.status()), `another PD's request page answered ${reqPage.status()}`);
  await page.goto(`${cfg.url}/console/restores?lang=${cfg.lang}`);
  expect(!(await page.locator("main").textContent()).includes(foreignId), "another PD's request is in the list");
  const csrf = await csrfOf(page);
  const material = await fetchStatus(page, `/api/v1/restores/${foreignId}/approval-material`);
  expect(material === 403 || material === 404, `another PD's approval material answered ${material}`);
  const post = await fetchStatus(page, `/api/v1/restores/${foreignId}/approve`, {
    method: "POST",
    csrf,
    body: JSON.stringify({ envelope: "-----BEGIN AGE ENCRYPTED FILE-----\nx\n-----END AGE ENCRYPTED FILE-----\n" }),
  });
  expect(post === 403 || post === 404, `approving another PD's request answered ${post}`);
  return { pdPage: pdPage.status(), reqPage: reqPage.status(), material, post };
}

main(async (browser) => {
  const id = await fileRequest(browser);
  const { page, requests } = await approve(browser, id);
  const done = await waitDone(page, id);
  await page.goto(`${cfg.url}/console/restores/${id}?lang=${cfg.lang}`);
  await shot(page, cfg, "custodian-restore-done");
  const auditorPost = await auditorLooks(browser, id);
  const scope = await otherPd(browser, cfg.other.request);
  return { lang: cfg.lang, id, requests, done, auditorPost, scope, sizes };
});
