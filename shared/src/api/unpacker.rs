//! The `unpacker` worker: the work too large for a request. It unpacks project zips too large to
//! unpack inside the request that completes their upload (the checked zip under `project-zips/`),
//! and indexes knowledge documents too large to index inside the request that adds them (their
//! text under `knowledge/`). Deployed, it runs on the objects' "Object Created" events
//! (EventBridge); an S3 notification's `Records` are understood too. Events arrive at least once:
//! each upload is unpacked and each document indexed once (see
//! [`crate::projects::uploads::unpack_stored`], [`crate::knowledge::index_stored`]), and other
//! objects under the prefixes are ignored.

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use crate::{
    function::{BoxError, Function, Limits, Needs, Transport},
    ids::{AttachmentId, DocumentId, UserId},
    knowledge,
    projects::{archive::ZipRules, uploads::unpack_stored},
    state::AppState,
};

pub const FUNCTION: Function = Function {
    name: "unpacker",
    transport: Transport::Worker(handle),
    // Up to MAX_UPLOAD_BYTES of zip in memory, and the time to inflate it or embed a document.
    limits: Limits {
        timeout_secs: 900,
        memory_mb: 1024,
    },
    needs: Needs::Store,
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

/// The upload a key belongs to: `project-zips/<user id>/<upload id>`.
fn upload_of(key: &str) -> Option<(UserId, AttachmentId)> {
    ids_under(key, "project-zips/")
}

/// The document a key belongs to: `knowledge/<user id>/<document id>`.
fn document_of(key: &str) -> Option<(UserId, DocumentId)> {
    ids_under(key, "knowledge/")
}

fn ids_under<T: std::str::FromStr>(key: &str, prefix: &str) -> Option<(UserId, T)> {
    let (user, id) = key.strip_prefix(prefix)?.split_once('/')?;
    Some((user.parse().ok()?, id.parse().ok()?))
}

fn handle(state: AppState, event: Value) -> BoxFuture<'static, Result<Value, BoxError>> {
    Box::pin(async move {
        let rules = ZipRules::from(&state.config().projects);
        let conn = state.store().conn().await?;
        let mut seen = 0;
        let mut documents = 0;
        for key in keys(&event) {
            // A store or blob failure fails the event, so that it is delivered again.
            if let Some((user_id, id)) = upload_of(&key) {
                unpack_stored(&conn, state.blobs(), &rules, user_id, id).await?;
                seen += 1;
            } else if let Some((user_id, id)) = document_of(&key) {
                let embedding =
                    knowledge::Embedding::new(&state.config().providers, state.providers());
                let chunk = knowledge::IndexSettings::from(&state.config().knowledge).chunk;
                knowledge::index_stored(&conn, state.blobs(), embedding, chunk, user_id, id)
                    .await?;
                documents += 1;
            }
        }
        Ok(json!({ "uploads": seen, "documents": documents }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_either_event_shape() {
        let bridge = json!({"detail-type": "Object Created", "detail": {"object": {"key": "project-zips/a/b"}}});
        assert_eq!(keys(&bridge), vec!["project-zips/a/b"]);
        let records = json!({"Records": [{"s3": {"object": {"key": "x"}}}, {"s3": {"object": {"key": "y"}}}]});
        assert_eq!(keys(&records), vec!["x", "y"]);
        assert!(keys(&json!({})).is_empty());
        let user = UserId::new();
        let id = AttachmentId::new();
        assert_eq!(
            upload_of(&format!("project-zips/{user}/{id}")),
            Some((user, id))
        );
        assert_eq!(upload_of(&format!("projects/{user}/{id}")), None);
        assert_eq!(upload_of("project-zips/not/ids"), None);
        assert_eq!(upload_of(&format!("attachments/{user}/{id}")), None);
        let doc = DocumentId::new();
        assert_eq!(
            document_of(&format!("knowledge/{user}/{doc}")),
            Some((user, doc))
        );
        assert_eq!(document_of(&format!("attachments/{user}/{doc}")), None);
    }
}
