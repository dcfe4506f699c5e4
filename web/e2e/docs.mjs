// The API's documentation pages in a real headless Chromium, against a running API:
// `node web/e2e/docs.mjs <base URL> [screenshot dir]`. Swagger UI and ReDoc come from the API
// itself (the health function's pinned copies): any request to another origin fails the check, so
// the pages are proven to work offline. Swagger UI: "Authorize" with an email and password (the
// OAuth2 password flow), then "Try it out" on a secured operation answers 200 with the caller's
// profile. ReDoc: the reference renders. Fails on any console error (a CSP violation is one).
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

const [base = 'http://127.0.0.1:9000', shots = 'target/docs-e2e'] = process.argv.slice(2);
const origin = new URL(base).origin;
mkdirSync(shots, { recursive: true });

const email = `docs-${Date.now()}@example.com`;
const password = 'correct horse battery staple';
const registered = await fetch(`${base}/api/v1/auth/register`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ email, password }),
});
if (registered.status !== 201) throw new Error(`register: ${registered.status} ${await registered.text()}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
const problems = [];
const step = (what) => console.log(`docs e2e: ok   ${what}`);
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  // (ReDoc's logo from Redocly's CDN is refused by the page's policy; see below.)
  context.on('request', (r) => {
    const url = new URL(r.url());
    if (r.url().includes('cdn.redoc.ly/redoc/logo-mini.svg')) return;
    if (!['data:', 'blob:'].includes(url.protocol) && url.origin !== origin) problems.push(`request to another origin: ${r.url()}`);
  });
  const page = await context.newPage();
  // ReDoc's sidebar shows Redocly's logo from their CDN; the page's CSP blocks it on purpose (no
  // third-party request) and ReDoc hides the broken image. Every other console error fails.
  const expected = (text) => text.includes('https://cdn.redoc.ly/redoc/logo-mini.svg');
  page.on('console', (m) => m.type() === 'error' && !expected(m.text()) && problems.push(`console: ${m.text()}`));
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));

  await page.goto(`${base}/api/v1/docs`, { waitUntil: 'networkidle' });
  await page.locator('.swagger-ui .info .title').filter({ hasText: 'CodeChat API' }).waitFor();
  step('Swagger UI loads from the API itself, under its policy');

  await page.locator('.scheme-container button.authorize').click();
  const modal = page.locator('.modal-ux');
  const oauth2 = modal.locator('.auth-container', { has: page.locator('#oauth_username') });
  await oauth2.locator('#oauth_username').fill(email);
  await oauth2.locator('#oauth_password').fill(password);
  await oauth2.locator('button.authorize').click();
  // Once authorized, the section shows the user and a Logout button in place of the form.
  await modal.locator('.auth-container', { hasText: 'oauth2' }).locator('button', { hasText: 'Logout' }).waitFor();
  await modal.locator('button.close-modal').click();
  step('"Authorize" logs in with email and password (OAuth2 password flow)');

  const operation = page.locator('.opblock-get', {
    has: page.locator('.opblock-summary-path[data-path="/api/v1/users/me"]'),
  });
  await operation.locator('.opblock-summary').click();
  await operation.locator('button.try-out__btn').click();
  await operation.locator('button.execute').click();
  const status = operation.locator('.live-responses-table tbody .response-col_status').first();
  await status.waitFor();
  const code = (await status.innerText()).trim();
  const body = await operation.locator('.live-responses-table .microlight').first().innerText();
  await page.screenshot({ path: path.join(shots, 'swagger.png'), fullPage: false });
  if (code !== '200' || !body.includes(email)) {
    throw new Error(`GET /api/v1/users/me from the docs answered ${code}: ${body.slice(0, 300)}`);
  }
  step('"Try it out" on GET /api/v1/users/me sends the token and answers the profile');

  await page.goto(`${base}/api/v1/redoc`, { waitUntil: 'networkidle' });
  await page.locator('h1', { hasText: 'CodeChat API' }).first().waitFor();
  await page.getByText('/api/v1/users/me').first().waitFor({ state: 'attached' });
  await page.screenshot({ path: path.join(shots, 'redoc.png'), fullPage: false });
  step('ReDoc renders the reference');
} catch (e) {
  problems.push(String(e && e.stack || e));
} finally {
  await browser.close();
}
if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
