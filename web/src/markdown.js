// A small, safe Markdown renderer for model answers. Parsing produces plain data (blocks and
// inline runs); rendering builds DOM nodes with createElement and textContent only, so no HTML
// from the model ever reaches the page (no innerHTML anywhere). Links keep http(s) and mailto
// URLs only. Pure parsing, unit-tested without a DOM.

const SAFE_URL = /^(https?:|mailto:)/i;

/** @returns {Array<object>} blocks: code, heading, list, quote, paragraph */
export function parse(source) {
  const lines = String(source).replace(/\r\n?/g, '\n').split('\n');
  const blocks = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(/^\s*(```|~~~)\s*([\w+-]*)\s*$/);
    if (fence) {
      const body = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i++; // the closing fence (or the end)
      blocks.push({ type: 'code', lang: fence[2] || '', text: body.join('\n') });
      continue;
    }
    const heading = line.match(/^(#{1,6})\s+(.*)$/);
    if (heading) {
      blocks.push({ type: 'heading', level: heading[1].length, inline: inline(heading[2]) });
      i++;
      continue;
    }
    if (/^\s*([-*+]|\d+[.)])\s+/.test(line)) {
      const ordered = /^\s*\d/.test(line);
      const items = [];
      const sameKind = (l) => (ordered ? /^\s*\d+[.)]\s+/ : /^\s*[-*+]\s+/).test(l);
      while (i < lines.length && sameKind(lines[i])) {
        items.push(inline(lines[i].replace(/^\s*([-*+]|\d+[.)])\s+/, '')));
        i++;
      }
      blocks.push({ type: 'list', ordered, items });
      continue;
    }
    if (/^>\s?/.test(line)) {
      const body = [];
      while (i < lines.length && /^>\s?/.test(lines[i])) body.push(lines[i++].replace(/^>\s?/, ''));
      blocks.push({ type: 'quote', inline: inline(body.join(' ')) });
      continue;
    }
    if (line.trim() === '') {
      i++;
      continue;
    }
    const para = [];
    while (i < lines.length && lines[i].trim() !== '' && !/^(\s*```|~~~|#{1,6}\s|>\s?|\s*([-*+]|\d+[.)])\s+)/.test(lines[i])) {
      para.push(lines[i++]);
    }
    if (para.length === 0) para.push(lines[i++]);
    blocks.push({ type: 'paragraph', inline: inline(para.join('\n')) });
  }
  return blocks;
}

/** Inline runs: text, code, strong, em, link (safe URLs only), br. */
export function inline(text) {
  const out = [];
  const pattern = /(`+)([\s\S]*?)\1|\*\*([^*]+)\*\*|__([^_]+)__|\*([^*\s][^*]*)\*|\[([^\]]+)\]\(([^)\s]+)\)|\n/g;
  let last = 0;
  let m;
  while ((m = pattern.exec(text)) !== null) {
    if (m.index > last) out.push({ type: 'text', text: text.slice(last, m.index) });
    if (m[1]) out.push({ type: 'code', text: m[2] });
    else if (m[3] || m[4]) out.push({ type: 'strong', text: m[3] || m[4] });
    else if (m[5]) out.push({ type: 'em', text: m[5] });
    else if (m[6]) {
      if (SAFE_URL.test(m[7])) out.push({ type: 'link', text: m[6], href: m[7] });
      else out.push({ type: 'text', text: m[6] });
    } else out.push({ type: 'br' });
    last = pattern.lastIndex;
  }
  if (last < text.length) out.push({ type: 'text', text: text.slice(last) });
  return out;
}

/** Renders Markdown into `parent` (a DOM element), replacing what it held. */
export function render(source, parent) {
  const doc = parent.ownerDocument;
  const el = (tag, text) => {
    const node = doc.createElement(tag);
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const runs = (target, items) => {
    for (const r of items) {
      if (r.type === 'text') target.append(doc.createTextNode(r.text));
      else if (r.type === 'br') target.append(el('br'));
      else if (r.type === 'link') {
        const a = el('a', r.text);
        a.href = r.href;
        a.rel = 'noopener noreferrer nofollow';
        a.target = '_blank';
        target.append(a);
      } else target.append(el(r.type, r.text));
    }
    return target;
  };
  parent.replaceChildren();
  for (const b of parse(source)) {
    if (b.type === 'code') {
      const pre = el('pre');
      const code = el('code', b.text);
      if (b.lang) code.dataset.lang = b.lang;
      pre.append(code);
      parent.append(pre);
    } else if (b.type === 'heading') parent.append(runs(el(`h${Math.min(b.level + 2, 6)}`), b.inline));
    else if (b.type === 'list') {
      const list = el(b.ordered ? 'ol' : 'ul');
      for (const item of b.items) list.append(runs(el('li'), item));
      parent.append(list);
    } else if (b.type === 'quote') parent.append(runs(el('blockquote'), b.inline));
    else parent.append(runs(el('p'), b.inline));
  }
}
