//! Admins' changes to the models catalog, as partial entries (the catalog merges them).

use super::{
    admin::{audit_params, INSERT_AUDIT},
    col, collect, Conn, NewAuditEntry, StoreResult,
};

/// One model's stored changes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelSetting {
    pub id: String,
    /// A JSON object of `enabled`, `pricing` and `fallbacks`.
    pub changes: serde_json::Value,
    pub updated_at: String,
}

impl Conn {
    /// Every model's stored changes, by id.
    pub async fn model_settings(&self) -> StoreResult<Vec<ModelSetting>> {
        let rows = self
            .query(
                "SELECT id, changes, updated_at FROM model_settings ORDER BY id",
                (),
            )
            .await?;
        collect(rows, |row| {
            let changes: String = col(row, 1, "model_settings.changes")?;
            Ok(ModelSetting {
                id: col(row, 0, "model_settings.id")?,
                changes: serde_json::from_str(&changes)
                    .map_err(|_| super::StoreError::Corrupt("model_settings.changes"))?,
                updated_at: col(row, 2, "model_settings.updated_at")?,
            })
        })
    }

    /// Stores a model's changes (all of them, replacing what was stored) with the audit entry, in
    /// one transaction.
    pub async fn put_model_setting(
        &self,
        id: &str,
        changes: &serde_json::Value,
        audit: NewAuditEntry<'_>,
    ) -> StoreResult<()> {
        let tx = self.transaction("model_settings.put").await?;
        tx.execute(
            "INSERT INTO model_settings (id, changes, updated_at, updated_by)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO UPDATE SET changes = excluded.changes,
                 updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            libsql::params![id, changes.to_string(), crate::ids::now(), audit.actor_id],
        )
        .await?;
        tx.execute(INSERT_AUDIT, audit_params(audit)).await?;
        tx.commit().await?;
        Ok(())
    }
}
