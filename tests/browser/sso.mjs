// Single sign-on through the real OpenID provider (oidc/provider.mjs):
// a Wali Data with an NIP claim gets their cadang roles; an auditor
// without NIP (matched by verified e-mail) gets auditor only; an operator
// whose provider account carries no NIP gets no session at all.
import { config, main, person, shot, expect, fetchStatus, csrfOf, checkSizes, signInSso } from "./lib.mjs";

const cfg = config();

/// Through the provider's login and consent pages and back.
async function ssoLogin(page, login) {
  await signInSso(page, cfg, login);
}

async function rolesShown(page) {
  return (await page.locator("header .who span").first().textContent().catch(() => "")) || "";
}

main(async (browser) => {
  const out = { lang: cfg.lang };

  // A Wali Data with an NIP: the cadang user with that NIP, as custodian.
  {
    const { page, sizes } = await person(browser, cfg);
    await ssoLogin(page, cfg.sso.custodian.login);
    const path = new URL(page.url()).pathname;
    expect(path.startsWith("/console") && !path.startsWith("/console/login") && !path.startsWith("/console/sso"),
      `the Wali Data did not land in the console but on ${page.url()}: ${await page.content()}`);
    const who = await rolesShown(page);
    expect(who.includes(cfg.sso.custodian.user), `the header names ${who}, not ${cfg.sso.custodian.user}`);
    await shot(page, cfg, "sso-custodian-signed-in");
    const own = await page.goto(`${cfg.url}/console/pds/${cfg.sso.custodian.pd}?lang=${cfg.lang}`);
    expect(own.status() === 200, `the Wali Data's own PD page answered ${own.status()}`);
    out.custodian = { who, sizes: checkSizes(sizes, "sso custodian") };
  }

  // An auditor without NIP: signed in, auditor only; may change nothing.
  {
    const { page } = await person(browser, cfg);
    await ssoLogin(page, cfg.sso.auditor.login);
    const who = await rolesShown(page);
    expect(who.includes(cfg.sso.auditor.user), `the auditor's header names ${who}`);
    await shot(page, cfg, "sso-auditor-signed-in");
    const audit = await page.goto(`${cfg.url}/console/audit?lang=${cfg.lang}`);
    expect(audit.status() === 200, `the auditor's audit page answered ${audit.status()}`);
    const csrf = await csrfOf(page);
    const users = await page.goto(`${cfg.url}/console/users`);
    expect(users.status() === 403, `an SSO auditor opened the users page (${users.status()})`);
    await page.goto(`${cfg.url}/console/audit?lang=${cfg.lang}`);
    const file = await fetchStatus(page, "/api/v1/restores", {
      method: "POST",
      csrf,
      body: JSON.stringify(cfg.sso.fileBody),
    });
    expect(file === 403, `an SSO auditor filed a restore request: HTTP ${file}`);
    // The auditor reads the SSO logins in the audit log (JSON export).
    const entries = await page.evaluate(async () => {
      const r = await fetch("/console/audit/export?format=json", { credentials: "same-origin" });
      return r.ok ? r.json() : [];
    });
    const sso = entries.filter((e) => e.action === "user.login" && e.detail && e.detail.method === "sso");
    out.auditor = {
      who,
      file,
      ssoLoginsOk: sso.filter((e) => e.outcome === "ok").length,
      ssoLoginsRefused: sso.filter((e) => e.outcome === "refused").length,
    };
  }

  // A provider account without NIP whose e-mail is a cadang operator's:
  // refused, no session, no operator role.
  {
    const { page } = await person(browser, cfg);
    await ssoLogin(page, cfg.sso.operator.login);
    const error = await page.locator("#sso-error").textContent().catch(() => null);
    expect(error && error.includes("NIP"), `the operator without NIP was not refused: ${page.url()} ${await page.content()}`);
    await shot(page, cfg, "sso-refused-without-nip");
    const fleet = await page.goto(`${cfg.url}/console/fleet`);
    expect(new URL(page.url()).pathname.startsWith("/console/login"),
      `after the refusal the fleet page answered ${fleet.status()} at ${page.url()} (a session exists)`);
    out.operator = { refused: error };
  }
  return out;
});
