//! The `unpacker` worker: unpacks project zips too large to unpack inside the request that
//! completes their upload. Deployed, it runs on the "Object Created" event (EventBridge) of the
//! checked zip under `attachments/`; an S3 notification's `Records` are understood too. Events
//! arrive at least once: unpacking a given upload happens once (see
//! [`crate::projects::archive::unpack_stored`]), and other objects under the prefix are ignored.

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use crate::{
    function::{BoxError, Function, Limits, Transport},
    ids::{AttachmentId, UserId},
    projects::archive::{unpack_stored, ZipRules},
    state::AppState,
};

pub const FUNCTION: Function = Function {
    name: "unpacker",
    transport: Transport::Worker(handle),
    // Up to MAX_UPLOAD_BYTES of zip in memory, and the time to inflate it.
    limits: Limits {
        timeout_secs: 900,
        memory_mb: 1024,
    },
};

/// The object keys an event names: EventBridge's `detail.object.key`, or each S3 record's key.
fn keys(event: &Value) -> Vec<String> {
    let from_bridge = event["detail"]["object"]["key"]
        .as_str()
        .map(str::to_string);
    let from_records = event["Records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["s3"]["object"]["key"].as_str())
        // S3 notifications URL-encode keys; ours are made of ids and slashes only.
        .map(str::to_string);
    from_bridge.into_iter().chain(from_records).collect()
}

/// The upload a key belongs to: `attachments/<user id>/<upload id>`.
fn upload_of(key: &str) -> Option<(UserId, AttachmentId)> {
    let rest = key.strip_prefix("attachments/")?;
    let (user, id) = rest.split_once('/')?;
    Some((user.parse().ok()?, id.parse().ok()?))
}

fn handle(state: AppState, event: Value) -> BoxFuture<'static, Result<Value, BoxError>> {
    Box::pin(async move {
        let rules = ZipRules::from(state.config());
        let conn = state.store().conn().await?;
        let mut seen = 0;
        for key in keys(&event) {
            let Some((user_id, id)) = upload_of(&key) else {
                continue;
            };
            // A store or blob failure fails the event, so that it is delivered again.
            unpack_stored(&conn, state.blobs(), &rules, user_id, id).await?;
            seen += 1;
        }
        Ok(json!({ "uploads": seen }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_either_event_shape() {
        let bridge = json!({"detail-type": "Object Created", "detail": {"object": {"key": "attachments/a/b"}}});
        assert_eq!(keys(&bridge), vec!["attachments/a/b"]);
        let records = json!({"Records": [{"s3": {"object": {"key": "x"}}}, {"s3": {"object": {"key": "y"}}}]});
        assert_eq!(keys(&records), vec!["x", "y"]);
        assert!(keys(&json!({})).is_empty());
        let user = UserId::new();
        let id = AttachmentId::new();
        assert_eq!(
            upload_of(&format!("attachments/{user}/{id}")),
            Some((user, id))
        );
        assert_eq!(upload_of(&format!("projects/{user}/{id}")), None);
        assert_eq!(upload_of("attachments/not/ids"), None);
    }
}
