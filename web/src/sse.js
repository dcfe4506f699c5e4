// Server-Sent Events over fetch: an incremental parser for the `text/event-stream` body of
// POST /api/v1/chat (EventSource cannot POST or send headers). Pure: no DOM, unit-tested.

/**
 * @param {(event: {event: string, data: any}) => void} onEvent called per complete event; `data`
 *   is parsed JSON when it parses, else the raw text
 */
export function createSseParser(onEvent) {
  let buffer = '';
  const flush = (block) => {
    let event = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue; // comments are keep-alives
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length === 0) return;
    const text = data.join('\n');
    let parsed = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: hand over the text
    }
    onEvent({ event, data: parsed });
  };
  return {
    /** Feeds a decoded chunk; complete events are delivered at once. */
    push(chunk) {
      buffer += chunk.replace(/\r\n?/g, '\n');
      let end;
      while ((end = buffer.indexOf('\n\n')) !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        flush(block);
      }
    },
    /** The stream ended: a last event without its blank line still counts. */
    end() {
      if (buffer.trim() !== '') flush(buffer);
      buffer = '';
    },
  };
}

/**
 * Reads a fetch Response's SSE body to its end (or until `signal` aborts), calling `onEvent`.
 * @param {Response} response
 * @param {(event: {event: string, data: any}) => void} onEvent
 */
export async function readSse(response, onEvent) {
  const parser = createSseParser(onEvent);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parser.push(decoder.decode(value, { stream: true }));
  }
  parser.push(decoder.decode());
  parser.end();
}
