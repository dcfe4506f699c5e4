//! Failed password checks, counted per account and per client IP in fixed windows.

use super::{col, first, Conn, StoreResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureScope {
    Account,
    Ip,
}

impl FailureScope {
    fn as_str(self) -> &'static str {
        match self {
            FailureScope::Account => "account",
            FailureScope::Ip => "ip",
        }
    }
}

impl Conn {
    /// The failures counted in the window that started after `window_cutoff`, and when it started.
    pub async fn login_failures(
        &self,
        scope: FailureScope,
        key: &str,
        window_cutoff: &str,
    ) -> StoreResult<Option<(i64, String)>> {
        let rows = self
            .query(
                "SELECT failures, window_start FROM login_failures
                 WHERE scope = ?1 AND key = ?2 AND window_start > ?3",
                libsql::params![scope.as_str(), key, window_cutoff],
            )
            .await?;
        first(rows, |row| {
            Ok((
                col(row, 0, "login_failures.failures")?,
                col(row, 1, "login_failures.window_start")?,
            ))
        })
    }

    /// Counts one failure: in the current window, or in a new one starting `now` if the last one
    /// began at or before `window_cutoff`.
    pub async fn count_login_failure(
        &self,
        scope: FailureScope,
        key: &str,
        now: &str,
        window_cutoff: &str,
    ) -> StoreResult<()> {
        self.execute(
            "INSERT INTO login_failures (scope, key, window_start, failures) VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT (scope, key) DO UPDATE SET
                     failures = CASE WHEN window_start <= ?4 THEN 1 ELSE failures + 1 END,
                     window_start = CASE WHEN window_start <= ?4 THEN ?3 ELSE window_start END",
            libsql::params![scope.as_str(), key, now, window_cutoff],
        )
        .await?;
        Ok(())
    }

    pub async fn clear_login_failures(&self, scope: FailureScope, key: &str) -> StoreResult<()> {
        self.execute(
            "DELETE FROM login_failures WHERE scope = ?1 AND key = ?2",
            libsql::params![scope.as_str(), key],
        )
        .await?;
        Ok(())
    }
}
