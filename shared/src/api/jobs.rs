//! Work too large for a request: unpacking a project's zip and indexing a knowledge document. A
//! request that makes such work stores its input under the job's prefix (`project-zips/`,
//! `knowledge/`) and calls [`dispatch`]. Deployed (`UNPACK_IN_WORKER`), the object's "Object
//! Created" event reaches the `unpacker` worker, which runs the job; locally, a task of the process
//! runs it at once. Either way it is [`run`], and each job is idempotent (a redelivered event, or a
//! worker and a sweep, do it once).

use crate::{
    error::Result,
    ids::{AttachmentId, DocumentId, UserId},
    knowledge,
    projects::{archive::ZipRules, uploads::unpack_stored},
    state::AppState,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Job {
    /// A checked project zip (`project-zips/<user id>/<upload id>`) to unpack.
    Unpack {
        user_id: UserId,
        upload_id: AttachmentId,
    },
    /// A knowledge document's text (`knowledge/<user id>/<document id>`) to index.
    Index {
        user_id: UserId,
        document_id: DocumentId,
    },
}

impl Job {
    /// The job a stored object stands for; `None` for any other object.
    pub(crate) fn for_key(key: &str) -> Option<Job> {
        if let Some((user_id, upload_id)) = ids_under(key, "project-zips/") {
            return Some(Job::Unpack { user_id, upload_id });
        }
        ids_under(key, "knowledge/").map(|(user_id, document_id)| Job::Index {
            user_id,
            document_id,
        })
    }
}

fn ids_under<T: std::str::FromStr>(key: &str, prefix: &str) -> Option<(UserId, T)> {
    let (user, id) = key.strip_prefix(prefix)?.split_once('/')?;
    Some((user.parse().ok()?, id.parse().ok()?))
}

/// Runs a job to its end. A store or blob failure is returned (the worker's event is then delivered
/// again); the job's own outcome (a refused zip, a failed embedding) is recorded on its row.
pub(crate) async fn run(state: &AppState, job: Job) -> Result<()> {
    let conn = state.store().conn().await?;
    let config = state.config();
    match job {
        Job::Unpack { user_id, upload_id } => {
            let rules = ZipRules::from(&config.projects);
            unpack_stored(&conn, state.blobs(), &rules, user_id, upload_id).await?;
        }
        Job::Index {
            user_id,
            document_id,
        } => {
            let embedding = knowledge::Embedding::new(&config.providers, state.providers());
            let chunk = knowledge::IndexSettings::from(&config.knowledge).chunk;
            knowledge::index_stored(&conn, state.blobs(), embedding, chunk, user_id, document_id)
                .await?;
        }
    }
    Ok(())
}

/// Starts a job a request made: deployed, nothing to do here (the stored object's event reaches the
/// worker); locally, a task of this process runs it.
pub(crate) fn dispatch(state: &AppState, job: Job) {
    if state.config().projects.unpack_in_worker {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(e) = run(&state, job).await {
            tracing::error!(error = %e, ?job, "a background job failed");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_named_by_its_object_key() {
        let user_id = UserId::new();
        let upload_id = AttachmentId::new();
        assert_eq!(
            Job::for_key(&format!("project-zips/{user_id}/{upload_id}")),
            Some(Job::Unpack { user_id, upload_id })
        );
        let document_id = DocumentId::new();
        assert_eq!(
            Job::for_key(&format!("knowledge/{user_id}/{document_id}")),
            Some(Job::Index {
                user_id,
                document_id
            })
        );
        for other in [
            format!("projects/{user_id}/{upload_id}"),
            "project-zips/not/ids".to_string(),
            format!("attachments/{user_id}/{upload_id}"),
            format!("attachments/{user_id}/{document_id}"),
        ] {
            assert_eq!(Job::for_key(&other), None, "{other}");
        }
    }
}
