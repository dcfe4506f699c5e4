//! The admin console: every account, any conversation, usage reports, and the audit log of what
//! admins did. Whether the caller is an admin is decided from the stored account (the extractor's
//! job), never from a token's claim.

use time::{macros::format_description, Date, Duration, OffsetDateTime, Time};

use crate::{
    error::{Error, FieldError, FieldErrors, Result},
    ids::{ConversationId, UserId},
    models::LiveCatalog,
    pagination::{Page, Paginated},
    store::{
        AdminUpdate, AuditEntry, Conn, Conversation, Message, NewAuditEntry, ReportRanges,
        UsageGroup, UsageReportRow, User, UserAdminChanges, UserFilter, Which,
    },
};

/// The longest window a usage report covers.
pub const MAX_REPORT_DAYS: i64 = 366;
/// The window when `from` is not given: the 30 days before `to`.
const DEFAULT_REPORT_DAYS: i64 = 30;

pub async fn list_users(
    conn: &Conn,
    actor: &User,
    filter: &UserFilter<'_>,
    page: Page<(String, String)>,
) -> Result<Paginated<User>> {
    record(conn, actor, "users.list", "user", String::new()).await?;
    let rows = conn
        .admin_list_users(filter, page.after, page.limit)
        .await?;
    Ok(Paginated::from_rows(rows, page.limit, |u| {
        (u.created_at.clone(), u.id.to_string())
    }))
}

/// Changes an account's role, active flag or budget, with its audit entry. Leaving no active
/// admin is refused (409).
pub async fn update_user(
    conn: &Conn,
    actor: &User,
    id: UserId,
    changes: UserAdminChanges,
) -> Result<User> {
    let details = serde_json::json!({
        "role": changes.role.map(|r| r.as_str()),
        "is_active": changes.is_active,
        "daily_token_limit": changes.daily_token_limit,
    });
    let audit = NewAuditEntry {
        actor_id: actor.id,
        action: "user.update",
        target_type: Some("user"),
        target_id: Some(id.to_string()),
        details: Some(details),
    };
    match conn.admin_update_user(id, &changes, audit).await? {
        AdminUpdate::Updated(user) => Ok(user),
        AdminUpdate::NotFound => Err(Error::NotFound),
        AdminUpdate::LastAdmin => Err(Error::Conflict(
            "this would leave no active admin; make another account admin first",
        )),
    }
}

/// Any user's conversations, newest activity first; an unknown user is 404.
pub async fn user_conversations(
    conn: &Conn,
    actor: &User,
    id: UserId,
    page: Page<(String, String)>,
) -> Result<Paginated<Conversation>> {
    conn.user_by_id(id).await?.ok_or(Error::NotFound)?;
    record(
        conn,
        actor,
        "user.conversations.read",
        "user",
        id.to_string(),
    )
    .await?;
    let rows = conn
        .list_conversations(id, None, None, page.after, page.limit)
        .await?;
    Ok(Paginated::from_rows(rows, page.limit, |c| {
        (c.activity_at.clone(), c.id.to_string())
    }))
}

/// Any conversation's messages, oldest first.
pub async fn conversation_messages(
    conn: &Conn,
    actor: &User,
    id: ConversationId,
    page: Page<i64>,
) -> Result<Paginated<Message>> {
    let conversation = conn.conversation_by_id(id).await?.ok_or(Error::NotFound)?;
    record(
        conn,
        actor,
        "conversation.messages.read",
        "conversation",
        id.to_string(),
    )
    .await?;
    let rows = conn
        .list_messages(&conversation, Which::All, page.after, page.limit)
        .await?;
    Ok(Paginated::from_rows(rows, page.limit, |m| m.seq))
}

/// A usage report's window: `[from, to)` in UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
}

impl Window {
    /// Where the report reads the window: whole UTC days from the daily rollup, the partial days
    /// at either end from the usage rows.
    pub fn ranges(&self) -> ReportRanges {
        let fmt = crate::ids::format_time;
        let midnight = |t: OffsetDateTime| t.date().with_time(Time::MIDNIGHT).assume_utc();
        let first_day = match midnight(self.from) {
            d if d == self.from => d,
            d => d + Duration::days(1),
        };
        let end_day = midnight(self.to);
        if first_day >= end_day {
            let none = (fmt(self.to), fmt(self.to));
            return ReportRanges {
                head: (fmt(self.from), fmt(self.to)),
                tail: none,
                days: (String::new(), String::new()),
            };
        }
        ReportRanges {
            head: (fmt(self.from), fmt(first_day)),
            tail: (fmt(end_day), fmt(self.to)),
            days: (first_day.date().to_string(), end_day.date().to_string()),
        }
    }

    /// Parses `from` and `to`, each RFC 3339 or `YYYY-MM-DD` (UTC; a date `to` includes its whole
    /// day). `to` defaults to now and `from` to 30 days before it; the window must be non-empty and
    /// at most [`MAX_REPORT_DAYS`] long.
    pub fn parse(from: Option<&str>, to: Option<&str>, now: OffsetDateTime) -> Result<Self> {
        let mut errors = FieldErrors::default();
        let to = match to {
            None => Some(now),
            Some(raw) => errors.take(instant("to", raw, true)),
        };
        let from = match (from, to) {
            (Some(raw), _) => errors.take(instant("from", raw, false)),
            (None, Some(to)) => Some(to - Duration::days(DEFAULT_REPORT_DAYS)),
            (None, None) => None,
        };
        errors.finish()?;
        let (Some(from), Some(to)) = (from, to) else {
            return Err(Error::invalid("from", "is not a date"));
        };
        if from >= to {
            return Err(Error::invalid("to", "must be after `from`"));
        }
        if to - from > Duration::days(MAX_REPORT_DAYS) {
            return Err(Error::invalid(
                "from",
                format!("the window is at most {MAX_REPORT_DAYS} days"),
            ));
        }
        Ok(Window { from, to })
    }
}

fn instant(
    field: &str,
    raw: &str,
    end_of_day: bool,
) -> std::result::Result<OffsetDateTime, FieldError> {
    let raw = raw.trim();
    if let Some(t) = crate::ids::parse_time(raw) {
        return Ok(t.to_offset(time::UtcOffset::UTC));
    }
    let date = Date::parse(raw, format_description!("[year]-[month]-[day]")).map_err(|_| {
        FieldError::new(field, "must be an RFC 3339 time or a YYYY-MM-DD date (UTC)")
    })?;
    let start = date.with_time(Time::MIDNIGHT).assume_utc();
    Ok(if end_of_day {
        start + Duration::days(1)
    } else {
        start
    })
}

pub async fn usage_report(
    conn: &Conn,
    actor: &User,
    window: &Window,
    group: UsageGroup,
) -> Result<Vec<UsageReportRow>> {
    let rows = conn.usage_report(&window.ranges(), group).await?;
    record(conn, actor, "usage.report", "usage", String::new()).await?;
    Ok(rows)
}

/// A page of the audit log; the read is itself an entry (`audit.read`), written after the page is
/// read, so it shows from the next read on.
pub async fn audit_log(
    conn: &Conn,
    actor: &User,
    page: Page<(String, String)>,
) -> Result<Paginated<AuditEntry>> {
    let rows = conn.list_audit(page.after, page.limit).await?;
    record(conn, actor, "audit.read", "audit", String::new()).await?;
    Ok(Paginated::from_rows(rows, page.limit, |e| {
        (e.created_at.clone(), e.id.clone())
    }))
}

/// An admin's change to a catalog entry: any of these, merged over what admins changed before.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ModelChanges {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Prices to change, by name (`input_per_mtok_usd`, `output_per_mtok_usd`,
    /// `cached_input_per_mtok_usd`, `cache_write_per_mtok_usd`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pricing: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallbacks: Option<Vec<String>>,
}

/// A model as the admin sees it: its entry in force, and what admins changed of it.
pub struct AdminModel {
    pub model: crate::models::Model,
    pub changes: Option<serde_json::Value>,
    pub changed_at: Option<String>,
}

/// Every model, hidden ones too, with the admins' changes.
pub async fn list_models(conn: &Conn, live: &LiveCatalog) -> Result<Vec<AdminModel>> {
    let settings = conn.model_settings().await?;
    let catalog = live.current();
    Ok(catalog
        .every()
        .map(|m| admin_model(m.clone(), &settings))
        .collect())
}

fn admin_model(model: crate::models::Model, settings: &[crate::store::ModelSetting]) -> AdminModel {
    let setting = settings.iter().find(|s| s.id == model.id);
    AdminModel {
        changes: setting.map(|s| s.changes.clone()),
        changed_at: setting.map(|s| s.updated_at.clone()),
        model,
    }
}

/// Changes a catalog entry for every instance: checked against the whole catalog first (a price
/// below 0, a fallback that is not a model or makes a cycle, hiding `DEFAULT_MODEL`: 422, nothing
/// stored), stored with its audit entry, published for the store-free `models` function, and in
/// force on this instance at once (on the others within about a second). An unknown model is
/// 404. When publishing fails the change is stored (and holds for turns) and the blob store's
/// error is answered: the same change again publishes it.
pub async fn update_model(
    conn: &Conn,
    blobs: &crate::blobs::BlobStore,
    live: &LiveCatalog,
    actor: &User,
    id: &str,
    changes: ModelChanges,
) -> Result<AdminModel> {
    if !live.current().every().any(|m| m.id == id) {
        return Err(Error::NotFound);
    }
    let patch = serde_json::to_value(&changes).map_err(|e| Error::Internal(e.to_string()))?;
    let mut settings = conn.model_settings().await?;
    match settings.iter_mut().find(|s| s.id == id) {
        Some(s) => crate::models::merge(&mut s.changes, patch.clone()),
        None => settings.push(crate::store::ModelSetting {
            id: id.to_string(),
            changes: patch.clone(),
            updated_at: String::new(),
        }),
    }
    let catalog = live.with_settings(&settings).map_err(|e| {
        let mut errors = FieldErrors::default();
        for problem in e.0 {
            let field = ["pricing", "fallback", "enabled"]
                .into_iter()
                .find(|f| problem.contains(f))
                .map(|f| if f == "fallback" { "fallbacks" } else { f })
                .unwrap_or("body");
            errors.push(FieldError::new(field, problem));
        }
        Error::from(errors)
    })?;
    let merged = settings
        .iter()
        .find(|s| s.id == id)
        .map(|s| s.changes.clone())
        .unwrap_or_default();
    let audit = NewAuditEntry {
        actor_id: actor.id,
        action: "model.update",
        target_type: Some("model"),
        target_id: Some(id.to_string()),
        details: Some(patch),
    };
    conn.put_model_setting(id, &merged, audit).await?;
    let model = catalog
        .every()
        .find(|m| m.id == id)
        .cloned()
        .ok_or(Error::NotFound)?;
    live.set(catalog);
    // Read again after the commit, so the published copy holds what other admins stored meanwhile
    // (and this change's time).
    let settings = conn.model_settings().await?;
    live.publish(blobs, &settings).await?;
    Ok(admin_model(model, &settings))
}

/// Writes an audit entry for an admin's read of others' data.
async fn record(
    conn: &Conn,
    actor: &User,
    action: &str,
    target_type: &str,
    target_id: String,
) -> Result<()> {
    conn.insert_audit(NewAuditEntry {
        actor_id: actor.id,
        action,
        target_type: Some(target_type),
        target_id: (!target_id.is_empty()).then_some(target_id),
        details: None,
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_take_dates_and_times_and_refuse_bad_ones() {
        let now = time::macros::datetime!(2026-12-01 12:00:00 UTC);
        let w = Window::parse(Some("2026-11-01"), Some("2026-11-30"), now).unwrap();
        assert_eq!(w.from, time::macros::datetime!(2026-11-01 00:00:00 UTC));
        assert_eq!(w.to, time::macros::datetime!(2026-12-01 00:00:00 UTC));
        let w = Window::parse(Some("2026-11-01T10:00:00+02:00"), None, now).unwrap();
        assert_eq!(w.from, time::macros::datetime!(2026-11-01 08:00:00 UTC));
        assert_eq!(w.to, now);
        let w = Window::parse(None, None, now).unwrap();
        assert_eq!(w.to - w.from, Duration::days(30));
        for (from, to) in [
            (Some("yesterday"), None),
            (Some("2026-13-01"), None),
            (Some("2026-11-02"), Some("2026-11-01")),
            (Some("2024-01-01"), Some("2026-01-01")),
        ] {
            assert!(Window::parse(from, to, now).is_err(), "{from:?} {to:?}");
        }
    }

    #[test]
    fn whole_days_come_from_the_rollup_and_partial_ones_from_the_rows() {
        let now = time::macros::datetime!(2026-12-01 12:00:00 UTC);
        let w = Window::parse(Some("2026-11-01"), Some("2026-11-30"), now).unwrap();
        let r = w.ranges();
        assert_eq!(r.days, ("2026-11-01".into(), "2026-12-01".into()));
        assert_eq!(r.head.0, r.head.1, "no partial first day");
        assert_eq!(r.tail.0, r.tail.1, "no partial last day");
        let w = Window::parse(
            Some("2026-11-01T06:00:00Z"),
            Some("2026-11-03T07:30:00Z"),
            now,
        )
        .unwrap();
        let r = w.ranges();
        assert_eq!(r.days, ("2026-11-02".into(), "2026-11-03".into()));
        assert_eq!(
            r.head,
            (
                "2026-11-01T06:00:00.000000Z".into(),
                "2026-11-02T00:00:00.000000Z".into()
            )
        );
        assert_eq!(
            r.tail,
            (
                "2026-11-03T00:00:00.000000Z".into(),
                "2026-11-03T07:30:00.000000Z".into()
            )
        );
        // Within one day: the rows only.
        let w = Window::parse(
            Some("2026-11-01T06:00:00Z"),
            Some("2026-11-01T08:00:00Z"),
            now,
        )
        .unwrap();
        let r = w.ranges();
        assert_eq!(r.days.0, r.days.1);
        assert_eq!(
            r.head,
            (
                crate::ids::format_time(w.from),
                crate::ids::format_time(w.to)
            )
        );
    }
}
