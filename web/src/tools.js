// Agents and their tools: the user's MCP tool servers (add, list their tools, delete) and an agent
// editor whose tool picker offers the built-in tools and every server's tools. Header values go to
// the API once and are never shown again (the API answers only their names).

// The built-in tools an agent may name, with what each does.
export const BUILT_IN_TOOLS = [
  ['list_files', 'List the project files'],
  ['read_file', 'Read a project file'],
  ['write_file', 'Write a project file'],
  ['delete_file', 'Delete a project file'],
  ['search_files', 'Search the project files'],
  ['search_knowledge', 'Search your knowledge'],
  ['search_history', 'Search your past messages'],
];

// `Name: value` lines into a headers object; blank lines are skipped. Throws on a line without a
// name and a colon.
export function parseHeaders(text) {
  const headers = {};
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (!line) continue;
    const colon = line.indexOf(':');
    if (colon < 1) throw new Error(`Header line ${i + 1} needs "Name: value"`);
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return headers;
}

// The picker's entries: the built-in tools, then per server "all of its tools" and each listed tool.
export function toolChoices(servers, toolsByServer) {
  const choices = BUILT_IN_TOOLS.map(([value, label]) => ({ value, label, group: 'Built-in' }));
  for (const s of servers) {
    const group = `Tool server ${s.name}`;
    choices.push({ value: `mcp:${s.name}`, label: `All tools of ${s.name}`, group });
    for (const t of toolsByServer[s.name] || []) {
      choices.push({ value: `mcp:${s.name}/${t.name}`, label: t.description ? `${t.name}: ${t.description}` : t.name, group });
    }
  }
  return choices;
}

export function setupTools({ session, el, toast, describe, models, onAgentsChanged }) {
  const $ = (id) => document.getElementById(id);
  const view = { servers: [], tools: {}, failures: {}, agents: [], editing: null };

  async function open() {
    $('tools-dialog').showModal();
    $('agent-model').replaceChildren(...models().filter((m) => m.available)
      .map((m) => el('option', { value: m.id, text: m.display_name })));
    await Promise.all([loadServers(), loadAgents()]);
  }

  async function loadServers() {
    try {
      view.servers = (await session.json('/mcp-servers')).items;
    } catch (error) {
      toast(describe(error));
      return;
    }
    renderServers();
    renderPicker();
    // Each server's tools, as they arrive; a server that fails says why in its row.
    await Promise.all(view.servers.map(async (s) => {
      try {
        view.tools[s.name] = (await session.json(`/mcp-servers/${s.id}/tools`)).tools;
        delete view.failures[s.name];
      } catch (error) {
        view.failures[s.name] = describe(error);
      }
      renderServers();
      renderPicker();
    }));
  }

  function renderServers() {
    $('servers-empty').hidden = view.servers.length > 0;
    $('server-list').replaceChildren(...view.servers.map((s) => {
      const tools = view.tools[s.name];
      const state = view.failures[s.name]
        ? el('span', { class: 'error', text: `Unreachable: ${view.failures[s.name]}` })
        : el('span', { class: 'hint', text: tools ? `${tools.length} tools: ${tools.map((t) => t.name).join(', ')}` : 'Listing tools…' });
      const headers = s.header_names.length ? ` · headers: ${s.header_names.join(', ')}` : '';
      return el('li', { class: 'server' },
        el('div', {}, el('strong', { text: s.name }), el('span', { class: 'hint', text: ` ${s.url}${headers}` }), el('br'), state),
        el('button', {
          type: 'button', text: 'Delete', 'aria-label': `Delete the tool server ${s.name}`,
          onclick: async () => {
            try {
              await session.request(`/mcp-servers/${s.id}`, { method: 'DELETE' });
              delete view.tools[s.name];
              await loadServers();
            } catch (error) {
              toast(describe(error));
            }
          },
        }));
    }));
  }

  async function addServer() {
    $('server-error').textContent = '';
    try {
      const body = { name: $('server-name').value.trim(), url: $('server-url').value.trim(), headers: parseHeaders($('server-headers').value) };
      await session.json('/mcp-servers', { method: 'POST', body });
      $('server-name').value = '';
      $('server-url').value = '';
      $('server-headers').value = '';
      await loadServers();
    } catch (error) {
      $('server-error').textContent = describe(error);
    }
  }

  function renderPicker(selected = checkedTools()) {
    const groups = new Map();
    for (const c of toolChoices(view.servers, view.tools)) {
      if (!groups.has(c.group)) groups.set(c.group, []);
      groups.get(c.group).push(c);
    }
    $('agent-tools-list').replaceChildren(...[...groups].map(([group, choices]) =>
      el('div', { class: 'tool-group', role: 'group', 'aria-label': group }, el('span', { class: 'hint', text: group }),
        ...choices.map((c) => el('label', { class: 'check' },
          el('input', { type: 'checkbox', value: c.value, checked: selected.includes(c.value) }), ` ${c.label}`)))));
  }

  function checkedTools() {
    return [...document.querySelectorAll('#agent-tools-list input:checked')].map((i) => i.value);
  }

  async function loadAgents() {
    try {
      view.agents = (await session.json('/agents?limit=100')).items;
    } catch (error) {
      toast(describe(error));
      return;
    }
    $('agent-list').replaceChildren(...view.agents.map((a) => el('li', {},
      el('span', { text: `${a.name} · ${a.model}${a.tools.length ? ` · ${a.tools.join(', ')}` : ''}` }),
      el('button', { type: 'button', text: 'Edit', 'aria-label': `Edit the agent ${a.name}`, onclick: () => edit(a) }),
      el('button', {
        type: 'button', text: 'Delete', 'aria-label': `Delete the agent ${a.name}`,
        onclick: async () => {
          try {
            await session.request(`/agents/${a.id}`, { method: 'DELETE' });
            await agentsChanged();
          } catch (error) {
            toast(describe(error));
          }
        },
      }))));
    $('agents-empty').hidden = view.agents.length > 0;
  }

  function edit(agent) {
    view.editing = agent;
    $('agent-form-title').textContent = agent ? `Edit ${agent.name}` : 'New agent';
    $('agent-name').value = agent?.name || '';
    $('agent-prompt').value = agent?.system_prompt || '';
    if (agent) $('agent-model').value = agent.model;
    $('agent-save').textContent = agent ? 'Save agent' : 'Create agent';
    $('agent-cancel').hidden = !agent;
    $('agent-error').textContent = '';
    renderPicker(agent ? agent.tools : []);
  }

  async function saveAgent() {
    $('agent-error').textContent = '';
    const body = {
      name: $('agent-name').value.trim(),
      system_prompt: $('agent-prompt').value,
      model: $('agent-model').value,
      tools: checkedTools(),
    };
    try {
      if (view.editing) await session.json(`/agents/${view.editing.id}`, { method: 'PATCH', body });
      else await session.json('/agents', { method: 'POST', body });
      edit(null);
      await agentsChanged();
    } catch (error) {
      $('agent-error').textContent = describe(error);
    }
  }

  async function agentsChanged() {
    await loadAgents();
    onAgentsChanged(view.agents);
  }

  $('open-tools').addEventListener('click', open);
  $('server-add').addEventListener('click', addServer);
  $('agent-save').addEventListener('click', saveAgent);
  $('agent-cancel').addEventListener('click', () => edit(null));
}
