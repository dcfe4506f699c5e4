// The CodeChat web client: plain ES modules, no framework and no build step beyond the web
// function's content-hashed, precompressed embedding (see shared/build.rs). It talks only to the
// public API, on this origin unless <meta name="codechat-api"> names another.

import { readSse } from './sse.js';
import { plainText, prismHighlighter, render as renderMarkdown, renderTokens } from './markdown.js';
import { marked } from './marked.js';
import { ApiError, Session } from './session.js';
import { latestLeaf, position, sibling } from './branches.js';
import { setupTools } from './tools.js';
import { createUploads } from './uploads.js';

const $ = (id) => document.getElementById(id);
// The page is served at the app's root and one level down (`c/{id}`, `p/{id}`, `s/{token}`); the
// address changes as the reader moves (history.pushState), so the API's base and the app's root
// are made absolute once, from the address the page was loaded at.
const apiBase = new URL(document.querySelector('meta[name="codechat-api"]')?.content || '/api/v1', window.location.href).href.replace(/\/$/, '');
const appRoot = new URL(/\/[cps]\/[^/]+\/?$/.test(window.location.pathname) ? '../' : './', window.location.href);

// Where the reader is, from an address: a conversation, a project, or the app's start.
function place(location) {
  const rest = location.pathname.slice(appRoot.pathname.length);
  const m = rest.match(/^([cp])\/([0-9a-f-]{36})\/?$/i);
  if (!m) return { kind: 'home' };
  return { kind: m[1] === 'c' ? 'conversation' : 'project', id: m[2] };
}

// Records where the reader went (unless they got there by back/forward or a reload).
function go(path, how = 'push') {
  const url = new URL(path, appRoot);
  if (how === 'none' || url.pathname === window.location.pathname) return;
  if (how === 'replace') window.history.replaceState(null, '', url);
  else window.history.pushState(null, '', url);
}

const state = {
  // The refresh token in an HttpOnly cookie (a new tab signs in from it); the access token in memory.
  session: new Session({ base: apiBase, cookie: true, hints: window.localStorage, onSignedOut: () => showAuth() }),
  models: [],
  agents: [],
  agentNames: new Map(), // every agent's name by id, inactive ones too (for their answers)
  conversation: null,
  cursor: null,
  loadingPage: false,
  lastGroup: null, // the date heading the conversation list shows last
  projects: [],
  openFile: null, // the path shown in the project pane
  query: '',
  pending: [], // attachments ready to send
  uploading: [], // files on their way: {filename, size, progress}
  streaming: null, // AbortController of the turn in flight
  project: null,
  answerId: null, // the id of the answer streaming in, once the stream names it
  following: true, // whether the message list follows new text (the reader has not scrolled up)
};

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? '' : v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

const highlight = prismHighlighter(window.Prism);

// Copies `text`, saying so on `button` for a moment.
async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = el('textarea', { class: 'sr-only', 'aria-hidden': 'true' });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
  if (button) {
    button.textContent = 'Copied';
    setTimeout(() => (button.textContent = 'Copy'), 1500);
  }
}

function renderAnswer(text, body) {
  renderMarkdown(text, body, { lex: marked.lexer, highlight, copy: copyText });
}

// A streaming answer is rendered at most once a frame, however fast its deltas come.
function renderSoon(body, text) {
  body.pendingText = text;
  if (body.frame) return;
  body.frame = requestAnimationFrame(() => {
    body.frame = 0;
    renderAnswer(body.pendingText, body);
    scrollDown();
  });
}

const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const when = (iso) => {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : timeFormat.format(d);
};

// The app's own question dialog (not `prompt`/`confirm`): answers the input's value (with
// `label`), true (without), or null when cancelled.
function ask({ title, message = '', label = null, value = '', confirm = 'OK', danger = false }) {
  const dialog = $('ask-dialog');
  $('ask-title').textContent = title;
  $('ask-message').textContent = message;
  $('ask-message').hidden = !message;
  $('ask-field').hidden = label === null;
  $('ask-label').textContent = label ?? '';
  $('ask-input').value = value;
  $('ask-confirm').textContent = confirm;
  $('ask-confirm').classList.toggle('danger', danger);
  dialog.returnValue = '';
  dialog.showModal();
  if (label !== null) $('ask-input').select();
  else $('ask-confirm').focus();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      if (dialog.returnValue !== 'confirm') resolve(null);
      else resolve(label === null ? true : $('ask-input').value.trim() || null);
    }, { once: true });
  });
}

function toast(message) {
  const box = $('toast');
  box.textContent = message;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (box.hidden = true), 5000);
}

function describe(error) {
  if (error instanceof ApiError) {
    const fields = (error.problem.errors || []).map((e) => `${e.field}: ${e.message}`).join('; ');
    return fields || error.message;
  }
  return error && error.message ? error.message : String(error);
}

// Uploads and attachments (web/src/uploads.js).
const { upload, showPending, attachmentsView } = createUploads({ state, apiBase, $, el, toast, describe });

const money = (usd) => (usd >= 0.01 || usd === 0 ? `$${usd.toFixed(2)}` : `$${usd.toFixed(6)}`);

// ----- sign in / sign up -----

function showAuth() {
  $('app').hidden = true;
  $('auth').hidden = false;
  $('auth-email').focus();
}

function setupAuth() {
  let mode = 'signin';
  const toggle = () => {
    mode = mode === 'signin' ? 'signup' : 'signin';
    $('auth-title').textContent = mode === 'signin' ? 'Sign in' : 'Create an account';
    $('auth-submit').textContent = mode === 'signin' ? 'Sign in' : 'Sign up';
    $('auth-toggle').textContent = mode === 'signin' ? 'New here? Create an account' : 'Have an account? Sign in';
    $('auth-name-row').hidden = mode === 'signin';
    $('auth-error').textContent = '';
  };
  $('auth-toggle').addEventListener('click', toggle);
  $('auth-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    $('auth-error').textContent = '';
    const email = $('auth-email').value;
    const password = $('auth-password').value;
    try {
      if (mode === 'signup') {
        const display_name = $('auth-name').value.trim() || undefined;
        await state.session.signIn('/auth/register', { email, password, display_name });
      } else {
        await state.session.signIn('/auth/login', { email, password });
      }
      $('auth-password').value = '';
      await start();
    } catch (error) {
      $('auth-error').textContent = describe(error);
    }
  });
}

// ----- the signed-in app -----

async function start() {
  $('auth').hidden = true;
  $('app').hidden = false;
  try {
    const me = await state.session.json('/users/me');
    state.session.user = me;
    $('me').textContent = me.display_name || me.email;
    const [models, agents] = await Promise.all([
      state.session.json('/models'),
      state.session.json('/agents?limit=100').catch(() => ({ items: [] })),
    ]);
    state.models = models.items;
    state.agents = agents.items.filter((a) => a.status === 'active');
    state.agentNames = new Map(agents.items.map((a) => [a.id, a.name]));
    fillModels();
    fillAgents();
    await reloadConversations();
    await loadProjects();
    await showPlace('none');
    await resumeFromSharedPage();
    await resumeStreaming();
  } catch (error) {
    if (state.session.signedIn) toast(describe(error));
  }
}

function fillModels() {
  const select = $('model');
  select.replaceChildren(
    ...state.models.map((m) =>
      el('option', {
        value: m.id,
        disabled: !m.available,
        title: m.available ? `${m.provider}: ${m.context_window} tokens` : 'not available with this configuration',
        text: `${m.display_name}${m.available ? '' : ' (unavailable)'}`,
      }),
    ),
  );
  const first = state.models.find((m) => m.available);
  if (first) select.value = first.id;
}

function fillAgents() {
  $('agent').replaceChildren(
    el('option', { value: '', text: 'No agent' }),
    ...state.agents.map((a) => el('option', { value: a.id, text: a.name })),
  );
}

// ----- conversation list: search and infinite scroll (keyset pages) -----

async function reloadConversations() {
  state.cursor = null;
  state.lastGroup = null;
  $('conversations').replaceChildren();
  await loadPage(true);
}

// The heading a conversation goes under in the list, by its last activity.
function dateGroup(iso, now = new Date()) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return 'Older';
  const day = (x) => new Date(x.getFullYear(), x.getMonth(), x.getDate()).getTime();
  const days = Math.round((day(now) - day(d)) / 86400000);
  if (days <= 0) return 'Today';
  if (days === 1) return 'Yesterday';
  if (days < 7) return 'Previous 7 days';
  if (days < 30) return 'Previous 30 days';
  return 'Older';
}

async function loadPage(first = false) {
  if (state.loadingPage || (!first && !state.cursor)) return;
  state.loadingPage = true;
  try {
    const params = new URLSearchParams({ limit: '30' });
    if (state.query) params.set('q', state.query);
    if (state.cursor) params.set('cursor', state.cursor);
    const page = await state.session.json(`/conversations?${params}`);
    for (const c of page.items) {
      // Searches list by relevance, so only the plain list is grouped by date.
      const group = state.query ? null : dateGroup(c.last_message_at || c.updated_at);
      if (group && group !== state.lastGroup) {
        $('conversations').append(el('li', { class: 'group', role: 'presentation', text: group }));
        state.lastGroup = group;
      }
      $('conversations').append(conversationItem(c));
    }
    state.cursor = page.next_cursor;
    const none = $('conversations').children.length === 0;
    $('conversations-empty').hidden = !none;
    $('conversations-empty').textContent = state.query ? `No conversation matches “${state.query}”.` : 'No conversations yet.';
  } catch (error) {
    toast(describe(error));
  } finally {
    state.loadingPage = false;
  }
}

function conversationItem(c) {
  const title = plainText(c.title) || 'Untitled';
  const open = el('button', {
    class: 'conversation-open',
    'aria-label': `Open conversation ${title}`,
    onclick: () => openConversation(c.id),
    text: title,
    title,
  });
  const rename = el('button', {
    class: 'icon',
    'aria-label': `Rename conversation ${title}`,
    title: 'Rename',
    text: '✎',
    onclick: async () => {
      const title = await ask({ title: 'Rename the conversation', label: 'Title', value: c.title, confirm: 'Rename' });
      if (!title) return;
      try {
        const updated = await state.session.json(`/conversations/${c.id}`, { method: 'PATCH', body: { title } });
        item.replaceWith(conversationItem(updated));
        if (state.conversation && state.conversation.id === c.id) setConversation(updated);
      } catch (error) {
        toast(describe(error));
      }
    },
  });
  const remove = el('button', {
    class: 'icon',
    'aria-label': `Delete conversation ${title}`,
    title: 'Delete',
    text: '✕',
    onclick: async () => {
      const sure = await ask({ title: 'Delete the conversation?', message: `“${title}” and its messages will be deleted. This cannot be undone.`, confirm: 'Delete', danger: true });
      if (!sure) return;
      try {
        await state.session.request(`/conversations/${c.id}`, { method: 'DELETE' });
        item.remove();
        if (state.conversation && state.conversation.id === c.id) newConversation();
      } catch (error) {
        toast(describe(error));
      }
    },
  });
  const item = el('li', { dataset: { id: c.id }, class: state.conversation?.id === c.id ? 'current' : '' }, open, rename, remove);
  return item;
}

// ----- the chat pane -----

function newConversation({ history = 'push' } = {}) {
  state.conversation = null;
  $('on-project').hidden = !state.project;
  if (state.project) $('on-project').textContent = `on ${state.project.name}`;
  go(state.project ? `p/${state.project.id}` : './', history);
  $('title').textContent = state.project ? `New chat on ${state.project.name}` : 'New chat';
  $('messages').replaceChildren(el('p', { class: 'hint', text: 'Ask anything. Enter sends, Shift+Enter starts a new line.' }));
  $('usage').textContent = '';
  $('agent').disabled = false;
  $('share').hidden = true;
  markCurrent();
  $('composer-input').focus();
}

// The project a conversation works on: its pane beside it, and its name by the title.
async function showConversationProject(c) {
  if (!c.project_id) {
    $('on-project').hidden = true;
    if (state.project) {
      state.project = null;
      $('project-pane').hidden = true;
    }
    return;
  }
  let p = state.projects.find((x) => x.id === c.project_id);
  if (!p) {
    try {
      p = await state.session.json(`/projects/${c.project_id}`);
    } catch {
      return; // a deleted project: the conversation stands alone
    }
  }
  $('on-project').textContent = `on ${p.name}`;
  $('on-project').setAttribute('aria-label', `Works on the project ${p.name}; show its files`);
  $('on-project').hidden = false;
  if (state.project?.id !== p.id || $('project-pane').hidden) await showProject(p, { chat: false });
}

function setConversation(c) {
  state.conversation = c;
  $('title').textContent = plainText(c.title) || 'Untitled';
  showConversationProject(c);
  if (c.model && state.models.some((m) => m.id === c.model && m.available)) $('model').value = c.model;
  $('agent').value = c.agent_id || '';
  $('agent').disabled = true;
  $('share').hidden = false;
  markCurrent();
}

function markCurrent() {
  for (const li of $('conversations').children) li.classList.toggle('current', li.dataset.id === state.conversation?.id);
}

async function openConversation(id, { keepScroll = false, history = 'push' } = {}) {
  try {
    const c = await state.session.json(`/conversations/${id}`);
    setConversation(c);
    go(`c/${c.id}`, history);
    $('messages').replaceChildren();
    let cursor = null;
    const messages = [];
    do {
      const page = await state.session.json(`/conversations/${id}/messages?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      messages.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    for (const m of messages) $('messages').append(messageView(m));
    await Promise.all(messages.filter((m) => m.role === 'assistant').slice(-20).map((m) => showMessageUsage(m.id)));
    await refreshUsage();
    if (!keepScroll) scrollDown(true);
  } catch (error) {
    toast(describe(error));
  }
}

function messageView(m, streaming = false, userLabel = 'You') {
  const body = el('div', { class: 'body' });
  if (m.role === 'assistant' && !streaming) renderAnswer(m.content, body);
  else body.textContent = m.content;
  const who = m.role === 'user' ? userLabel : m.model || 'assistant';
  const meta = el('div', { class: 'meta' }, el('span', { class: 'who', text: who }));
  const agent = m.agent_id && state.agentNames.get(m.agent_id);
  if (m.role === 'assistant' && agent) meta.append(el('span', { class: 'agent', text: agent }));
  if (m.created_at) meta.append(el('time', { datetime: m.created_at, text: when(m.created_at) }));
  if (m.status && m.status !== 'complete') meta.append(el('span', { class: 'status', text: m.status }));
  const view = el('article', { class: `message ${m.role}`, dataset: { id: m.id || '' }, 'aria-label': `${m.role} message` }, meta, body);
  if (m.attachments && m.attachments.length) view.append(attachmentsView(m.attachments));
  if (m.changes && m.changes.length) view.append(changesView(m.changes));
  if (m.citations && m.citations.length) {
    view.append(el('ol', { class: 'citations', 'aria-label': 'Sources' }, ...m.citations.map((c) => el('li', { text: `${c.title}${c.heading ? ` › ${c.heading}` : ''}` }))));
  }
  if (m.id && !streaming && m.parent_id !== undefined) view.append(messageActions(m, view));
  return view;
}

// Under a stored message: its versions ("2 / 3" with the neighbours), and edit (a user message)
// or regenerate (an answer), each making a new branch.
function messageActions(m, view) {
  const actions = el('div', { class: 'actions' });
  const { index, count } = position(m);
  if (count > 1) {
    const step = (by, label, text) =>
      el('button', {
        type: 'button',
        'aria-label': label,
        text,
        disabled: !sibling(m, by),
        onclick: () => switchTo(sibling(m, by)),
      });
    actions.append(
      el('span', { class: 'branches', role: 'group', 'aria-label': 'Versions of this message' },
        step(-1, 'Previous version', '‹'),
        el('span', { text: `${index} / ${count}` }),
        step(1, 'Next version', '›')),
    );
  }
  actions.append(el('button', {
    type: 'button', text: 'Copy', 'aria-label': `Copy the ${m.role === 'user' ? 'message' : 'answer'}`,
    onclick: (e) => copyText(m.content, e.currentTarget),
  }));
  if (m.role === 'user') {
    actions.append(el('button', { type: 'button', text: 'Edit', 'aria-label': 'Edit message', onclick: () => editMessage(m, view) }));
  } else if (m.role === 'assistant') {
    actions.append(el('button', { type: 'button', text: 'Regenerate', 'aria-label': 'Regenerate answer', onclick: () => send({ regenerate: m.id, replacing: view }) }));
  }
  return actions;
}

function editMessage(m, view) {
  if (state.streaming || view.querySelector('.edit-form')) return;
  const input = el('textarea', { rows: 3, 'aria-label': 'Edited message' });
  input.value = m.content;
  const form = el('form', { class: 'edit-form' }, input,
    el('div', { class: 'actions' },
      el('button', { type: 'button', text: 'Cancel', onclick: () => { form.remove(); body.hidden = false; } }),
      el('button', { type: 'submit', text: 'Send edit' })));
  const body = view.querySelector('.body');
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (text) send({ text, parent_id: m.parent_id ?? null, replacing: view });
  });
  body.hidden = true;
  body.after(form);
  input.focus();
}

// Shows the branch holding `id`: the whole tree is read, the newest message under `id` becomes the
// active leaf, and the path is shown.
async function switchTo(id) {
  if (!id || !state.conversation || state.streaming) return;
  const conversation = state.conversation.id;
  try {
    const all = [];
    let cursor = null;
    do {
      const page = await state.session.json(`/conversations/${conversation}/messages?all=true&limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      all.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    await state.session.json(`/conversations/${conversation}/active-leaf`, { method: 'PUT', body: { message_id: latestLeaf(all, id) } });
    await openConversation(conversation, { keepScroll: true });
  } catch (error) {
    toast(describe(error));
  }
}

// The files an answer changed; each opens in the project pane (a deleted one is only named).
function changesView(changes) {
  return el(
    'ul',
    { class: 'changes', 'aria-label': 'Files changed' },
    ...changes.map((c) => {
      const action = c.action || c.kind || 'changed';
      if (action === 'deleted' || !state.project) return el('li', { text: `${action} ${c.path}` });
      return el('li', {}, `${action} `, el('button', {
        type: 'button', class: 'link', text: c.path, 'aria-label': `Open the changed file ${c.path}`,
        onclick: () => openFile(state.project, c.path),
      }));
    }),
  );
}

async function showMessageUsage(id) {
  try {
    const rows = await state.session.json(`/messages/${id}/usage`);
    const list = Array.isArray(rows) ? rows : rows.items || [];
    const view = $('messages').querySelector(`[data-id="${CSS.escape(id)}"] .meta`);
    if (!view || list.length === 0) return;
    const tokens = list.reduce((n, r) => n + r.input_tokens + r.output_tokens, 0);
    const cost = list.reduce((n, r) => n + r.cost_usd, 0);
    view.append(el('span', { class: 'cost', text: `${tokens} tokens · ${money(cost)}` }));
  } catch {
    // usage is a nicety: the message stands without it
  }
}

async function refreshUsage() {
  if (!state.conversation) return;
  try {
    const u = await state.session.json(`/conversations/${state.conversation.id}/usage`);
    $('usage').textContent = `${u.total.input_tokens + u.total.output_tokens} tokens · ${money(u.total.cost_usd)}`;
  } catch {
    $('usage').textContent = '';
  }
}

// Keeps the newest message in view while the reader is at the bottom; one who scrolled up to read
// stays where they are (`force` when the reader acts: sends, opens a conversation).
function scrollDown(force = false) {
  const box = $('messages');
  if (force) state.following = true;
  if (state.following) box.scrollTop = box.scrollHeight;
}

// The phone layout's drawer (the sidebar): open or closed, focus moved into it and back.
function setDrawer(open) {
  document.body.classList.toggle('sidebar-open', open);
  $('toggle-sidebar').setAttribute('aria-expanded', String(open));
  if (open) $('new-chat').focus();
  else if (document.activeElement && $('sidebar').contains(document.activeElement)) $('toggle-sidebar').focus();
}

// Sends the composer's message; or, with `text` and `parent_id`, an edit (a new user message under
// the edited one's parent); or, with `regenerate`, a new answer to an answer's user message.
// `replacing` is the edited or regenerated message's view: it and what follows give way to the new
// branch, and the conversation is read again at the end (its "2 / 2").
async function send({ text: edited, parent_id, regenerate, replacing } = {}) {
  const input = $('composer-input');
  const branching = Boolean(replacing);
  const message = branching ? edited : input.value.trim();
  if ((!message && !regenerate) || state.streaming) return;
  if (state.uploading.length && !branching) {
    toast('Wait for the files to finish uploading');
    return;
  }
  const body = { stream: true };
  if (regenerate) body.regenerate = regenerate;
  else body.message = message;
  if (parent_id !== undefined) body.parent_id = parent_id;
  if (state.conversation) body.conversation_id = state.conversation.id;
  else {
    if ($('agent').value) body.agent_id = $('agent').value;
    if (state.project) body.project_id = state.project.id;
  }
  const model = $('model').value;
  if (model && (!state.conversation || state.conversation.model !== model)) body.model = model;
  if (state.pending.length && !branching) body.attachment_ids = state.pending.map((a) => a.id);

  if (!state.conversation) $('messages').replaceChildren();
  if (branching) {
    while (replacing.nextSibling) replacing.nextSibling.remove();
    replacing.remove();
  }
  const mine = regenerate ? null : messageView({ role: 'user', content: message, attachments: branching ? [] : state.pending });
  const answer = messageView({ role: 'assistant', content: '', model }, true);
  answer.classList.add('streaming');
  $('messages').append(...[mine, answer].filter(Boolean));
  if (!branching) {
    input.value = '';
    state.pending = [];
    showPending();
  }
  scrollDown(true);

  const controller = new AbortController();
  state.streaming = controller;
  $('send').hidden = true;
  $('stop').hidden = false;
  const progress = { messageId: null, conversationId: state.conversation?.id, seq: 0, text: '', changes: [], done: false };
  const onAnswer = answerEvents(answer, progress);
  let isNew = !state.conversation;
  try {
    const res = await state.session.request('/chat', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    if (!res.ok) {
      let problem = null;
      try {
        problem = await res.json();
      } catch {
        // not JSON
      }
      throw new ApiError(res.status, problem);
    }
    await readSse(res, (event) => {
      if (event.event === 'meta') {
        const { data } = event;
        if (mine) mine.dataset.id = data.user_message_id;
        if (isNew) state.conversation = { id: data.conversation_id };
        progress.conversationId = data.conversation_id;
        progress.messageId = data.assistant_message_id;
        remember(progress);
      } else onAnswer(event);
    });
    // The connection ended before the answer did (a proxy, a network change): pick it up.
    if (!progress.done && progress.messageId) await follow(progress, answer);
  } catch (error) {
    if (error.name === 'AbortError') {
      answer.querySelector('.meta').append(el('span', { class: 'status', text: 'stopped' }));
    } else if (!(error instanceof ApiError) && progress.messageId) {
      await follow(progress, answer);
    } else {
      answer.classList.add('failed');
      answer.querySelector('.body').textContent = describe(error);
      toast(describe(error));
    }
  } finally {
    answer.classList.remove('streaming');
    state.streaming = null;
    state.answerId = null;
    $('send').hidden = false;
    $('stop').hidden = true;
  }
  if (state.conversation && branching) {
    await openConversation(state.conversation.id);
  } else if (state.conversation) {
    if (isNew) {
      go(`c/${state.conversation.id}`);
      try {
        setConversation(await state.session.json(`/conversations/${state.conversation.id}`));
      } catch {
        // listed on the next reload
      }
      await reloadConversations();
    }
    await refreshUsage();
  }
}

// ----- streamed answers: resumed after a dropped connection or a reload -----

// This tab's answer in flight, so a reload picks it up (sessionStorage: this tab only).
const STREAMING_KEY = 'codechat.streaming';

function remember(progress) {
  state.answerId = progress.messageId;
  window.sessionStorage.setItem(STREAMING_KEY, JSON.stringify({
    conversation_id: progress.conversationId,
    message_id: progress.messageId,
    seq: progress.seq,
  }));
}

function forget() {
  window.sessionStorage.removeItem(STREAMING_KEY);
}

// The events of an answer's stream (a turn's, or a resumed one's) applied to its view.
function answerEvents(answer, progress) {
  return ({ event, data }) => {
    if (event === 'delta') {
      progress.text += data.text;
      if (data.seq) progress.seq = data.seq;
      if (progress.messageId) remember(progress);
      renderSoon(answer.querySelector('.body'), progress.text);
    } else if (event === 'file_changed') {
      progress.changes.push(data);
      answer.querySelector('.changes')?.remove();
      answer.append(changesView(progress.changes));
      if (state.project) showTree(state.project);
    } else if (event === 'done') {
      progress.done = true;
      forget();
      const m = data.assistant_message;
      const view = messageView(m);
      answer.replaceWith(view);
      if (data.usage) {
        const u = data.usage;
        view.querySelector('.meta').append(el('span', { class: 'cost', text: `${u.input_tokens + u.output_tokens} tokens · ${money(u.cost_usd)}` }));
      }
    } else if (event === 'error') {
      progress.done = true;
      forget();
      answer.classList.add('failed');
      answer.querySelector('.body').textContent = progress.text || (data.detail ?? 'The model failed.');
      toast(data.detail || 'The turn failed');
    }
  };
}

// Follows an answer from the delta last seen until it ends, reconnecting when the stream says so
// or the network drops (the answer goes on without us, on whichever instance runs it).
async function follow(progress, answer) {
  const onAnswer = answerEvents(answer, progress);
  // An answer's stream is in the store from its first chunk, half a second into it: until then a
  // resume finds nothing, and is tried again.
  let notYet = 0;
  for (let attempt = 0; attempt < 60 && !progress.done; attempt++) {
    try {
      const res = await state.session.request(`/messages/${progress.messageId}/stream?after=${progress.seq}`, {
        headers: { accept: 'text/event-stream' },
      });
      if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
      await readSse(res, onAnswer);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404 && notYet++ < 8) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        continue;
      }
      if (error instanceof ApiError) {
        forget();
        answer.classList.add('failed');
        toast(describe(error));
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

// After a reload: the answer this tab was receiving, picked up where the store has it.
async function resumeStreaming() {
  let pending = null;
  try {
    pending = JSON.parse(window.sessionStorage.getItem(STREAMING_KEY) || 'null');
  } catch {
    pending = null;
  }
  if (!pending || !pending.message_id || !pending.conversation_id) return;
  await openConversation(pending.conversation_id);
  const answer = messageView({ role: 'assistant', content: '', model: '' }, true);
  answer.classList.add('streaming');
  $('messages').append(answer);
  const progress = { messageId: pending.message_id, conversationId: pending.conversation_id, seq: 0, text: '', changes: [], done: false };
  state.streaming = new AbortController();
  state.answerId = pending.message_id;
  $('send').hidden = true;
  $('stop').hidden = false;
  try {
    await follow(progress, answer);
  } finally {
    state.streaming = null;
    state.answerId = null;
    $('send').hidden = false;
    $('stop').hidden = true;
    forget();
  }
  await openConversation(pending.conversation_id);
}

// Stop: the turn ends its answer where it is (it runs on its own, so closing the stream would not
// stop it); before the answer has an id, the request is cancelled.
async function stop() {
  if (!state.streaming) return;
  if (!state.answerId) {
    state.streaming.abort?.();
    return;
  }
  // Until its first chunk is stored (half a second into the answer) the stream is not found yet.
  for (let attempt = 0; attempt < 4; attempt++) {
    try {
      const res = await state.session.request(`/messages/${state.answerId}/stop`, { method: 'POST' });
      if (res.status !== 404) return;
    } catch (error) {
      toast(describe(error));
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 600));
  }
}

// ----- projects: list, upload a zip, tree, open a file -----

async function loadProjects() {
  try {
    const page = await state.session.json('/projects?limit=100');
    state.projects = page.items;
    $('projects').replaceChildren(
      ...page.items.map((p) =>
        el('li', {}, el('button', { class: 'conversation-open', 'aria-label': `Open project ${p.name}`, text: p.name, onclick: () => openProject(p) })),
      ),
    );
  } catch (error) {
    toast(describe(error));
  }
}

// Shows a project's pane (its files); `chat` starts a new chat on it, else the pane goes beside the
// conversation on screen (a project conversation reopens its project).
async function showProject(p, { chat = true, history = 'push' } = {}) {
  state.project = p;
  state.openFile = null;
  $('project-pane').hidden = false;
  $('project-name').textContent = p.name;
  $('file-name').hidden = true;
  $('file-code').textContent = '';
  await showTree(p);
  if (chat) newConversation({ history });
}

const openProject = (p, options = {}) => showProject(p, options);

// Rename, delete and download the open project, from its pane.
async function renameProject() {
  const p = state.project;
  if (!p) return;
  const name = await ask({ title: 'Rename the project', label: 'Name', value: p.name, confirm: 'Rename' });
  if (!name) return;
  try {
    const updated = await state.session.json(`/projects/${p.id}`, { method: 'PATCH', body: { name } });
    state.project = { ...p, ...updated };
    $('project-name').textContent = state.project.name;
    await loadProjects();
  } catch (error) {
    toast(describe(error));
  }
}

async function deleteProject() {
  const p = state.project;
  if (!p) return;
  const sure = await ask({ title: 'Delete the project?', message: `“${p.name}” and its files will be deleted. Its conversations stay. This cannot be undone.`, confirm: 'Delete', danger: true });
  if (!sure) return;
  try {
    await state.session.request(`/projects/${p.id}`, { method: 'DELETE' });
    state.project = null;
    $('project-pane').hidden = true;
    await loadProjects();
    newConversation();
  } catch (error) {
    toast(describe(error));
  }
}

async function downloadProject() {
  const p = state.project;
  if (!p) return;
  try {
    const res = await state.session.request(`/projects/${p.id}/archive`);
    if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
    const type = res.headers.get('content-type') || '';
    // A large archive is answered as a link to it (see the API); a small one as the zip itself.
    const blob = type.includes('json') ? null : await res.blob();
    const href = blob ? URL.createObjectURL(blob) : (await res.json()).url;
    const a = el('a', { href, download: `${p.name}.zip` });
    document.body.append(a);
    a.click();
    a.remove();
    if (blob) setTimeout(() => URL.revokeObjectURL(href), 10000);
  } catch (error) {
    toast(describe(error));
  }
}

// Shows what an address names: on start-up (the address is kept as it is), and on back/forward.
async function showPlace(history) {
  const where = place(window.location);
  if (where.kind === 'conversation') {
    await openConversation(where.id, { history });
  } else if (where.kind === 'project') {
    try {
      await openProject(await state.session.json(`/projects/${where.id}`), { history });
    } catch (error) {
      toast(describe(error));
      newConversation({ history: 'replace' });
    }
  } else {
    state.project = null;
    $('project-pane').hidden = true;
    newConversation({ history });
  }
}

async function showTree(p) {
  try {
    const tree = await state.session.json(`/projects/${p.id}/tree`);
    const node = (n) => {
      if (n.kind === 'dir') {
        return el('li', { class: 'dir' }, el('span', { text: `${n.name}/` }), el('ul', {}, ...(n.children || []).map(node)));
      }
      return el('li', {}, el('button', {
        class: 'file',
        'aria-label': `Open file ${n.path}`,
        'aria-current': state.openFile === n.path ? 'true' : false,
        dataset: { path: n.path },
        text: n.name,
        onclick: () => openFile(p, n.path),
      }));
    };
    const roots = Array.isArray(tree) ? tree : tree.children || [tree];
    $('tree').replaceChildren(...roots.map(node));
  } catch (error) {
    toast(describe(error));
  }
}

async function openFile(p, path) {
  try {
    const res = await state.session.request(`/projects/${p.id}/files/${path.split('/').map(encodeURIComponent).join('/')}`);
    if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
    const type = res.headers.get('content-type') || '';
    const text = type.includes('json') && !path.endsWith('.json') ? (await res.json()).content ?? '' : await res.text();
    state.openFile = path;
    $('file-name').textContent = path;
    $('file-name').hidden = false;
    const code = $('file-code');
    const lang = path.includes('.') ? path.split('.').pop().toLowerCase() : '';
    const tokens = lang ? highlight(text, lang) : null;
    code.className = lang ? `language-${lang}` : '';
    code.replaceChildren();
    if (tokens) renderTokens(code, tokens);
    else code.textContent = text;
    $('file-view').setAttribute('aria-label', `Contents of ${path}`);
    for (const b of $('tree').querySelectorAll('.file')) b.setAttribute('aria-current', String(b.dataset.path === path));
  } catch (error) {
    toast(describe(error));
  }
}

async function uploadProject(file) {
  const form = new FormData();
  form.append('file', file, file.name);
  try {
    const res = await state.session.request('/projects/upload', { method: 'POST', body: form });
    const data = await res.json();
    if (!res.ok) throw new ApiError(res.status, data);
    await loadProjects();
    await openProject(data.project || data);
  } catch (error) {
    toast(`${file.name}: ${describe(error)}`);
  }
}

// ----- share links -----

async function openShareDialog() {
  if (!state.conversation) return;
  $('share-dialog').showModal();
  await listShares();
}

async function listShares() {
  try {
    const page = await state.session.json(`/conversations/${state.conversation.id}/shares`);
    $('share-list').replaceChildren(...page.items.map(shareItem));
    $('share-empty').hidden = page.items.length > 0;
  } catch (error) {
    toast(describe(error));
  }
}

function shareItem(s) {
  const link = el('input', { type: 'text', readonly: true, value: s.url, 'aria-label': `Link shared ${s.created_at}` });
  return el('li', {}, link,
    el('button', {
      type: 'button',
      text: 'Copy link',
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(s.url);
        } catch {
          link.select();
          document.execCommand('copy');
        }
        toast('Link copied');
      },
    }),
    el('button', {
      type: 'button',
      text: 'Revoke',
      'aria-label': `Revoke the link shared ${s.created_at}`,
      onclick: async () => {
        try {
          await state.session.request(`/shares/${s.id}`, { method: 'DELETE' });
          await listShares();
        } catch (error) {
          toast(describe(error));
        }
      },
    }));
}

async function createShare() {
  try {
    await state.session.json(`/conversations/${state.conversation.id}/shares`, { method: 'POST', body: {} });
    await listShares();
  } catch (error) {
    toast(describe(error));
  }
}

// A share link's page (`/s/{token}`): the snapshot, read-only, signed in or not. "Continue" copies
// it into the reader's own conversations (after signing in, when needed).
const sharedToken = window.location.pathname.match(/\/s\/([A-Za-z0-9_-]{43})\/?$/)?.[1];

async function showShared(token) {
  $('auth').hidden = true;
  $('app').hidden = true;
  $('shared').hidden = false;
  try {
    const res = await fetch(`${apiBase}/shared/${token}`);
    if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
    const shared = await res.json();
    $('shared-title').textContent = shared.title;
    document.title = `${shared.title} · CodeChat`;
    $('shared-meta').textContent = `Shared ${new Date(shared.shared_at).toLocaleString()} · ${shared.messages.length} messages · read-only`;
    $('shared-messages').replaceChildren(...shared.messages.map((m) => messageView(m, false, 'User')));
  } catch (error) {
    $('shared-title').textContent = error instanceof ApiError && error.status === 404 ? 'This link was revoked, or never existed' : 'The shared conversation could not be read';
    $('shared-meta').textContent = error instanceof ApiError && error.status === 404 ? '' : describe(error);
    $('shared-fork').hidden = true;
  }
  $('shared-fork').addEventListener('click', () => {
    window.sessionStorage.setItem('codechat.fork', token);
    window.location.href = appRoot.href;
  });
}

// Back on the app after a share link's "Continue": the copy is made and opened.
async function resumeFromSharedPage() {
  const token = window.sessionStorage.getItem('codechat.fork');
  if (!token) return;
  window.sessionStorage.removeItem('codechat.fork');
  try {
    const copy = await state.session.json(`/shared/${token}/fork`, { method: 'POST', body: {} });
    await reloadConversations();
    await openConversation(copy.id);
  } catch (error) {
    toast(describe(error));
  }
}

// ----- search over history -----

async function searchHistory(q) {
  const searching = q.length > 0;
  $('history').hidden = !searching;
  $('conversation-nav').hidden = searching;
  if (!searching) return;
  try {
    const page = await state.session.json(`/search/messages?${new URLSearchParams({ q, limit: '30' })}`);
    if ($('history-search').value.trim() !== q) return; // a newer search is under way
    $('history-results').replaceChildren(...page.items.map((h) =>
      el('li', {}, el('button', {
        class: 'hit',
        'aria-label': `Open the ${h.role} message in ${h.conversation_title}`,
        onclick: () => openConversation(h.conversation_id),
      }, el('span', { text: h.conversation_title }), el('small', { text: h.snippet }))),
    ));
    $('history-empty').hidden = page.items.length > 0;
  } catch (error) {
    if (error instanceof ApiError && error.status === 422) {
      $('history-results').replaceChildren();
      $('history-empty').hidden = false;
    } else toast(describe(error));
  }
}

// ----- wiring -----

function setup() {
  setupAuth();
  $('new-chat').addEventListener('click', () => {
    state.project = null;
    $('project-pane').hidden = true;
    newConversation();
  });
  let historyTimer;
  $('history-search').addEventListener('input', () => {
    clearTimeout(historyTimer);
    historyTimer = setTimeout(() => searchHistory($('history-search').value.trim()), 250);
  });
  $('share').addEventListener('click', openShareDialog);
  $('share-create').addEventListener('click', createShare);
  let searchTimer;
  $('search').addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      state.query = $('search').value.trim();
      reloadConversations();
    }, 250);
  });
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadPage();
  }).observe($('conversations-end'));
  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    send();
  });
  $('composer-input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  $('stop').addEventListener('click', stop);
  $('attach').addEventListener('click', () => $('file-input').click());
  $('file-input').addEventListener('change', (e) => {
    upload([...e.target.files]);
    e.target.value = '';
  });
  const drop = $('chat');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('dropping');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('dropping'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('dropping');
    if (e.dataTransfer?.files?.length) upload([...e.dataTransfer.files]);
  });
  $('upload-project').addEventListener('click', () => $('zip-input').click());
  $('zip-input').addEventListener('change', (e) => {
    if (e.target.files[0]) uploadProject(e.target.files[0]);
    e.target.value = '';
  });
  $('rename-project').addEventListener('click', renameProject);
  $('delete-project').addEventListener('click', deleteProject);
  $('download-project').addEventListener('click', downloadProject);
  $('on-project').addEventListener('click', () => {
    if (state.project) $('project-pane').hidden = false;
  });
  $('close-project').addEventListener('click', () => {
    state.project = null;
    $('project-pane').hidden = true;
    newConversation();
  });
  $('sign-out').addEventListener('click', () => state.session.signOut());
  window.addEventListener('popstate', () => {
    if (state.session.signedIn && !state.streaming) showPlace('none');
  });
  setupTools({
    session: state.session,
    el,
    toast,
    describe,
    models: () => state.models,
    onAgentsChanged: (agents) => {
      const chosen = $('agent').value;
      state.agents = agents.filter((a) => a.status === 'active');
      fillAgents();
      if (state.agents.some((a) => a.id === chosen)) $('agent').value = chosen;
    },
  });
  $('toggle-sidebar').addEventListener('click', () => setDrawer(!document.body.classList.contains('sidebar-open')));
  $('close-sidebar').addEventListener('click', () => setDrawer(false));
  $('scrim').addEventListener('click', () => setDrawer(false));
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && document.body.classList.contains('sidebar-open')) setDrawer(false);
  });
  // Choosing anything in the drawer (a conversation, a project, New chat) closes it.
  $('sidebar').addEventListener('click', (e) => {
    if (e.target.closest('.conversation-open, #new-chat, .hit')) setDrawer(false);
  });
  $('messages').addEventListener('scroll', () => {
    const box = $('messages');
    state.following = box.scrollHeight - box.scrollTop - box.clientHeight < 48;
  });

  if (sharedToken) showShared(sharedToken);
  else {
    // An older build kept the refresh token in this tab's storage: no longer read, so removed.
    window.sessionStorage.removeItem('codechat.refresh');
    state.session.resume().then((signedIn) => (signedIn ? start() : showAuth()));
  }
}

setup();
