// Attachments in the web client: uploads (inline with progress; past 4 MiB by presigned URL),
// the files waiting to be sent, and a message's attachments as chips (images as thumbnails) that
// open the file. `createUploads` takes what it uses of the app.

import { ApiError } from './session.js';

/** A size as people read it. */
export const bytes = (n) => (n >= 1048576 ? `${(n / 1048576).toFixed(1)} MB` : n >= 1024 ? `${Math.round(n / 1024)} KB` : `${n} B`);

/**
 * @param {{state: object, apiBase: string, $: (id: string) => HTMLElement, el: Function,
 *   toast: (m: string) => void, describe: (e: unknown) => string}} app
 */
export function createUploads({ state, apiBase, $, el, toast, describe }) {

  // Sends `body` with XHR, reporting the upload's progress (fetch cannot): answers the status and
  // the parsed answer.
  function sendWithProgress(method, url, headers, body, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, url);
      for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) onProgress(e.loaded / e.total);
      };
      xhr.onload = () => {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch {
          body = { detail: xhr.responseText };
        }
        resolve({ status: xhr.status, body });
      };
      xhr.onerror = () => reject(new Error('the upload failed (network)'));
      xhr.send(body);
    });
  }

  // POSTs a form to the API with the access token and progress; a 401 refreshes once and sends again.
  async function postWithProgress(path, form, onProgress) {
    const once = () => sendWithProgress('POST', `${apiBase}${path}`, { authorization: `Bearer ${state.session.access}` }, form, onProgress);
    if (!state.session.access) await state.session.refresh();
    let res = await once();
    if (res.status === 401 && (await state.session.refresh())) res = await once();
    if (res.status >= 400) throw new ApiError(res.status, res.body);
    return res.body;
  }

  // A file past the inline limit goes by presigned URL: the upload is started, the bytes PUT where
  // it says (the bucket, deployed; the API itself, locally) with its headers, then completed.
  const INLINE_UPLOAD_BYTES = 4 * 1024 * 1024;
  async function uploadLarge(file, onProgress) {
    const content_type = file.type || 'application/octet-stream';
    const started = await state.session.json('/attachments/uploads', { method: 'POST', body: { filename: file.name, content_type, size: file.size } });
    // The browser sets these itself (and refuses to be told).
    const headers = Object.fromEntries(Object.entries(started.upload.headers || {}).filter(([k]) => !['host', 'content-length'].includes(k.toLowerCase())));
    const put = await sendWithProgress(started.upload.method || 'PUT', started.upload.url, headers, file, onProgress);
    if (put.status >= 400) throw new ApiError(put.status, put.body);
    return state.session.json(`/attachments/${started.attachment.id}/complete`, { method: 'POST', body: {} });
  }

  async function upload(files) {
    await Promise.all(files.map(async (file) => {
      const uploading = { filename: file.name, size: file.size, progress: 0 };
      state.uploading.push(uploading);
      showPending();
      const progress = (p) => {
        uploading.progress = p;
        showPending();
      };
      try {
        let data;
        if (file.size > INLINE_UPLOAD_BYTES) data = await uploadLarge(file, progress);
        else {
          const form = new FormData();
          form.append('file', file, file.name);
          data = await postWithProgress('/attachments', form, progress);
        }
        state.pending.push(data);
      } catch (error) {
        toast(`${file.name}: ${describe(error)}`);
      } finally {
        state.uploading.splice(state.uploading.indexOf(uploading), 1);
        showPending();
      }
    }));
  }

  function showPending() {
    $('pending').replaceChildren(
      ...state.uploading.map((u) =>
        el('li', {}, el('span', { text: `${u.filename} (${bytes(u.size)})` }),
          el('progress', { max: '1', value: String(u.progress), 'aria-label': `Uploading ${u.filename}` }))),
      ...state.pending.map((a, i) =>
        el('li', {}, el('span', { text: `${a.filename} (${bytes(a.size ?? 0)})` }), el('button', {
          class: 'icon',
          'aria-label': `Remove attachment ${a.filename}`,
          text: '×',
          onclick: () => {
            state.pending.splice(i, 1);
            showPending();
          },
        })),
      ),
    );
    $('send').disabled = state.uploading.length > 0;
  }

  // A message's attachments: images as thumbnails, other files as chips with their size; each
  // opens the file (fetched with the access token, shown from a blob URL).
  function attachmentsView(attachments) {
    const list = el('ul', { class: 'attachments chips', 'aria-label': 'Attachments' });
    for (const a of attachments) {
      const label = `${a.filename} (${bytes(a.size ?? 0)})`;
      if (!a.id) {
        list.append(el('li', {}, el('span', { text: label })));
        continue;
      }
      const link = el('a', { href: '#', title: label, 'aria-label': `Open attachment ${a.filename}`, onclick: (e) => {
        e.preventDefault();
        openAttachment(a);
      } });
      if ((a.content_type || '').startsWith('image/')) {
        const img = el('img', { alt: a.filename });
        link.append(img);
        attachmentBlob(a).then((url) => url && (img.src = url));
      }
      link.append(el('span', { text: label }));
      list.append(el('li', {}, link));
    }
    return list;
  }

  const blobUrls = new Map();
  async function attachmentBlob(a) {
    if (blobUrls.has(a.id)) return blobUrls.get(a.id);
    try {
      const res = await state.session.request(`/attachments/${a.id}/content`);
      if (!res.ok) return null;
      const url = URL.createObjectURL(await res.blob());
      blobUrls.set(a.id, url);
      return url;
    } catch {
      return null;
    }
  }

  async function openAttachment(a) {
    const url = await attachmentBlob(a);
    if (url) window.open(url, '_blank', 'noopener');
    else toast(`${a.filename} could not be opened`);
  }

  return { upload, showPending, attachmentsView };
}
