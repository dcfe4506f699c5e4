//! Users' MCP tool servers: how many, how long a call may take, how much it may answer, how long a
//! server's tool list is trusted, which addresses may be reached, and the key their headers are
//! sealed with.

use super::*;

/// Where the key sealing the servers' headers comes from: `MCP_HEADERS_KEY` (tests) or
/// `MCP_HEADERS_KEY_ARN` (Lambda), read when first needed; locally, a dev key created once under
/// the data directory. In the lambda profile without either, servers without headers still work and
/// one with headers is refused (503) until the key is set.
#[derive(Debug, Clone)]
pub enum McpKeySource {
    Secret(SecretRef),
    DevFile(PathBuf),
    Missing,
}

impl McpKeySource {
    /// The secret the key is derived from; `None` when none is configured.
    pub async fn read(&self) -> Result<Option<String>, ConfigError> {
        match self {
            McpKeySource::Secret(s) => s.read().await.map(Some),
            McpKeySource::DevFile(dir) => {
                dev_secret(dir, "dev-mcp-headers-key", "MCP_HEADERS_KEY_ARN").map(Some)
            }
            McpKeySource::Missing => Ok(None),
        }
    }
}

#[derive(Debug, Clone)]
pub struct McpConfig {
    pub headers_key: McpKeySource,
    /// Servers one user may register (`MAX_MCP_SERVERS_PER_USER`, 20).
    pub max_servers_per_user: u64,
    /// One `tools/call` (or a connection and `tools/list`), `MCP_CALL_TIMEOUT_SECONDS` (30),
    /// within what is left of the turn.
    pub call_timeout: Duration,
    /// The largest answer a server may send to one request (`MCP_MAX_RESULT_BYTES`, 1 MiB); a
    /// larger one is a tool error. The model reads at most 64 K characters of it.
    pub max_result_bytes: usize,
    /// How long an instance reuses a server's `tools/list` (`MCP_TOOLS_TTL_SECONDS`, 60).
    pub tools_ttl: Duration,
    /// Whether loopback `http://` servers may be registered and reached (`MCP_ALLOW_LOOPBACK`;
    /// true in the local profile, false in lambda, where a server must be https to public addresses).
    pub allow_loopback: bool,
}

impl McpConfig {
    pub(super) fn load(
        var: &impl Fn(&str) -> Option<String>,
        local: bool,
        data_dir: &std::path::Path,
    ) -> Result<Self, ConfigError> {
        let headers_key = match SecretRef::named(var, "MCP_HEADERS_KEY") {
            Some(secret) => McpKeySource::Secret(secret),
            None if local => McpKeySource::DevFile(data_dir.to_path_buf()),
            None => McpKeySource::Missing,
        };
        let call_timeout = number(var, "MCP_CALL_TIMEOUT_SECONDS", 30u64)?;
        if call_timeout == 0 {
            return Err(ConfigError::Invalid {
                name: "MCP_CALL_TIMEOUT_SECONDS",
                reason: "must be at least 1".into(),
            });
        }
        Ok(McpConfig {
            headers_key,
            max_servers_per_user: number(var, "MAX_MCP_SERVERS_PER_USER", 20)?,
            call_timeout: Duration::from_secs(call_timeout),
            max_result_bytes: number(var, "MCP_MAX_RESULT_BYTES", 1024 * 1024)?,
            tools_ttl: Duration::from_secs(number(var, "MCP_TOOLS_TTL_SECONDS", 60)?),
            allow_loopback: match var("MCP_ALLOW_LOOPBACK") {
                Some(v) => parse_bool("MCP_ALLOW_LOOPBACK", &v)?,
                None => local,
            },
        })
    }
}
