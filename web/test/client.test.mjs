// The client's logic without a browser: `node --test web/test` (no npm packages needed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSseParser } from '../src/sse.js';
import { plainText, prismHighlighter, render, safeUrl } from '../src/markdown.js';
import { Session, ApiError } from '../src/session.js';

test('SSE events split across chunks, CRLF, comments and a last event without its blank line', () => {
  const got = [];
  const p = createSseParser((e) => got.push(e));
  p.push('event: meta\r\ndata: {"conversation_id":"c1"}\r\n\r\n: keep-alive\n\nevent: del');
  p.push('ta\ndata: {"text":"Hel"}\n\nevent: delta\ndata: {"text":"lo"}\n');
  assert.equal(got.length, 2);
  p.push('\nevent: done\ndata: {"a":1}');
  p.end();
  assert.deepEqual(got.map((e) => e.event), ['meta', 'delta', 'delta', 'done']);
  assert.equal(got.map((e) => e.data.text || '').join(''), 'Hello');
  assert.deepEqual(got[3].data, { a: 1 });
});

test('SSE multi-line data joins with newlines and non-JSON data stays text', () => {
  const got = [];
  const p = createSseParser((e) => got.push(e));
  p.push('data: one\ndata: two\n\n');
  assert.deepEqual(got, [{ event: 'message', data: 'one\ntwo' }]);
});

// A DOM just big enough for the renderer: elements, text nodes, attributes, events.
class FakeNode {
  constructor(doc, tag, text) {
    Object.assign(this, { ownerDocument: doc, tagName: tag, children: [], attributes: {}, style: {}, listeners: {}, className: '' });
    if (text !== undefined) this.text = text;
  }
  append(...nodes) { this.children.push(...nodes); }
  replaceChildren(...nodes) { this.children = nodes; }
  setAttribute(k, v) { this.attributes[k] = String(v); }
  addEventListener(type, fn) { this.listeners[type] = fn; }
  set textContent(v) { this.children = [new FakeNode(this.ownerDocument, '#text', String(v))]; }
  get textContent() { return this.tagName === '#text' ? this.text : this.children.map((c) => c.textContent).join(''); }
  all(tag) { return [...(this.tagName === tag ? [this] : []), ...this.children.flatMap((c) => c.all(tag))]; }
}
const fakeDocument = () => {
  const doc = { createElement: (tag) => new FakeNode(doc, tag), createTextNode: (text) => new FakeNode(doc, '#text', text) };
  return doc;
};

async function markdownTools() {
  const { marked } = await import('../vendor/marked/marked.esm.js');
  // Prism's files are classic scripts (as the browser runs them, joined): run in the global scope.
  const { readFileSync } = await import('node:fs');
  const { runInThisContext } = await import('node:vm');
  for (const name of ['core', 'clike', 'rust', 'python']) {
    runInThisContext(readFileSync(new URL(`../vendor/prism/prism-${name}.min.js`, import.meta.url), 'utf8'));
  }
  return { lex: marked.lexer, highlight: prismHighlighter(globalThis.Prism) };
}

test('Markdown: tables, highlighted code with a Copy button, lists, quotes, task lists', async () => {
  const tools = await markdownTools();
  const copied = [];
  const root = new FakeNode(fakeDocument(), 'div');
  render('# Title\n\n| a | b |\n|:-|-:|\n| 1 | `x` |\n\n```rust\nfn main() { let s = "hi"; }\n```\n\n- a\n- [x] done\n\n1. one\n\n> quoted', root, { ...tools, copy: (text) => copied.push(text) });
  assert.equal(root.all('h3').length, 1);
  const [table] = root.all('table');
  assert.deepEqual(table.all('th').map((c) => [c.textContent, c.style.textAlign]), [['a', 'left'], ['b', 'right']]);
  assert.deepEqual(table.all('td').map((c) => c.textContent), ['1', 'x']);
  const [code] = root.all('code').filter((c) => c.className === 'language-rust');
  assert.equal(code.textContent, 'fn main() { let s = "hi"; }');
  const tokens = code.all('span').map((s) => s.className);
  assert.ok(tokens.includes('token keyword') && tokens.includes('token string'), tokens.join(','));
  const [button] = root.all('button');
  assert.equal(button.textContent, 'Copy');
  button.listeners.click();
  assert.deepEqual(copied, ['fn main() { let s = "hi"; }']);
  assert.equal(root.all('ul').length, 1);
  assert.equal(root.all('input')[0].checked, true);
  assert.equal(root.all('ol').length, 1);
  assert.equal(root.all('blockquote')[0].textContent, 'quoted');
});

test('Markdown never passes HTML or unsafe links through', async () => {
  const tools = await markdownTools();
  const root = new FakeNode(fakeDocument(), 'div');
  render('<script>alert(1)</script>\n\nhi <b>x</b> [x](javascript:alert(1)) [ok](https://example.com) ![pic](https://tracker.example/p.png) <img src=x onerror=alert(1)>\n\n```\n<b>x</b>\n```', root, tools);
  for (const tag of ['script', 'b', 'img']) assert.equal(root.all(tag).length, 0, tag);
  const links = root.all('a').map((a) => [a.textContent, a.href]);
  assert.deepEqual(links, [['ok', 'https://example.com'], ['[image: pic]', 'https://tracker.example/p.png']]);
  assert.ok(root.textContent.includes('<script>alert(1)</script>'), 'markup stays text');
  assert.ok(root.textContent.includes('<img src=x onerror=alert(1)>'));
  assert.equal(root.all('code').at(-1).textContent, '<b>x</b>');
  assert.equal(safeUrl(' mailto:a@b.c '), 'mailto:a@b.c');
  assert.equal(safeUrl('data:text/html,x'), null);
});

test('titles and lists show text without Markdown marks', () => {
  assert.equal(plainText('## How do I **sort** a `Vec`?'), 'How do I sort a Vec?');
  assert.equal(plainText('- see [the docs](https://x.y)\n```rust\nfn a() {}\n```'), 'see the docs');
});

function fakeFetch(routes) {
  const calls = [];
  const fn = async (url, options = {}) => {
    calls.push({ url, options });
    const handler = routes[url] || routes['*'];
    const { status = 200, body = null } = handler(options, calls.length) || {};
    return new Response(body === null ? null : JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
  };
  fn.calls = calls;
  return fn;
}

class MemoryStorage {
  constructor() { this.map = new Map(); }
  getItem(k) { return this.map.has(k) ? this.map.get(k) : null; }
  setItem(k, v) { this.map.set(k, String(v)); }
  removeItem(k) { this.map.delete(k); }
}

test('an expired access token is refreshed once, concurrent requests share the refresh, and they retry', async () => {
  let refreshes = 0;
  const fetch = fakeFetch({
    '/api/v1/auth/refresh': () => {
      refreshes++;
      return { body: { access_token: 'fresh', refresh_token: 'r2' } };
    },
    '*': (options) => (options.headers.authorization === 'Bearer fresh' ? { body: { ok: true } } : { status: 401, body: { status: 401 } }),
  });
  const storage = new MemoryStorage();
  const session = new Session({ fetch, storage });
  session.accept({ access_token: 'stale', refresh_token: 'r1' });
  const [a, b] = await Promise.all([session.json('/users/me'), session.json('/conversations')]);
  assert.deepEqual([a, b], [{ ok: true }, { ok: true }]);
  assert.equal(refreshes, 1);
  assert.equal(storage.getItem('codechat.refresh'), 'r2', 'the rotated refresh token is kept');
  assert.equal(session.access, 'fresh');
});

test('a failed refresh signs out and the request answers its 401 problem', async () => {
  let signedOut = 0;
  const fetch = fakeFetch({
    '/api/v1/auth/refresh': () => ({ status: 401, body: { status: 401, detail: 'spent' } }),
    '*': () => ({ status: 401, body: { status: 401, detail: 'expired' } }),
  });
  const session = new Session({ fetch, storage: new MemoryStorage(), onSignedOut: () => signedOut++ });
  session.accept({ access_token: 'stale', refresh_token: 'r1' });
  await assert.rejects(session.json('/users/me'), (e) => e instanceof ApiError && e.status === 401);
  assert.equal(signedOut, 1);
  assert.equal(session.signedIn, false);
});

test('a reload with only the refresh token in sessionStorage refreshes before the first request', async () => {
  const storage = new MemoryStorage();
  storage.setItem('codechat.refresh', 'r1');
  const fetch = fakeFetch({
    '/api/v1/auth/refresh': () => ({ body: { access_token: 'a1', refresh_token: 'r2' } }),
    '*': (o) => ({ body: { auth: o.headers.authorization } }),
  });
  const session = new Session({ fetch, storage });
  assert.equal(session.signedIn, true);
  assert.deepEqual(await session.json('/users/me'), { auth: 'Bearer a1' });
});

test('field errors are read from the problem', () => {
  const e = new ApiError(422, { detail: 'bad', errors: [{ field: 'email', message: 'is not an email' }] });
  assert.equal(e.field('email'), 'is not an email');
  assert.equal(e.field('password'), null);
});

test('branches: switching shows the newest descendant; positions and neighbours', async () => {
  const { latestLeaf, position, sibling } = await import('../src/branches.js');
  // u1 → a1 → (u2 → a2 | u2b → a2b → u3); a1 also has a newer root sibling r.
  const tree = [
    { id: 'u1', parent_id: null }, { id: 'a1', parent_id: 'u1' }, { id: 'u2', parent_id: 'a1' },
    { id: 'a2', parent_id: 'u2' }, { id: 'u2b', parent_id: 'a1' }, { id: 'a2b', parent_id: 'u2b' },
    { id: 'u3', parent_id: 'a2b' }, { id: 'r', parent_id: null },
  ];
  assert.equal(latestLeaf(tree, 'u2'), 'a2');
  assert.equal(latestLeaf(tree, 'u2b'), 'u3');
  assert.equal(latestLeaf(tree, 'a1'), 'u3', 'the newest child at each step');
  assert.equal(latestLeaf(tree, 'r'), 'r');
  const m = { id: 'u2b', sibling_ids: ['u2', 'u2b'] };
  assert.deepEqual(position(m), { index: 2, count: 2 });
  assert.equal(sibling(m, -1), 'u2');
  assert.equal(sibling(m, 1), null);
  assert.deepEqual(position({ id: 'x' }), { index: 0, count: 0 });
});

test('tool server headers: one "Name: value" per line, blank lines skipped, a bad line refused', async () => {
  const { parseHeaders } = await import('../src/tools.js');
  assert.deepEqual(parseHeaders('Authorization: Bearer a:b\n\n  X-Api-Key:k1  \n'), { Authorization: 'Bearer a:b', 'X-Api-Key': 'k1' });
  assert.deepEqual(parseHeaders(''), {});
  assert.throws(() => parseHeaders('no colon here'), /line 1/);
  assert.throws(() => parseHeaders(': value'), /line 1/);
});

test('the agent tool picker offers the built-in tools, each server whole, and each listed tool', async () => {
  const { toolChoices, BUILT_IN_TOOLS } = await import('../src/tools.js');
  const choices = toolChoices([{ name: 'docs' }, { name: 'down' }], { docs: [{ name: 'search', description: 'Finds pages' }, { name: 'get' }] });
  assert.deepEqual(choices.slice(0, BUILT_IN_TOOLS.length).map((c) => c.value), BUILT_IN_TOOLS.map(([v]) => v));
  assert.deepEqual(choices.slice(BUILT_IN_TOOLS.length).map((c) => c.value), ['mcp:docs', 'mcp:docs/search', 'mcp:docs/get', 'mcp:down']);
  assert.equal(choices.find((c) => c.value === 'mcp:docs/search').label, 'search: Finds pages');
});

test('the cookie session: no refresh token in script reach, a new tab resumes by cookie, sign-out by cookie', async () => {
  const fetch = fakeFetch({
    '/api/v1/auth/login': () => ({ body: { access_token: 'a1', user: { id: 'u' } } }),
    '/api/v1/auth/refresh': () => ({ body: { access_token: 'a2' } }),
    '/api/v1/auth/logout': () => ({ status: 204 }),
    '*': () => ({ body: { ok: true } }),
  });
  const storage = new MemoryStorage();
  const hints = new MemoryStorage();
  // A browser that never signed in asks nothing.
  assert.equal(await new Session({ fetch, cookie: true, hints }).resume(), false);
  assert.equal(fetch.calls.length, 0);
  const session = new Session({ fetch, storage, cookie: true, hints });
  await session.signIn('/auth/login', { email: 'e', password: 'p' });
  const [login] = fetch.calls;
  assert.equal(login.options.headers['x-codechat-session'], 'cookie');
  assert.equal(login.options.credentials, 'same-origin');
  assert.equal(session.refreshToken, null);
  assert.equal(storage.map.size, 0, 'nothing kept where a script can read it');

  // A new tab: nothing in memory, the cookie (the browser's) signs it in.
  const tab = new Session({ fetch, storage: new MemoryStorage(), cookie: true, hints });
  assert.equal(await tab.resume(), true);
  const refresh = fetch.calls.at(-1);
  assert.equal(refresh.url, '/api/v1/auth/refresh');
  assert.equal(refresh.options.headers['x-codechat-session'], 'cookie');
  assert.equal(refresh.options.body, '{}');
  assert.equal(tab.access, 'a2');

  await tab.signOut();
  const out = fetch.calls.at(-1);
  assert.equal(out.url, '/api/v1/auth/logout');
  assert.equal(out.options.headers['x-codechat-session'], 'cookie');
  assert.equal(out.options.headers.authorization, 'Bearer a2');
  assert.equal(tab.access, null);
  assert.equal(hints.getItem('codechat.cookie-session'), null, 'signed out: the hint is gone');
});

test('sizes read as people read them', async () => {
  const { bytes } = await import('../src/uploads.js');
  assert.deepEqual([bytes(18), bytes(2048), bytes(5 * 1024 * 1024)], ['18 B', '2 KB', '5.0 MB']);
});
