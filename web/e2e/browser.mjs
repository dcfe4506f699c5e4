// End to end in a real headless Chromium (Debian's, driven by playwright-core; no browser is
// downloaded), against a running API: `node web/e2e/browser.mjs <base URL> <project zip> <screenshot dir>`.
// Signs up, sends a message and watches the answer stream in, reloads and finds the conversation,
// renames it, sends an attachment, edits the first message and switches back to the original
// branch, shares the conversation and opens the link signed out, searches the history, opens a
// project's tree and a file, adds a tool server and an agent that calls one of its tools (given an
// MCP server's URL), deletes the conversation; checks a phone-width layout; fails on any
// console error or any request to another origin.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

const [base = 'http://127.0.0.1:9000', zip, shots = 'target/web-e2e', mcpUrl] = process.argv.slice(2);
const origin = new URL(base).origin;
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
const problems = [];
const step = (what) => console.log(`web e2e: ok   ${what}`);
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, permissions: ['clipboard-read', 'clipboard-write'] });
  const page = await context.newPage();
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('request', (r) => {
    const url = new URL(r.url());
    if (!['data:', 'blob:'].includes(url.protocol) && url.origin !== origin) problems.push(`request to another origin: ${r.url()}`);
  });
  // The app asks in its own dialogs: a browser prompt or confirm is a failure.
  page.on('dialog', (d) => {
    problems.push(`a browser ${d.type()} dialog: ${d.message()}`);
    d.dismiss();
  });

  // The first load: every response's bytes on the wire (compressed), under 150 KB in all.
  const firstLoad = [];
  const onResponse = (r) => firstLoad.push(r.request());
  page.on('response', onResponse);
  await page.goto(`${base}/`, { waitUntil: 'networkidle' });
  page.off('response', onResponse);
  let bytes = 0;
  for (const request of firstLoad) bytes += (await request.sizes()).responseBodySize;
  if (bytes > 150 * 1024) throw new Error(`the first load took ${bytes} bytes`);
  step(`first load: ${firstLoad.length} responses, ${(bytes / 1024).toFixed(1)} KB compressed`);
  await page.getByRole('button', { name: 'New here? Create an account' }).click();
  const email = `web-${Date.now()}@example.com`;
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByLabel('Display name (optional)').fill('Browser');
  await page.getByRole('button', { name: 'Sign up' }).click();
  await page.locator('#app').waitFor();
  step('sign up');

  // A new tab is signed in, from the HttpOnly refresh cookie; no script can read a refresh token.
  const tab = await context.newPage();
  await tab.goto(`${base}/`);
  await tab.locator('#app').waitFor();
  const kept = await tab.evaluate(() => JSON.stringify({ ...window.sessionStorage, ...window.localStorage, cookie: document.cookie }));
  if (/refresh|eyJ/.test(kept)) throw new Error(`a token is within a script's reach: ${kept}`);
  await tab.close();
  step('a new tab is signed in (the refresh token only in an HttpOnly cookie)');

  const composer = page.getByLabel('Message', { exact: true });
  await composer.fill('Hello from a real browser, streamed word by word');
  // The streaming answer lives a few hundred milliseconds; polling for it can miss it on a busy
  // machine. An observer set up before sending records every text the streaming bubble was given
  // (each record, so deltas handled in one task are still counted one by one).
  await page.evaluate(() => {
    window.__streamed = [];
    new MutationObserver((records) => {
      for (const r of records) {
        if (!r.target.matches?.('.message.assistant .body')) continue;
        for (const node of r.addedNodes) if (node.textContent) window.__streamed.push(node.textContent);
      }
    }).observe(document.getElementById('messages'), { subtree: true, childList: true });
  });
  await composer.press('Enter');
  const answer = page.locator('.message.assistant:not(.streaming)').last();
  await answer.waitFor({ timeout: 30000 });
  await page.locator('#stop').waitFor({ state: 'hidden', timeout: 30000 });
  const text = await answer.locator('.body').innerText();
  if (!text.includes('Hello from a real browser')) throw new Error(`unexpected answer: ${text}`);
  const streamed = await page.evaluate(() => window.__streamed);
  if (streamed.length < 2) throw new Error(`the answer did not stream in: ${JSON.stringify(streamed)}`);
  await page.locator('.message.assistant .cost').first().waitFor();
  step(`a message streamed in (${streamed.length} partial texts seen), with tokens and cost`);

  await page.reload();
  const item = page.getByRole('button', { name: /^Open conversation / }).first();
  await item.waitFor();
  await item.click();
  await page.locator('.message.user').first().waitFor();
  step('reloaded: the session and the conversation are still there');

  await page.getByRole('button', { name: /^Rename conversation / }).first().click();
  await page.getByRole('dialog', { name: 'Rename the conversation' }).getByLabel('Title').fill('Renamed in the browser');
  await page.getByRole('dialog', { name: 'Rename the conversation' }).getByRole('button', { name: 'Rename' }).click();
  await page.getByRole('button', { name: 'Open conversation Renamed in the browser' }).waitFor();
  step('renamed');

  await page.locator('#file-input').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('remember the milk\n') });
  await page.getByRole('button', { name: 'Remove attachment notes.txt' }).waitFor();
  await composer.fill('What is in the attached note?');
  await composer.press('Enter');
  await page.locator('.message.user .attachments li', { hasText: 'notes.txt (18 B)' }).waitFor();
  await page.locator('#stop').waitFor({ state: 'hidden', timeout: 30000 });
  step('an attachment sent with a message');

  // A file past the inline limit goes by presigned URL (locally the API's own), with progress.
  await page.locator('#file-input').setInputFiles({ name: 'big.txt', mimeType: 'text/plain', buffer: Buffer.alloc(5 * 1024 * 1024, 'a') });
  await page.getByRole('button', { name: 'Remove attachment big.txt' }).waitFor({ timeout: 60000 });
  await page.locator('#pending li', { hasText: 'big.txt (5.0 MB)' }).waitFor();
  await page.getByRole('button', { name: 'Remove attachment big.txt' }).click();
  step('a 5 MB file uploaded by presigned URL, shown with its size');

  await page.screenshot({ path: path.join(shots, 'chat.png'), fullPage: true });

  // Reload while an answer streams in: the page picks it up and shows all of it, as stored.
  const long = Array.from({ length: 120 }, (_, i) => `w${i}`).join(' ');
  await composer.fill(long);
  await composer.press('Enter');
  await page.locator('.message.assistant.streaming .body', { hasText: 'Echo' }).waitFor({ timeout: 30000 });
  await page.reload();
  const resumed = page.locator('.message.assistant .body', { hasText: 'w119' });
  await resumed.waitFor({ timeout: 30000 });
  await page.locator('#stop').waitFor({ state: 'hidden', timeout: 30000 });
  const shown = (await page.locator('.message.assistant .body').last().innerText()).trim();
  if (shown !== `Echo (offline model, no AI): ${long}`) throw new Error(`the resumed answer reads: ${shown}`);
  step('reloaded mid-answer: the answer was picked up and completed');

  // Edit the first message: a new branch, "2 / 2"; then back to the original, "1 / 2".
  const firstMessage = () => page.locator('.message.user').first();
  await firstMessage().getByRole('button', { name: 'Edit message' }).click();
  await page.getByLabel('Edited message').fill('Hello again, edited in the browser');
  await page.getByRole('button', { name: 'Send edit' }).click();
  await firstMessage().locator('.branches', { hasText: '2 / 2' }).waitFor({ timeout: 30000 });
  await page.locator('.message.assistant', { hasText: 'edited in the browser' }).waitFor();
  if ((await page.locator('.message').count()) !== 2) throw new Error('the edit does not show its own branch alone');
  step('edited the first message: a second branch, shown');
  await firstMessage().getByRole('button', { name: 'Previous version' }).click();
  await firstMessage().locator('.branches', { hasText: '1 / 2' }).waitFor();
  await firstMessage().locator('.body', { hasText: 'Hello from a real browser' }).waitFor();
  await page.locator('.message.user', { hasText: 'What is in the attached note?' }).waitFor();
  step('switched back to the original branch, all of it');
  await page.screenshot({ path: path.join(shots, 'branches.png') });

  // Share it, and open the link in a fresh, signed-out browser context.
  await page.getByRole('button', { name: 'Share', exact: true }).click();
  await page.getByRole('button', { name: 'Create a link' }).click();
  const link = await page.locator('#share-list input').first().inputValue();
  await page.getByRole('button', { name: 'Close', exact: true }).click();
  const reader = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const shared = await reader.newPage();
  shared.on('console', (m) => m.type() === 'error' && problems.push(`shared page console: ${m.text()}`));
  shared.on('pageerror', (e) => problems.push(`shared page error: ${e.message}`));
  await shared.goto(new URL(link, base).href, { waitUntil: 'networkidle' });
  await shared.locator('#shared-messages .message.user', { hasText: 'Hello from a real browser' }).waitFor();
  if (await shared.locator('#auth').isVisible()) throw new Error('the shared page asked to sign in');
  await shared.screenshot({ path: path.join(shots, 'shared.png') });
  await reader.close();
  step('shared: the link opens signed out, read-only');

  // Search over history finds the edited branch's message too.
  await page.getByLabel('Search messages').fill('edited browser');
  await page.getByRole('button', { name: /^Open the user message in / }).first().waitFor();
  await page.getByLabel('Search messages').fill('');
  await page.getByRole('button', { name: 'Open conversation Renamed in the browser' }).waitFor();
  step('searched the history');

  // Markdown as people write it: a table, a highlighted code block whose Copy button copies it.
  await page.getByRole('button', { name: 'New chat' }).click();
  await composer.fill('Markdown check\n\n| fruit | count |\n|:--|--:|\n| apple | 3 |\n\n```rust\nfn main() { let x = 1; }\n```');
  await composer.press('Enter');
  await page.locator('#stop').waitFor({ state: 'hidden', timeout: 30000 });
  const rendered = page.locator('.message.assistant').last();
  await rendered.locator('table td', { hasText: 'apple' }).waitFor();
  await rendered.locator('code.language-rust .token.keyword', { hasText: 'fn' }).first().waitFor();
  await rendered.getByRole('button', { name: 'Copy the rust code' }).click();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  if (copied !== 'fn main() { let x = 1; }') throw new Error(`the code block copied ${JSON.stringify(copied)}`);
  await page.screenshot({ path: path.join(shots, 'markdown.png') });
  step('Markdown: a table and highlighted code rendered; its Copy button copied the code');

  // Every conversation has its address: a reload there shows it again.
  const address = new URL(page.url()).pathname;
  if (!/\/c\/[0-9a-f-]{36}$/.test(address)) throw new Error(`the conversation's address is ${address}`);
  await page.reload();
  await page.locator('.message.assistant table td', { hasText: 'apple' }).waitFor();
  if (new URL(page.url()).pathname !== address) throw new Error('the address changed on reload');
  await page.goBack();
  await page.waitForFunction((a) => window.location.pathname !== a, address);
  await page.goForward();
  await page.locator('.message.assistant table td', { hasText: 'apple' }).waitFor();
  step(`reload, back and forward on ${address} show that conversation`);

  // A long conversation: the page does not grow, the composer stays on screen and the newest
  // message is in view.
  const tall = Array.from({ length: 60 }, (_, i) => `line ${i + 1}`).join('\n\n');
  for (let i = 0; i < 3; i++) {
    await composer.fill(tall);
    await composer.press('Enter');
    await page.locator('#stop').waitFor({ state: 'hidden', timeout: 60000 });
  }
  const layout = await page.evaluate(() => {
    const box = document.getElementById('messages');
    const last = box.lastElementChild.getBoundingClientRect();
    const composerBox = document.getElementById('composer').getBoundingClientRect();
    const view = box.getBoundingClientRect();
    return {
      page: document.documentElement.scrollHeight, window: window.innerHeight,
      composerBottom: composerBox.bottom, lastBottom: last.bottom, viewBottom: view.bottom,
      atEnd: box.scrollHeight - box.scrollTop - box.clientHeight,
    };
  });
  if (layout.page > layout.window + 1) throw new Error(`the page grew to ${layout.page}px in a ${layout.window}px window`);
  if (layout.composerBottom > layout.window + 1) throw new Error(`the composer ends at ${layout.composerBottom}px`);
  if (layout.atEnd > 60 || layout.lastBottom > layout.viewBottom + 60) throw new Error(`the newest message is out of view: ${JSON.stringify(layout)}`);
  await page.screenshot({ path: path.join(shots, 'long.png') });
  step(`a long conversation: the page stays ${layout.page}px high, the composer and the newest message on screen`);

  if (zip) {
    await page.locator('#zip-input').setInputFiles(zip);
    await page.getByRole('button', { name: 'Open file src/main.rs' }).click();
    await page.locator('#file-view', { hasText: 'fn main' }).waitFor();
    await page.locator('#file-name', { hasText: 'src/main.rs' }).waitFor();
    await page.locator('#file-code .token.keyword', { hasText: 'fn' }).first().waitFor();
    await page.locator('.tree .file[aria-current="true"]', { hasText: 'main.rs' }).waitFor();
    step('a project zip uploaded, its tree and a file opened (named, highlighted, marked in the tree)');
    await page.screenshot({ path: path.join(shots, 'project.png') });
    await page.getByRole('button', { name: 'Rename the project' }).click();
    await page.getByRole('dialog', { name: 'Rename the project' }).getByLabel('Name').fill('demo renamed');
    await page.getByRole('dialog', { name: 'Rename the project' }).getByRole('button', { name: 'Rename' }).click();
    await page.getByRole('button', { name: 'Open project demo renamed' }).waitFor();
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download the project' }).click(),
    ]);
    if (download.suggestedFilename() !== 'demo renamed.zip') throw new Error(`downloaded ${download.suggestedFilename()}`);
    step('the project renamed in the app\'s dialog and downloaded as a zip');
    await page.getByRole('button', { name: 'Close the project' }).click();
  }

  if (mcpUrl) {
    await page.getByRole('button', { name: 'Agents and tools' }).click();
    await page.getByLabel('Name (agents see its tools as name__tool)').fill('tools');
    await page.getByLabel('URL').fill(mcpUrl);
    await page.getByLabel('Headers, one "Name: value" per line (optional)').fill('Authorization: Bearer browser-secret');
    await page.getByRole('button', { name: 'Add server' }).click();
    await page.locator('#server-list', { hasText: 'tools:' }).waitFor();
    await page.getByLabel('System prompt').fill('Add numbers with the tool.');
    await page.locator('#tools-dialog').getByLabel('Name', { exact: true }).fill('Calculator');
    await page.locator('#agent-model').selectOption('local/echo');
    await page.getByLabel('add: Adds two whole numbers.').check();
    await page.getByRole('button', { name: 'Create agent' }).click();
    await page.locator('#agent-list', { hasText: 'mcp:tools/add' }).waitFor();
    if ((await page.locator('#tools-dialog').innerText()).includes('browser-secret')) throw new Error('a header value was shown');
    await page.screenshot({ path: path.join(shots, 'tools.png') });
    await page.locator('#tools-dialog').getByRole('button', { name: 'Close' }).click();
    await page.getByRole('button', { name: 'New chat' }).click();
    await page.getByLabel('Agent', { exact: true }).selectOption({ label: 'Calculator' });
    await composer.fill('/tool tools__add {"a": 20, "b": 22}');
    await composer.press('Enter');
    await page.locator('.message.assistant', { hasText: 'ok: 42' }).waitFor({ timeout: 30000 });
    step('a tool server added and its tools listed, an agent made with one of them, its call answered');
  }

  await page.getByRole('button', { name: 'Open conversation Renamed in the browser' }).click();
  await page.getByRole('button', { name: 'Delete conversation Renamed in the browser' }).click();
  await page.getByRole('dialog', { name: 'Delete the conversation?' }).getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('button', { name: 'Open conversation Renamed in the browser' }).waitFor({ state: 'detached' });
  step('deleted');

  await page.setViewportSize({ width: 390, height: 844 });
  const toggle = page.getByRole('button', { name: 'Show or hide the conversation list' });
  await toggle.waitFor();
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  if (wide > 390) throw new Error(`the phone layout is ${wide}px wide`);
  const drawer = page.locator('#sidebar');
  const opened = async () => {
    await toggle.click();
    await page.getByRole('button', { name: 'New chat' }).waitFor();
  };
  const closed = () => page.waitForFunction(() => !document.body.classList.contains('sidebar-open') && getComputedStyle(document.getElementById('sidebar')).visibility === 'hidden');
  await opened();
  await page.waitForTimeout(300); // the drawer's slide
  await page.screenshot({ path: path.join(shots, 'phone-drawer.png') });
  await page.keyboard.press('Escape');
  await closed();
  await opened();
  await page.mouse.click(375, 420);
  await closed();
  await opened();
  await page.getByRole('button', { name: 'Close the conversation list' }).click();
  await closed();
  await opened();
  await page.getByRole('button', { name: 'New chat' }).click();
  await closed();
  await opened();
  await drawer.getByRole('button', { name: /^Open conversation / }).first().click();
  await closed();
  await page.screenshot({ path: path.join(shots, 'phone.png') });
  step('phone width: nothing wider than the screen; the drawer closes on Escape, a tap beside it, ×, New chat and a conversation');

  await page.getByRole('button', { name: 'Show or hide the conversation list' }).click();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.locator('#auth').waitFor();
  step('signed out');
} finally {
  await browser.close();
}
if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log(`web e2e: screenshots in ${path.resolve(shots)} (chat.png, branches.png, shared.png, markdown.png, long.png, project.png, tools.png, phone-drawer.png, phone.png)`);
console.log('web e2e: 1 passed, 0 failed');
