// Tokens and authorised requests. The access token lives in memory only. The refresh token: with
// `cookie: true` (the web client) in an HttpOnly cookie the API sets (`X-CodeChat-Session: cookie`),
// which no script can read and which a new tab presents to sign in again; otherwise (API clients,
// tests) in the storage given, sessionStorage at most. A 401 refreshes once (one refresh in flight
// however many requests hit it) and retries; a failed refresh signs out. Pure apart from the
// injected fetch and storage: unit-tested.

const REFRESH_KEY = 'codechat.refresh';
// With the cookie session: that this browser signed in (not a secret; it saves a signed-out
// visitor a refresh that can only fail).
const COOKIE_HINT = 'codechat.cookie-session';

export class Session {
  /**
   * @param {{base?: string, fetch?: typeof fetch, storage?: Storage|null, onSignedOut?: () => void}} options
   */
  constructor({ base = '/api/v1', fetch: fetchImpl = globalThis.fetch.bind(globalThis), storage = null, cookie = false, hints = null, onSignedOut = () => {} } = {}) {
    this.base = base;
    this.cookie = cookie;
    this.hints = hints;
    this.fetch = fetchImpl;
    this.storage = storage;
    this.onSignedOut = onSignedOut;
    this.access = null;
    this.refreshing = null;
    this.user = null;
  }

  get refreshToken() {
    if (this.cookie) return null;
    return this.storage ? this.storage.getItem(REFRESH_KEY) : this._refresh || null;
  }

  /** The headers that ask for (and, on refresh and logout, present) the cookie session. */
  get sessionHeaders() {
    return this.cookie ? { 'x-codechat-session': 'cookie' } : {};
  }

  set refreshToken(value) {
    if (this.storage) {
      if (value) this.storage.setItem(REFRESH_KEY, value);
      else this.storage.removeItem(REFRESH_KEY);
    } else this._refresh = value;
  }

  /** Keeps a token answer (register, login, refresh). */
  accept(tokens) {
    this.access = tokens.access_token;
    if (!this.cookie) this.refreshToken = tokens.refresh_token;
    else this.hints?.setItem(COOKIE_HINT, '1');
    if (tokens.user) this.user = tokens.user;
  }

  get signedIn() {
    return Boolean(this.access || this.refreshToken);
  }

  /** Signs in again from what the browser keeps (the cookie session): whether it worked. */
  async resume() {
    if (this.access) return true;
    if (!this.cookie && !this.refreshToken) return false;
    if (this.cookie && this.hints && !this.hints.getItem(COOKIE_HINT)) return false;
    return this.refresh();
  }

  async signIn(path, body) {
    const res = await this.fetch(`${this.base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...this.sessionHeaders },
      credentials: 'same-origin',
      body: JSON.stringify(body),
    });
    const data = await readJson(res);
    if (!res.ok) throw new ApiError(res.status, data);
    this.accept(data);
    return data;
  }

  /** A new pair from the refresh token; one at a time. */
  refresh() {
    if (!this.refreshing) {
      const token = this.refreshToken;
      this.refreshing = (async () => {
        if (!token && !this.cookie) return false;
        const res = await this.fetch(`${this.base}/auth/refresh`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...this.sessionHeaders },
          credentials: 'same-origin',
          body: JSON.stringify(this.cookie ? {} : { refresh_token: token }),
        }).catch(() => null);
        if (!res) return false;
        if (!res.ok) return false;
        this.accept(await res.json());
        return true;
      })().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  /** fetch with the access token; a 401 refreshes and retries once, then signs out. */
  async request(path, options = {}) {
    if (!this.access && (this.refreshToken || this.cookie)) await this.refresh();
    const send = () =>
      this.fetch(`${this.base}${path}`, {
        ...options,
        headers: { ...(options.headers || {}), authorization: `Bearer ${this.access}` },
      });
    let res = await send();
    if (res.status === 401 && (await this.refresh())) res = await send();
    if (res.status === 401) this.signOutLocally();
    return res;
  }

  /** JSON in, JSON out; an error status throws an ApiError with the problem. */
  async json(path, { method = 'GET', body, headers } = {}) {
    const options = { method, headers: { ...(headers || {}) } };
    if (body !== undefined) {
      options.headers['content-type'] = 'application/json';
      options.body = JSON.stringify(body);
    }
    const res = await this.request(path, options);
    const data = await readJson(res);
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
  }

  async signOut() {
    const token = this.refreshToken;
    if ((token || this.cookie) && this.access) {
      await this.fetch(`${this.base}/auth/logout`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.access}`, ...this.sessionHeaders },
        credentials: 'same-origin',
        body: JSON.stringify(this.cookie ? {} : { refresh_token: token }),
      }).catch(() => {});
    }
    this.signOutLocally();
  }

  signOutLocally() {
    const was = this.signedIn;
    this.access = null;
    this.refreshToken = null;
    this.hints?.removeItem(COOKIE_HINT);
    this.user = null;
    if (was) this.onSignedOut();
  }
}

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }

  /** The first field error's message for `field`, if any. */
  field(name) {
    const e = (this.problem.errors || []).find((x) => x.field === name);
    return e ? e.message : null;
  }
}

async function readJson(res) {
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { detail: text };
  }
}
