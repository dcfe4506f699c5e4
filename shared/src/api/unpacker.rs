//! The `unpacker` worker: the work too large for a request. It unpacks project zips too large to
//! unpack inside the request that completes their upload (the checked zip under `project-zips/`),
//! and indexes knowledge documents too large to index inside the request that adds them (their
//! text under `knowledge/`). Deployed, it runs on the objects' "Object Created" events
//! (EventBridge); an S3 notification's `Records` are understood too. Each key names a job
//! ([`super::jobs`]); events arrive at least once, each job runs once, and other objects under the
//! prefixes are ignored.

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::jobs::{self, Job};
use crate::{
    function::{BoxError, Function, Limits, Needs, Transport},
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

fn handle(state: AppState, event: Value) -> BoxFuture<'static, Result<Value, BoxError>> {
    Box::pin(async move {
        let (mut uploads, mut documents) = (0, 0);
        for job in keys(&event).iter().filter_map(|key| Job::for_key(key)) {
            // A store or blob failure fails the event, so that it is delivered again.
            jobs::run(&state, job).await?;
            match job {
                Job::Unpack { .. } => uploads += 1,
                Job::Index { .. } => documents += 1,
            }
        }
        Ok(json!({ "uploads": uploads, "documents": documents }))
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
    }
}
