// Shared by the browser test scripts: Debian's Chromium driven by
// playwright-core (it never downloads a browser), sign-in helpers, the
// recording of every request the controller receives, and the page-size
// measurement (bytes on the wire, cache disabled).
import { readFileSync, mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

/// The test's settings: a JSON file named by CADANG_BROWSER_CONFIG
/// (written by tests/browser.rs).
export function config() {
  const path = process.env.CADANG_BROWSER_CONFIG;
  if (!path) throw new Error("CADANG_BROWSER_CONFIG is not set (run through tests/browser.rs)");
  return JSON.parse(readFileSync(path, "utf8"));
}

/// Flags as this machine needs them: no sandbox (root), no GPU, and no
/// background connections (the network is closed; Chromium would retry).
export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/// A fresh profile (cookies, cache) per person. The controller's
/// certificate comes from its own CA, which this profile does not know.
export async function person(browser, cfg) {
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    locale: cfg.lang === "en" ? "en-GB" : "id-ID",
    viewport: { width: 1200, height: 800 },
  });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  // Every page is measured as a first visit on a slow link would see it.
  await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
  return { context, page, recorder: record(page, cfg.url), sizes: measure(page, cfg.url) };
}

/// Every request sent to the controller: method, URL, headers, body.
export function record(page, base) {
  const seen = [];
  page.on("request", (r) => {
    if (!r.url().startsWith(base)) return;
    seen.push({ method: r.method(), url: r.url(), headers: r.headers(), body: r.postData() ?? "" });
  });
  return seen;
}

/// Bytes on the wire per page: the document and everything it loaded,
/// from the browser's own accounting (encoded body + headers).
export function measure(page, base) {
  const pages = new Map();
  let current = null;
  page.on("framenavigated", (f) => {
    if (f === page.mainFrame()) current = new URL(f.url()).pathname;
  });
  page.on("requestfinished", async (r) => {
    if (!r.url().startsWith(base)) return;
    const key = r.isNavigationRequest() ? new URL(r.url()).pathname : current;
    if (!key) return;
    try {
      const s = await r.sizes();
      const bytes = s.responseBodySize + s.responseHeadersSize + s.requestHeadersSize + s.requestBodySize;
      const p = pages.get(key) ?? { bytes: 0, requests: 0 };
      p.bytes += bytes;
      p.requests += 1;
      pages.set(key, p);
    } catch {
      // The page went away before its sizes were known; nothing to count.
    }
  });
  return pages;
}

export const PAGE_LIMIT = 100 * 1024;

/// Fails when a page measured more than 100 KB.
export function checkSizes(sizes, who) {
  const report = {};
  for (const [path, s] of sizes) {
    report[path] = s.bytes;
    if (s.bytes > PAGE_LIMIT) fail(`${who}: page ${path} moved ${s.bytes} bytes, over ${PAGE_LIMIT}`);
  }
  return report;
}

/// Signs `who` in: with the cadang password when the test gives one, else
/// through the OpenID provider's login (and consent) pages.
export async function signIn(page, cfg, who) {
  if (who.password) return signInPassword(page, cfg, who.name, who.password);
  return signInSso(page, cfg, who.login);
}

export async function signInPassword(page, cfg, user, password) {
  await page.goto(`${cfg.url}/console/login?lang=${cfg.lang}`);
  await page.fill("input[name=user]", user);
  await page.fill("input[name=password]", password);
  await Promise.all([page.waitForLoadState("load"), page.click("form[action^='/console/login'] button[type=submit]")]);
  if (new URL(page.url()).pathname.startsWith("/console/login")) {
    const why = await page.locator("[role=alert]").textContent().catch(() => "");
    fail(`${user} could not sign in: ${why}`);
  }
}

/// From the console's login page through the provider and back.
export async function signInSso(page, cfg, login) {
  await page.goto(`${cfg.url}/console/login?lang=${cfg.lang}`);
  const button = page.locator("a[href^='/console/sso/login']");
  expect((await button.count()) === 1, "the login page offers no SSO button");
  await button.click();
  await page.waitForURL((u) => u.href.startsWith(cfg.issuer), { timeout: 15000 });
  await page.fill("input[name=login]", login);
  await page.fill("input[name=password]", "any password: the test provider takes it");
  await page.click("button[type=submit]");
  await page.waitForLoadState("load");
  // The provider asks for consent once per client and person.
  if (page.url().startsWith(cfg.issuer)) {
    const consent = page.locator("button:has-text('Continue')");
    if (await consent.count()) await consent.click();
  }
  await page.waitForURL((u) => u.href.startsWith(cfg.url), { timeout: 15000 });
  await page.waitForLoadState("load");
  // Signed in, the callback's page moves on to the console by itself; a
  // refusal stays on it (#sso-error).
  if (new URL(page.url()).pathname === "/console/sso/callback" && (await page.locator("#sso-error").count()) === 0) {
    await page.waitForURL((u) => u.pathname !== "/console/sso/callback", { timeout: 15000 });
    await page.waitForLoadState("load");
  }
}

export async function shot(page, cfg, name) {
  if (!cfg.screenshots) return;
  mkdirSync(cfg.screenshots, { recursive: true });
  await page.screenshot({ path: `${cfg.screenshots}/${name}-${cfg.lang}.png`, fullPage: true });
}

/// Status of a request made from the page with its session cookie (and
/// the CSRF token for a POST), as the page's own scripts would.
export async function fetchStatus(page, path, { method = "GET", body, csrf } = {}) {
  return page.evaluate(
    async ({ path, method, body, csrf }) => {
      const headers = { "Content-Type": "application/json" };
      if (csrf) headers["X-CSRF-Token"] = csrf;
      const r = await fetch(path, { method, headers, body, credentials: "same-origin" });
      return r.status;
    },
    { path, method, body, csrf },
  );
}

/// The session's CSRF token, from the logout form every page carries.
export async function csrfOf(page) {
  return page.locator("form[action='/console/logout'] input[name=csrf]").first().inputValue();
}

export function fail(message) {
  const e = new Error(message);
  e.isTestFailure = true;
  throw e;
}

export function expect(condition, message) {
  if (!condition) fail(message);
}

/// Runs `body`, prints `RESULT <json>` for the Rust side, exits 1 with the
/// reason on failure.
export async function main(body) {
  const browser = await launch();
  try {
    const result = await body(browser);
    console.log("RESULT " + JSON.stringify(result ?? {}));
  } catch (e) {
    console.error("FAILED: " + (e && e.stack ? e.stack : e));
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}
