// Branches of a conversation, as the API answers them: every message has `parent_id` (null for a
// root) and the messages of the active path carry `sibling_ids` (oldest first, itself included).

// The message a switch to `id` should show as the active leaf: `id`, then its newest child, that
// child's newest child, and so on, so switching to a branch shows all of it. `messages` is the
// whole tree (`?all=true`), oldest first.
export function latestLeaf(messages, id) {
  const newestChild = new Map();
  for (const m of messages) newestChild.set(m.parent_id ?? null, m.id);
  let leaf = id;
  const seen = new Set();
  while (newestChild.has(leaf) && !seen.has(leaf)) {
    seen.add(leaf);
    leaf = newestChild.get(leaf);
  }
  return leaf;
}

// "2 / 3" for a message with siblings, and the sibling `step` places away (null past either end).
export function position(message) {
  const ids = message.sibling_ids || [];
  return { index: ids.indexOf(message.id) + 1, count: ids.length };
}

export function sibling(message, step) {
  const ids = message.sibling_ids || [];
  const at = ids.indexOf(message.id) + step;
  return at >= 0 && at < ids.length ? ids[at] : null;
}
