// Model answers as Markdown, safely. The parsing is marked's lexer (vendored, web/vendor/marked:
// GitHub-flavoured Markdown: tables, task lists, fenced code...), code is coloured with Prism's
// tokenizer (web/vendor/prism); both only produce data (tokens), and this module builds the DOM
// from it with createElement and textContent: no HTML from the model ever reaches the page as
// markup (raw HTML in an answer shows as text, no innerHTML anywhere), links keep http(s) and
// mailto URLs only, and images become links (no request leaves for a model-chosen address).
// Pure with respect to its inputs: the lexer and the highlighter are passed in, so the unit tests
// run it in node without a browser.

const SAFE_URL = /^(https?:|mailto:)/i;

export function safeUrl(href) {
  return typeof href === 'string' && SAFE_URL.test(href.trim()) ? href.trim() : null;
}

/** The tokens of `source` (marked's block tokens, GFM). */
export function tokens(source, lex) {
  return lex(String(source ?? ''), { gfm: true, breaks: false });
}

/**
 * Renders Markdown into `parent`, replacing what it held.
 * `options.lex`: marked's lexer; `options.highlight(code, lang)`: Prism-style tokens or null;
 * `options.copy(text)`: what a code block's Copy button does.
 */
export function render(source, parent, { lex, highlight = () => null, copy = () => {} }) {
  const doc = parent.ownerDocument;
  const el = (tag, text) => {
    const node = doc.createElement(tag);
    if (text !== undefined) node.textContent = text;
    return node;
  };

  const inline = (target, items = []) => {
    for (const t of items) {
      switch (t.type) {
        case 'strong':
        case 'em':
        case 'del':
          target.append(inline(el(t.type === 'del' ? 's' : t.type), t.tokens));
          break;
        case 'codespan':
          target.append(el('code', t.text));
          break;
        case 'br':
          target.append(el('br'));
          break;
        case 'link': {
          const href = safeUrl(t.href);
          if (!href) {
            inline(target, t.tokens);
            break;
          }
          const a = inline(el('a'), t.tokens);
          a.href = href;
          a.rel = 'noopener noreferrer nofollow';
          a.target = '_blank';
          target.append(a);
          break;
        }
        case 'image': {
          const href = safeUrl(t.href);
          const label = `image: ${t.text || t.href}`;
          if (!href) {
            target.append(doc.createTextNode(`[${label}]`));
            break;
          }
          const a = el('a', `[${label}]`);
          a.href = href;
          a.rel = 'noopener noreferrer nofollow';
          a.target = '_blank';
          target.append(a);
          break;
        }
        case 'text':
          if (t.tokens && t.tokens.length) inline(target, t.tokens);
          else target.append(doc.createTextNode(t.text));
          break;
        case 'checkbox': {
          const box = el('input');
          box.type = 'checkbox';
          box.checked = Boolean(t.checked);
          box.disabled = true;
          target.append(box, doc.createTextNode(' '));
          break;
        }
        default:
          // html, escape and anything newer: its text, as text.
          target.append(doc.createTextNode(t.text ?? t.raw ?? ''));
      }
    }
    return target;
  };

  const code = (t) => {
    const lang = (t.lang || '').trim().split(/\s+/)[0].toLowerCase();
    const block = el('div');
    block.className = 'code-block';
    const head = el('div');
    head.className = 'code-head';
    head.append(el('span', lang || 'text'));
    const button = el('button', 'Copy');
    button.type = 'button';
    button.className = 'copy';
    button.setAttribute('aria-label', `Copy the ${lang || 'text'} code`);
    button.addEventListener('click', () => copy(t.text, button));
    head.append(button);
    const pre = el('pre');
    const codeEl = el('code');
    if (lang) codeEl.className = `language-${lang}`;
    const highlighted = lang ? highlight(t.text, lang) : null;
    if (highlighted) renderTokens(codeEl, highlighted);
    else codeEl.textContent = t.text;
    pre.append(codeEl);
    block.append(head, pre);
    return block;
  };

  const blocks = (target, items = []) => {
    for (const t of items) {
      switch (t.type) {
        case 'space':
        case 'def':
          break;
        case 'code':
          target.append(code(t));
          break;
        case 'heading':
          target.append(inline(el(`h${Math.min(t.depth + 2, 6)}`), t.tokens));
          break;
        case 'paragraph':
          target.append(inline(el('p'), t.tokens));
          break;
        case 'text':
          // A tight list item's text.
          target.append(inline(el('span'), t.tokens || [{ type: 'text', text: t.text }]));
          break;
        case 'blockquote':
          target.append(blocks(el('blockquote'), t.tokens));
          break;
        case 'hr':
          target.append(el('hr'));
          break;
        case 'list': {
          const list = el(t.ordered ? 'ol' : 'ul');
          if (t.ordered && t.start !== '' && t.start !== 1) list.start = Number(t.start);
          for (const item of t.items) {
            const li = el('li');
            blocks(li, item.tokens);
            list.append(li);
          }
          target.append(list);
          break;
        }
        case 'table': {
          const wrap = el('div');
          wrap.className = 'table-wrap';
          const table = el('table');
          const cell = (tag, c, align) => {
            const node = inline(el(tag), c.tokens);
            if (align) node.style.textAlign = align;
            return node;
          };
          const headRow = el('tr');
          t.header.forEach((c, i) => headRow.append(cell('th', c, t.align[i])));
          const thead = el('thead');
          thead.append(headRow);
          const tbody = el('tbody');
          for (const row of t.rows) {
            const tr = el('tr');
            row.forEach((c, i) => tr.append(cell('td', c, t.align[i])));
            tbody.append(tr);
          }
          table.append(thead, tbody);
          wrap.append(table);
          target.append(wrap);
          break;
        }
        case 'checkbox':
          inline(target, [t]);
          break;
        default: {
          // html blocks and anything newer: their text, as text.
          const p = el('p', t.text ?? t.raw ?? '');
          p.className = 'raw';
          target.append(p);
        }
      }
    }
    return target;
  };

  parent.replaceChildren();
  blocks(parent, tokens(source, lex));
  return parent;
}

/** Appends Prism-style tokens (strings, or `{type, alias, content}`) as spans of class `token`. */
export function renderTokens(target, stream) {
  const doc = target.ownerDocument;
  for (const t of stream) {
    if (typeof t === 'string') {
      target.append(doc.createTextNode(t));
      continue;
    }
    const span = doc.createElement('span');
    const aliases = Array.isArray(t.alias) ? t.alias : t.alias ? [t.alias] : [];
    span.className = ['token', t.type, ...aliases].join(' ');
    renderTokens(span, Array.isArray(t.content) ? t.content : [t.content]);
    target.append(span);
  }
}

/** Prism's tokens for `code` in `lang` (null when Prism or the language is not loaded). */
export function prismHighlighter(prism) {
  const aliases = { js: 'javascript', ts: 'typescript', sh: 'bash', shell: 'bash', zsh: 'bash', py: 'python', rs: 'rust', yml: 'yaml', 'c++': 'cpp', golang: 'go', html: 'markup', xml: 'markup', svg: 'markup' };
  return (code, lang) => {
    const grammar = prism?.languages?.[aliases[lang] || lang];
    return grammar ? prism.tokenize(code, grammar) : null;
  };
}

/** A message's text for a title or a list: Markdown marks left out, one line. */
export function plainText(source) {
  return String(source ?? '')
    .replace(/```[\s\S]*?(```|$)/g, ' ')
    .replace(/`([^`]*)`/g, '$1')
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/^\s{0,3}(#{1,6}|>|[-*+]|\d+[.)])\s+/gm, '')
    .replace(/(\*\*|__|\*|_|~~)(\S(?:[\s\S]*?\S)?)\1/g, '$2')
    .replace(/\s+/g, ' ')
    .trim();
}
