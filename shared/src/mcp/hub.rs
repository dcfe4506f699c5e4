//! What a process keeps for tool servers: the checked HTTP client, the sealing key (read from its
//! secret when first needed), each server's tool list for a short TTL, and a session per server
//! while it is used (a turn's first call then costs one request, not the three of a handshake).
//! Servers are per user, so neither a list nor a session is ever shared between users.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::{
    address::{self, AddressRules},
    client::{CallLimits, McpError, Session},
    RemoteTool,
};
use crate::{
    config::{McpConfig, McpKeySource},
    error::{Error, Result},
    ids::{McpServerId, UserId},
    sealed::SealingKey,
    store::McpServer,
};

type Headers = Vec<(http::HeaderName, http::HeaderValue)>;
/// Each server's tools, and when they were listed.
type ToolLists = HashMap<McpServerId, (Instant, Arc<Vec<RemoteTool>>)>;
/// Each server's open session, and when it was last used.
type Sessions = HashMap<McpServerId, (Instant, Arc<Session>)>;

/// A session unused this long is closed rather than reused (servers expire idle sessions; rmcp
/// opens a new one when a server says its session expired).
const SESSION_IDLE: Duration = Duration::from_secs(300);
/// Sessions one instance keeps open; the least recently used goes first.
const MAX_SESSIONS: usize = 32;

pub struct Hub {
    /// Built on first use: every function opens a hub at cold start, few ever reach a server.
    http: std::sync::OnceLock<reqwest::Client>,
    rules: AddressRules,
    limits: CallLimits,
    ttl: Duration,
    max_servers: u64,
    key_source: McpKeySource,
    key: tokio::sync::OnceCell<Option<Arc<SealingKey>>>,
    tools: Mutex<ToolLists>,
    sessions: Mutex<Sessions>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("rules", &self.rules).finish()
    }
}

/// The sealed headers' authenticated context: the row they belong to and its owner.
fn context(id: McpServerId, user_id: UserId) -> Vec<u8> {
    format!("mcp_servers/{id}/{user_id}").into_bytes()
}

impl Hub {
    pub fn new(config: &McpConfig) -> Hub {
        let rules = AddressRules {
            allow_loopback: config.allow_loopback,
        };
        Hub {
            http: std::sync::OnceLock::new(),
            rules,
            limits: CallLimits {
                timeout: config.call_timeout,
                max_bytes: config.max_result_bytes,
            },
            ttl: config.tools_ttl,
            max_servers: config.max_servers_per_user,
            key_source: config.headers_key.clone(),
            key: tokio::sync::OnceCell::new(),
            tools: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// The HTTP client servers are reached with: no proxy, redirects on the same origin only, and a
    /// resolver that answers only the addresses the rules allow.
    fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            reqwest::Client::builder()
                .no_proxy()
                .redirect(address::same_origin_redirects())
                .dns_resolver(Arc::new(address::CheckedResolver(self.rules)))
                .connect_timeout(self.limits.timeout.min(Duration::from_secs(10)))
                .tcp_nodelay(true)
                .build()
                .expect("an HTTP client with rustls")
        })
    }

    pub fn rules(&self) -> AddressRules {
        self.rules
    }

    pub fn limits(&self) -> CallLimits {
        self.limits
    }

    pub(super) fn max_servers(&self) -> u64 {
        self.max_servers
    }

    async fn key(&self) -> Result<Arc<SealingKey>> {
        let key = self
            .key
            .get_or_try_init(|| async {
                let secret = self.key_source.read().await.map_err(|e| {
                    tracing::error!(error = %e, "the tool servers' sealing key could not be read");
                    Error::Internal("the tool servers' sealing key could not be read".into())
                })?;
                match secret {
                    None => Ok(None),
                    Some(secret) => SealingKey::derive(secret.as_bytes())
                        .map(|k| Some(Arc::new(k)))
                        .map_err(|e| Error::Internal(format!("MCP_HEADERS_KEY: {e}"))),
                }
            })
            .await?;
        key.clone().ok_or(Error::NotConfigured(
            "tool server headers cannot be kept: MCP_HEADERS_KEY_ARN is not set",
        ))
    }

    pub(super) async fn seal_headers(
        &self,
        id: McpServerId,
        user_id: UserId,
        headers: &Headers,
    ) -> Result<Vec<u8>> {
        let plain: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap_or_default()))
            .collect();
        let json = serde_json::to_vec(&plain).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(self.key().await?.seal(&json, &context(id, user_id)))
    }

    async fn open_headers(
        &self,
        server: &McpServer,
    ) -> Result<HashMap<http::HeaderName, http::HeaderValue>> {
        let Some(sealed) = &server.headers_sealed else {
            return Ok(HashMap::new());
        };
        let plain = self
            .key()
            .await?
            .open(sealed, &context(server.id, server.user_id))
            .map_err(|_| {
                tracing::error!(server_id = %server.id, "a tool server's headers do not open with this key");
                Error::Internal("a tool server's headers do not open".into())
            })?;
        let pairs: Vec<(String, String)> =
            serde_json::from_slice(&plain).map_err(|e| Error::Internal(e.to_string()))?;
        let mut headers = HashMap::with_capacity(pairs.len());
        for (name, value) in pairs {
            if let (Ok(n), Ok(mut v)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(&value),
            ) {
                v.set_sensitive(true);
                headers.insert(n, v);
            }
        }
        Ok(headers)
    }

    /// A new session with `server`, its URL checked again (a literal address skips DNS) and its
    /// headers opened; bounded by `limits`.
    async fn connect(
        &self,
        server: &McpServer,
        limits: CallLimits,
    ) -> std::result::Result<Session, McpError> {
        let url = address::check_url(&server.url, self.rules).map_err(|rule| {
            McpError::Failed(format!("the server's URL is not allowed here: it {rule}"))
        })?;
        // The resolver enforces the rules at connection; resolving first only names the cause
        // (the transport's error does not carry the resolver's).
        address::check_resolves(&url, self.rules)
            .await
            .map_err(|rule| {
                McpError::Failed(format!("the server's URL is not allowed here: it {rule}"))
            })?;
        let headers = self
            .open_headers(server)
            .await
            .map_err(|e| McpError::Failed(e.to_string()))?;
        Session::open(self.http(), &server.url, headers, limits).await
    }

    /// This instance's session with `server` while it is open and was used within
    /// [`SESSION_IDLE`], else a new one (kept for the next calls).
    pub(super) async fn session(
        &self,
        server: &McpServer,
        limits: CallLimits,
    ) -> std::result::Result<(Arc<Session>, bool), McpError> {
        {
            let mut sessions = self.sessions.lock().expect("the sessions' lock");
            if let Some((used, session)) = sessions.get_mut(&server.id) {
                if used.elapsed() < SESSION_IDLE && !session.is_closed() {
                    *used = Instant::now();
                    return Ok((session.clone(), true));
                }
                sessions.remove(&server.id);
            }
        }
        let session = Arc::new(self.connect(server, limits).await?);
        let mut sessions = self.sessions.lock().expect("the sessions' lock");
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(id, _)| *id);
            if let Some(id) = oldest {
                sessions.remove(&id);
            }
        }
        sessions.insert(server.id, (Instant::now(), session.clone()));
        Ok((session, false))
    }

    /// Drops a session that failed, so the next call opens a new one.
    pub(super) fn drop_session(&self, id: McpServerId) {
        self.sessions
            .lock()
            .expect("the sessions' lock")
            .remove(&id);
    }

    /// The server's tools: this instance's list while it is younger than the TTL, else listed now.
    /// A kept session that fails to list is replaced once (listing is safe to repeat).
    pub(super) async fn tools(
        &self,
        server: &McpServer,
    ) -> std::result::Result<Arc<Vec<RemoteTool>>, McpError> {
        if let Some(tools) = self.cached(server.id) {
            return Ok(tools);
        }
        let (session, reused) = self.session(server, self.limits).await?;
        let listed = match session.list_tools(self.limits).await {
            Err(_) if reused => {
                self.drop_session(server.id);
                let (session, _) = self.session(server, self.limits).await?;
                session.list_tools(self.limits).await
            }
            other => other,
        };
        let tools = Arc::new(listed.inspect_err(|_| self.drop_session(server.id))?);
        self.tools
            .lock()
            .expect("the tool lists' lock")
            .insert(server.id, (Instant::now(), tools.clone()));
        Ok(tools)
    }

    fn cached(&self, id: McpServerId) -> Option<Arc<Vec<RemoteTool>>> {
        let mut lists = self.tools.lock().expect("the tool lists' lock");
        match lists.get(&id) {
            Some((at, tools)) if at.elapsed() < self.ttl => Some(tools.clone()),
            Some(_) => {
                lists.remove(&id);
                None
            }
            None => None,
        }
    }

    pub(super) fn forget(&self, id: McpServerId) {
        self.tools.lock().expect("the tool lists' lock").remove(&id);
        self.drop_session(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(headers_key: McpKeySource) -> McpConfig {
        McpConfig {
            headers_key,
            max_servers_per_user: 20,
            call_timeout: Duration::from_secs(1),
            max_result_bytes: 1024,
            tools_ttl: Duration::from_secs(60),
            allow_loopback: false,
        }
    }

    fn server(user_id: UserId, headers_sealed: Option<Vec<u8>>) -> McpServer {
        McpServer {
            id: McpServerId::new(),
            user_id,
            name: "tools".into(),
            url: "https://mcp.example.com/mcp".into(),
            header_names: Vec::new(),
            headers_sealed,
            created_at: String::new(),
        }
    }

    #[tokio::test]
    async fn without_a_key_headers_are_refused_and_servers_without_them_still_work() {
        let hub = Hub::new(&config(McpKeySource::Missing));
        let headers = vec![(
            http::HeaderName::from_static("authorization"),
            http::HeaderValue::from_static("Bearer x"),
        )];
        let refused = hub
            .seal_headers(McpServerId::new(), UserId::new(), &headers)
            .await
            .unwrap_err();
        assert_eq!(refused.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(hub
            .open_headers(&server(UserId::new(), None))
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn headers_open_for_their_own_row_only() {
        let secret = crate::config::SecretRef::Value("k".repeat(32));
        let hub = Hub::new(&config(McpKeySource::Secret(secret)));
        let owner = UserId::new();
        let mut row = server(owner, None);
        let headers = vec![(
            http::HeaderName::from_static("x-api-key"),
            http::HeaderValue::from_static("k-1"),
        )];
        row.headers_sealed = Some(hub.seal_headers(row.id, owner, &headers).await.unwrap());
        let opened = hub.open_headers(&row).await.unwrap();
        let key = http::HeaderName::from_static("x-api-key");
        assert_eq!(opened.get(&key).unwrap(), "k-1");
        // The same sealed bytes under another user or another row do not open.
        let mut moved = row.clone();
        moved.user_id = UserId::new();
        assert!(hub.open_headers(&moved).await.is_err());
        moved = row.clone();
        moved.id = McpServerId::new();
        assert!(hub.open_headers(&moved).await.is_err());
    }
}
