//! What the admin console reads and changes: every user, the audit log, and usage over a window.

use super::{
    col, collect, conversations::like_pattern, first, rows, users, Conn, Row, StoreResult, User,
};
use crate::{ids::UserId, kinds::Role};

/// Filters of the user list; `None` filters nothing.
#[derive(Debug, Default)]
pub struct UserFilter<'a> {
    /// Part of the email or display name.
    pub q: Option<&'a str>,
    pub role: Option<Role>,
    pub active: Option<bool>,
}

/// An admin's change to an account; `None` leaves a column as it is, `daily_token_limit:
/// Some(None)` gives the account the default budget back.
#[derive(Debug, Default)]
pub struct UserAdminChanges {
    pub role: Option<Role>,
    pub is_active: Option<bool>,
    pub daily_token_limit: Option<Option<i64>>,
}

pub enum AdminUpdate {
    Updated(User),
    NotFound,
    /// The change would leave no active admin.
    LastAdmin,
}

/// An audit entry to write.
pub struct NewAuditEntry<'a> {
    pub actor_id: UserId,
    pub action: &'a str,
    pub target_type: Option<&'a str>,
    pub target_id: Option<String>,
    pub details: Option<serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub id: String,
    pub actor_id: String,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub details: Option<serde_json::Value>,
    pub created_at: String,
}

/// How the usage report groups its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageGroup {
    User,
    Model,
    Day,
}

/// What a usage report reads: the usage rows of two time ranges (the partial days at the window's
/// ends; empty as `[t, t)`) and the whole days `[first, end)` (`YYYY-MM-DD`) of the rollup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRanges {
    pub head: (String, String),
    pub tail: (String, String),
    pub days: (String, String),
}

#[derive(Debug, Clone)]
pub struct UsageReportRow {
    pub key: String,
    /// The user's email, when grouping by user.
    pub label: Option<String>,
    pub calls: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cost_usd: f64,
}

fn audit_from_row(row: &Row) -> StoreResult<AuditEntry> {
    let details: Option<String> = col(row, 5, "admin_audit.details")?;
    Ok(AuditEntry {
        id: col(row, 0, "admin_audit.id")?,
        actor_id: col(row, 1, "admin_audit.actor_id")?,
        action: col(row, 2, "admin_audit.action")?,
        target_type: col(row, 3, "admin_audit.target_type")?,
        target_id: col(row, 4, "admin_audit.target_id")?,
        details: details.and_then(|d| serde_json::from_str(&d).ok()),
        created_at: col(row, 6, "admin_audit.created_at")?,
    })
}

pub(super) const INSERT_AUDIT: &str =
    "INSERT INTO admin_audit (id, actor_id, action, target_type, target_id, details, created_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

pub(super) fn audit_params(entry: NewAuditEntry<'_>) -> impl libsql::params::IntoParams {
    libsql::params![
        crate::ids::new_id(),
        entry.actor_id,
        entry.action,
        entry.target_type,
        entry.target_id,
        entry.details.map(|d| d.to_string()),
        crate::ids::now()
    ]
}

impl Conn {
    /// Newest accounts first; `after` is the previous page's last (created_at, id).
    pub async fn admin_list_users(
        &self,
        filter: &UserFilter<'_>,
        after: Option<(String, String)>,
        limit: u32,
    ) -> StoreResult<Vec<User>> {
        let (after_at, after_id) = after.unzip();
        let rows = self
            .query(
                &format!(
                    "SELECT {} FROM users
                     WHERE (?1 IS NULL OR email LIKE ?1 ESCAPE '\\' OR display_name LIKE ?1 ESCAPE '\\')
                       AND (?2 IS NULL OR role = ?2)
                       AND (?3 IS NULL OR is_active = ?3)
                       AND (?4 IS NULL OR (created_at, id) < (?4, ?5))
                     ORDER BY created_at DESC, id DESC LIMIT ?6",
                    users::USER_COLUMNS
                ),
                libsql::params![
                    filter.q.map(like_pattern),
                    filter.role.map(Role::as_str),
                    filter.active.map(i64::from),
                    after_at,
                    after_id,
                    limit as i64 + 1
                ],
            )
            .await?;
        collect(rows, users::user_from_row)
    }

    /// Changes an account and writes the audit entry in one transaction. The guard is inside the
    /// update, so two admins demoting each other at once still leave one: the second statement
    /// sees the first's change. Deactivation ends the account's sessions (the epoch moves on).
    pub async fn admin_update_user(
        &self,
        id: UserId,
        changes: &UserAdminChanges,
        audit: NewAuditEntry<'_>,
    ) -> StoreResult<AdminUpdate> {
        let (set_limit, limit) = match changes.daily_token_limit {
            None => (false, None),
            Some(v) => (true, v),
        };
        let tx = self.transaction("admin.update_user").await?;
        let updated = rows(
            tx.query(
                &format!(
                    "UPDATE users SET role = COALESCE(?2, role),
                         is_active = COALESCE(?3, is_active),
                         daily_token_limit = CASE WHEN ?4 THEN ?5 ELSE daily_token_limit END,
                         session_epoch = session_epoch + (is_active = 1 AND COALESCE(?3, is_active) = 0),
                         updated_at = ?6
                     WHERE id = ?1 AND (
                         NOT (role = 'admin' AND is_active = 1
                              AND (COALESCE(?2, role) <> 'admin' OR COALESCE(?3, is_active) = 0))
                         OR EXISTS (SELECT 1 FROM users o
                                    WHERE o.id <> ?1 AND o.role = 'admin' AND o.is_active = 1))
                     RETURNING {}",
                    users::USER_COLUMNS
                ),
                libsql::params![
                    id,
                    changes.role.map(Role::as_str),
                    changes.is_active.map(i64::from),
                    set_limit,
                    limit,
                    crate::ids::now()
                ],
            )
            .await?,
        )
        .await?;
        let Some(user) = first(updated, users::user_from_row)? else {
            let exists = rows(
                tx.query("SELECT 1 FROM users WHERE id = ?1", libsql::params![id])
                    .await?,
            )
            .await?;
            tx.rollback().await?;
            return Ok(if exists.is_empty() {
                AdminUpdate::NotFound
            } else {
                AdminUpdate::LastAdmin
            });
        };
        tx.execute(INSERT_AUDIT, audit_params(audit)).await?;
        tx.commit().await?;
        Ok(AdminUpdate::Updated(user))
    }

    pub async fn insert_audit(&self, entry: NewAuditEntry<'_>) -> StoreResult<()> {
        self.execute(INSERT_AUDIT, audit_params(entry)).await?;
        Ok(())
    }

    /// Newest first; `after` is the previous page's last (created_at, id).
    pub async fn list_audit(
        &self,
        after: Option<(String, String)>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>> {
        let (after_at, after_id) = after.unzip();
        let rows = self
            .query(
                "SELECT id, actor_id, action, target_type, target_id, details, created_at
                 FROM admin_audit WHERE (?1 IS NULL OR (created_at, id) < (?1, ?2))
                 ORDER BY created_at DESC, id DESC LIMIT ?3",
                libsql::params![after_at, after_id, limit as i64 + 1],
            )
            .await?;
        collect(rows, audit_from_row)
    }

    /// Tokens and cost of the usage rows in a window, grouped: the whole days of `ranges` from the
    /// `usage_days` rollup, its partial days from the usage rows (the covering `usage_report`
    /// index). The rollup equals the rows it sums (triggers keep it), so the answer is the rows'
    /// sum, at a cost that follows the number of groups rather than of rows.
    pub async fn usage_report(
        &self,
        ranges: &ReportRanges,
        group: UsageGroup,
    ) -> StoreResult<Vec<UsageReportRow>> {
        let (key, day_key) = match group {
            UsageGroup::User => ("user_id", "user_id"),
            UsageGroup::Model => ("model", "model"),
            UsageGroup::Day => ("substr(created_at, 1, 10)", "day"),
        };
        let label = match group {
            UsageGroup::User => "(SELECT email FROM users WHERE users.id = g.key)",
            _ => "NULL",
        };
        let raw = |from: &str, to: &str| {
            format!(
                "SELECT {key} AS key, COUNT(*) AS calls, SUM(input_tokens) AS input,
                        SUM(output_tokens) AS output, SUM(cached_tokens) AS cached,
                        SUM(cost_usd) AS cost
                 FROM usage INDEXED BY usage_report
                 WHERE created_at >= {from} AND created_at < {to} GROUP BY 1"
            )
        };
        let rows = self
            .query(
                &format!(
                    "SELECT g.key, {label}, SUM(g.calls), SUM(g.input), SUM(g.output),
                            SUM(g.cached), SUM(g.cost) FROM (
                         {} UNION ALL {} UNION ALL
                         SELECT {day_key}, SUM(calls), SUM(input_tokens), SUM(output_tokens),
                                SUM(cached_tokens), SUM(cost_usd)
                         FROM usage_days WHERE day >= ?5 AND day < ?6 GROUP BY 1
                     ) g GROUP BY g.key ORDER BY g.key",
                    raw("?1", "?2"),
                    raw("?3", "?4")
                ),
                libsql::params![
                    ranges.head.0.as_str(),
                    ranges.head.1.as_str(),
                    ranges.tail.0.as_str(),
                    ranges.tail.1.as_str(),
                    ranges.days.0.as_str(),
                    ranges.days.1.as_str()
                ],
            )
            .await?;
        collect(rows, |row| {
            Ok(UsageReportRow {
                key: col(row, 0, "usage.key")?,
                label: col(row, 1, "users.email")?,
                calls: col(row, 2, "usage.calls")?,
                input_tokens: col(row, 3, "usage.input_tokens")?,
                output_tokens: col(row, 4, "usage.output_tokens")?,
                cached_tokens: col(row, 5, "usage.cached_tokens")?,
                cost_usd: col(row, 6, "usage.cost_usd")?,
            })
        })
    }
}
