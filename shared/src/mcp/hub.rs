//! What a process keeps for tool servers: the checked HTTP client, the sealing key (read from its
//! secret when first needed), and each server's tool list for a short TTL.

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

pub struct Hub {
    http: reqwest::Client,
    rules: AddressRules,
    limits: CallLimits,
    ttl: Duration,
    max_servers: u64,
    key_source: McpKeySource,
    key: tokio::sync::OnceCell<Option<Arc<SealingKey>>>,
    tools: Mutex<ToolLists>,
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
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(address::same_origin_redirects())
            .dns_resolver(Arc::new(address::CheckedResolver(rules)))
            .connect_timeout(config.call_timeout.min(Duration::from_secs(10)))
            .tcp_nodelay(true)
            .build()
            .expect("an HTTP client with rustls");
        Hub {
            http,
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
        }
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

    /// A session with `server`, its URL checked again (a literal address skips DNS) and its
    /// headers opened; bounded by `limits`.
    pub(super) async fn connect(
        &self,
        server: &McpServer,
        limits: CallLimits,
    ) -> std::result::Result<Session, McpError> {
        let url = address::check_url(&server.url, self.rules).map_err(|rule| {
            McpError::Failed(format!("the server's URL is not allowed here: it {rule}"))
        })?;
        // The resolver enforces the rules at connection; resolving first only names the cause
        // (the transport's error does not carry the resolver's).
        check_resolves(&url, self.rules).await.map_err(|rule| {
            McpError::Failed(format!("the server's URL is not allowed here: it {rule}"))
        })?;
        let headers = self
            .open_headers(server)
            .await
            .map_err(|e| McpError::Failed(e.to_string()))?;
        Session::open(&self.http, &server.url, headers, limits).await
    }

    /// The server's tools: this instance's list while it is younger than the TTL, else listed now
    /// (with the session that listed them, for the caller to reuse).
    pub(super) async fn tools(
        &self,
        server: &McpServer,
    ) -> std::result::Result<(Arc<Vec<RemoteTool>>, Option<Session>), McpError> {
        if let Some(tools) = self.cached(server.id) {
            return Ok((tools, None));
        }
        let session = self.connect(server, self.limits).await?;
        let tools = Arc::new(session.list_tools().await?);
        self.tools
            .lock()
            .expect("the tool lists' lock")
            .insert(server.id, (Instant::now(), tools.clone()));
        Ok((tools, Some(session)))
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
    }
}

/// In the lambda profile a server's host must resolve, and to allowed addresses only (checked
/// again at every connection); locally (loopback allowed) names are resolved when used.
pub(super) async fn check_resolves(
    url: &reqwest::Url,
    rules: AddressRules,
) -> std::result::Result<(), String> {
    if rules.allow_loopback {
        return Ok(());
    }
    let Some(url::Host::Domain(host)) = url.host() else {
        return Ok(());
    };
    let found: Vec<std::net::SocketAddr> = match tokio::net::lookup_host((host, 0)).await {
        Ok(found) => found.collect(),
        Err(_) => return Err(format!("names a host that does not resolve ({host})")),
    };
    if found.iter().all(|a| !rules.allows(a.ip())) {
        return Err(format!(
            "names a host that resolves to no public address ({host})"
        ));
    }
    Ok(())
}
