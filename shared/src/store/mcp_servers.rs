//! Users' MCP tool servers; the headers stay sealed here (the domain opens them).

use super::{col, collect, first, Conn, Row, StoreError, StoreResult};
use crate::ids::{McpServerId, UserId};

#[derive(Debug, Clone)]
pub struct McpServer {
    pub id: McpServerId,
    pub user_id: UserId,
    pub name: String,
    pub url: String,
    /// The names of the headers sent with every request (their values are sealed).
    pub header_names: Vec<String>,
    pub headers_sealed: Option<Vec<u8>>,
    pub created_at: String,
}

pub struct NewMcpServer<'a> {
    pub id: McpServerId,
    pub user_id: UserId,
    pub name: &'a str,
    pub url: &'a str,
    pub header_names: &'a [String],
    pub headers_sealed: Option<&'a [u8]>,
}

const COLUMNS: &str = "id, user_id, name, url, header_names, headers_sealed, created_at";

fn server_from_row(row: &Row) -> StoreResult<McpServer> {
    let names: String = col(row, 4, "mcp_servers.header_names")?;
    Ok(McpServer {
        id: col(row, 0, "mcp_servers.id")?,
        user_id: col(row, 1, "mcp_servers.user_id")?,
        name: col(row, 2, "mcp_servers.name")?,
        url: col(row, 3, "mcp_servers.url")?,
        header_names: serde_json::from_str(&names)
            .map_err(|_| StoreError::Corrupt("mcp_servers.header_names"))?,
        headers_sealed: col(row, 5, "mcp_servers.headers_sealed")?,
        created_at: col(row, 6, "mcp_servers.created_at")?,
    })
}

impl Conn {
    /// Refused with [`StoreError::LimitReached`] when the user holds `max` servers already, and
    /// with the unique constraint `mcp_servers.user_id, mcp_servers.name` when the name is taken.
    pub async fn insert_mcp_server(
        &self,
        new: NewMcpServer<'_>,
        max: u64,
    ) -> StoreResult<McpServer> {
        let names = serde_json::to_string(new.header_names).unwrap_or_else(|_| "[]".into());
        let sealed = new.headers_sealed.map(|b| libsql::Value::Blob(b.to_vec()));
        let rows = self
            .query(
                &format!(
                    "INSERT INTO mcp_servers (id, user_id, name, url, header_names, headers_sealed, created_at)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
                     WHERE (SELECT COUNT(*) FROM mcp_servers WHERE user_id = ?2) < ?8
                     RETURNING {COLUMNS}"
                ),
                libsql::params![
                    new.id,
                    new.user_id,
                    new.name,
                    new.url,
                    names,
                    sealed.unwrap_or(libsql::Value::Null),
                    crate::ids::now(),
                    max.min(i64::MAX as u64) as i64
                ],
            )
            .await?;
        first(rows, server_from_row)?.ok_or(StoreError::LimitReached {
            what: "tool servers",
            limit: max,
        })
    }

    /// The user's servers, by name (a user holds at most `MAX_MCP_SERVERS_PER_USER`).
    pub async fn list_mcp_servers(&self, user_id: UserId) -> StoreResult<Vec<McpServer>> {
        let rows = self
            .query(
                &format!("SELECT {COLUMNS} FROM mcp_servers WHERE user_id = ?1 ORDER BY name"),
                libsql::params![user_id],
            )
            .await?;
        collect(rows, server_from_row)
    }

    pub async fn mcp_server(
        &self,
        id: McpServerId,
        user_id: UserId,
    ) -> StoreResult<Option<McpServer>> {
        let rows = self
            .query(
                &format!("SELECT {COLUMNS} FROM mcp_servers WHERE id = ?1 AND user_id = ?2"),
                libsql::params![id, user_id],
            )
            .await?;
        first(rows, server_from_row)
    }

    /// Whether the user's server was there to delete.
    pub async fn delete_mcp_server(&self, id: McpServerId, user_id: UserId) -> StoreResult<bool> {
        Ok(self
            .execute(
                "DELETE FROM mcp_servers WHERE id = ?1 AND user_id = ?2",
                libsql::params![id, user_id],
            )
            .await?
            > 0)
    }
}
