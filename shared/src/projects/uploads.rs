//! A project's zip uploaded through a presigned URL: started and completed like an attachment
//! (purpose `project`), then unpacked once, inside the completing request or by the worker, with
//! its outcome kept on the upload; and the sweep of uploads nobody unpacked in time.

use super::archive::{unpack, ZipRules};
use crate::{
    blobs::BlobStore,
    error::{Error, Result},
    ids::UserId,
    store::{Conn, Project},
};

/// A zip the client is about to upload: its name and size.
pub struct ZipUpload<'a> {
    pub filename: &'a str,
    pub size: u64,
}

/// Starts a presigned upload of a project's zip: the attachments' upload machinery (URL, checks,
/// expiry sweep) with the purpose `project`, so the zip never lists or sends as an attachment.
pub async fn start_upload(
    conn: &Conn,
    blobs: &BlobStore,
    keys: &crate::auth::tokens::TokenKeys,
    rules: &crate::attachments::UploadRules,
    user_id: UserId,
    zip: ZipUpload<'_>,
    local_base: &str,
) -> Result<(crate::store::Attachment, crate::attachments::UploadTarget)> {
    crate::attachments::start_upload(
        conn,
        blobs,
        keys,
        rules,
        user_id,
        crate::attachments::UploadRequest {
            filename: zip.filename,
            content_type: "application/zip",
            size: zip.size,
        },
        local_base,
    )
    .await
}

/// How completing a project upload ended.
pub enum Completed {
    /// Unpacked inside the request.
    Project(Project),
    /// Checked and kept: too large to unpack inside the request, it is unpacked next (the
    /// unpacker worker on the stored object's event, or a background task locally).
    Unpacking(crate::store::Attachment),
}

/// Completes a presigned project upload: checks the object (size, zip magic, SHA-256), then
/// unpacks it under the same rules as an inline upload when it is at most `max_unpack_bytes`
/// (removing the upload whatever the outcome), or leaves it for [`unpack_stored`].
#[allow(clippy::too_many_arguments)]
pub async fn complete_upload(
    conn: &Conn,
    blobs: &BlobStore,
    rules: &ZipRules,
    max_unpack_bytes: u64,
    user_id: UserId,
    id: crate::ids::AttachmentId,
    name: Option<&str>,
) -> Result<Completed> {
    let upload = crate::attachments::complete(
        conn,
        blobs,
        user_id,
        id,
        crate::kinds::UploadPurpose::Project,
    )
    .await?;
    // A retried completion answers what the first one did.
    if let Some(project_id) = upload.project_id {
        return Ok(Completed::Project(
            super::get(conn, user_id, project_id).await?,
        ));
    }
    if let Some(refusal) = &upload.unpack_error {
        let (field, message) = refusal.split_once(": ").unwrap_or(("file", refusal));
        return Err(Error::invalid(field, message));
    }
    if upload.size as u64 > max_unpack_bytes {
        return Ok(Completed::Unpacking(upload));
    }
    match unpack_once(conn, blobs, rules, &upload, name).await? {
        Some(outcome) => outcome.map(Completed::Project),
        // Another request is unpacking it right now.
        None => Ok(Completed::Unpacking(upload)),
    }
}

/// How long a run holds its claim on an upload: past the worker's 15-minute timeout.
const UNPACK_LEASE: std::time::Duration = std::time::Duration::from_secs(16 * 60);

/// Unpacks a completed project upload if this run can claim it, and records the outcome on the
/// upload (the project, or the refusal) and removes the zip. `None` when it is not to be unpacked
/// by this run (done, refused, or claimed by another); `Some(Err(refusal))` when the archive was
/// refused. A failure of the store or the blob store gives the claim back and is the error.
async fn unpack_once(
    conn: &Conn,
    blobs: &BlobStore,
    rules: &ZipRules,
    upload: &crate::store::Attachment,
    name: Option<&str>,
) -> Result<Option<Result<Project>>> {
    let now = std::time::SystemTime::now();
    let claimed = conn
        .claim_unpack(
            upload.id,
            &crate::ids::format_time(now.into()),
            &crate::ids::format_time((now + UNPACK_LEASE).into()),
        )
        .await?;
    if !claimed {
        return Ok(None);
    }
    let outcome = match unpack_upload(conn, blobs, rules, upload, name).await {
        Err(e @ (Error::Store(_) | Error::Blobs(_) | Error::Internal(_))) => {
            if let Err(release) = conn.release_unpack(upload.id).await {
                tracing::warn!(error = %release, "an unpack claim was not given back");
            }
            return Err(e);
        }
        outcome => outcome,
    };
    match &outcome {
        Ok(project) => {
            conn.record_unpack(upload.id, Some(project.id), None)
                .await?
        }
        Err(refusal) => {
            conn.record_unpack(upload.id, None, Some(&refusal_text(refusal)))
                .await?
        }
    };
    // The outcome is on the upload's row (for retries and its status); the zip itself goes.
    let key = crate::blobs::BlobKey::project_zip(upload.user_id, upload.id);
    if let Err(e) = blobs.delete(&key).await {
        tracing::warn!(error = %e, "an unpacked project upload's zip was not removed");
    }
    Ok(Some(outcome))
}

async fn unpack_upload(
    conn: &Conn,
    blobs: &BlobStore,
    rules: &ZipRules,
    upload: &crate::store::Attachment,
    name: Option<&str>,
) -> Result<Project> {
    let name = match name {
        Some(n) => n.to_string(),
        None => upload
            .filename
            .strip_suffix(".zip")
            .unwrap_or(&upload.filename)
            .to_string(),
    };
    // The zip goes to a temporary file (Lambda's /tmp), so memory holds one entry at a time
    // whatever the archive's size.
    let temp = std::env::temp_dir().join(format!("codechat-unpack-{}.zip", upload.id));
    let unpacked = async {
        let key = crate::blobs::BlobKey::project_zip(upload.user_id, upload.id);
        let mut reader = blobs.read(&key).await?;
        let io =
            |e: std::io::Error| Error::Internal(format!("unpacking through a temporary file: {e}"));
        let mut file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .await
            .map_err(io)?;
        while let Some(chunk) = reader.chunk().await? {
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
                .await
                .map_err(io)?;
        }
        tokio::io::AsyncWriteExt::flush(&mut file)
            .await
            .map_err(io)?;
        let mut file = file.into_std().await;
        std::io::Seek::rewind(&mut file).map_err(io)?;
        unpack(conn, blobs, rules, upload.user_id, &name, file).await
    }
    .await;
    let _ = tokio::fs::remove_file(&temp).await;
    unpacked
}

/// Unpacks a completed project upload left for later, once: a repeated or concurrent call (S3
/// delivers events at least once) or an upload that is not a completed project zip does nothing. The outcome (the
/// project, or why it was refused) is recorded on the upload for its status; the zip is removed.
/// Fails only when the store or the blob store does, so that the event is delivered again.
pub async fn unpack_stored(
    conn: &Conn,
    blobs: &BlobStore,
    rules: &ZipRules,
    user_id: UserId,
    id: crate::ids::AttachmentId,
) -> Result<()> {
    let Some(upload) = conn.attachment(id, user_id).await? else {
        return Ok(());
    };
    unpack_once(conn, blobs, rules, &upload, None).await?;
    Ok(())
}

/// A refusal as the status shows it: the problem's detail and its first field message.
fn refusal_text(e: &Error) -> String {
    let problem = e.problem();
    match problem.errors.first() {
        Some(f) => format!("{}: {}", f.field, f.message),
        None => problem.detail,
    }
}

/// What a stuck upload says when the sweep gives up on it.
const NOT_UNPACKED_IN_TIME: &str = "file: the zip was not unpacked in time; upload it again";

/// Marks completed project uploads that were not unpacked within `deadline` of their start, and
/// that no run holds, as failed, and removes their zips: without it an upload whose worker event
/// was lost (or whose runs all died) would say `unpacking` for ever and its zip stay in the
/// bucket. Runs before each new upload, and when a client asks the status of one overdue; a few at a
/// time, any user's; its failures are only logged, since they are not the caller's.
pub async fn sweep_stuck(conn: &Conn, blobs: &BlobStore, deadline: std::time::Duration) {
    let now = std::time::SystemTime::now();
    let stuck = conn
        .stuck_unpacks(
            &crate::ids::format_time((now - deadline).into()),
            &crate::ids::format_time(now.into()),
            4,
        )
        .await;
    let stuck = match stuck {
        Ok(stuck) => stuck,
        Err(e) => {
            tracing::warn!(error = %e, "the upload sweep could not list stuck uploads");
            return;
        }
    };
    for upload in stuck {
        match conn
            .record_unpack(upload.id, None, Some(NOT_UNPACKED_IN_TIME))
            .await
        {
            Ok(true) => {
                tracing::warn!(upload = %upload.id, "a project upload was not unpacked in time");
                let key = crate::blobs::BlobKey::project_zip(upload.user_id, upload.id);
                if let Err(e) = blobs.delete(&key).await {
                    tracing::warn!(error = %e, "a stuck project upload's zip was not removed");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "the upload sweep could not mark an upload"),
        }
    }
}

/// Where a project upload is: `pending` (not completed), `unpacking`, `done` (with the project)
/// or `failed` (with why).
pub struct UploadStatus {
    pub status: &'static str,
    pub project_id: Option<crate::ids::ProjectId>,
    pub error: Option<String>,
}

pub async fn upload_status(
    conn: &Conn,
    user_id: UserId,
    id: crate::ids::AttachmentId,
) -> Result<UploadStatus> {
    Ok(status_of(project_upload(conn, user_id, id).await?))
}

/// The status a client polls: an upload still `unpacking` past the deadline from its start has
/// the sweep run first (only then: the sweep reads every user's uploads), so it answers `failed`
/// once nobody holds it.
pub async fn polled_status(
    conn: &Conn,
    blobs: &BlobStore,
    deadline: std::time::Duration,
    user_id: UserId,
    id: crate::ids::AttachmentId,
) -> Result<UploadStatus> {
    let upload = project_upload(conn, user_id, id).await?;
    let overdue = crate::ids::parse_time(&upload.created_at)
        .is_some_and(|t| t + deadline < time::OffsetDateTime::now_utc());
    let status = status_of(upload);
    if status.status != "unpacking" || !overdue {
        return Ok(status);
    }
    sweep_stuck(conn, blobs, deadline).await;
    upload_status(conn, user_id, id).await
}

fn status_of(upload: crate::store::Attachment) -> UploadStatus {
    let status = match (&upload.status, &upload.project_id, &upload.unpack_error) {
        (crate::kinds::AttachmentStatus::Pending, _, _) => "pending",
        (_, Some(_), _) => "done",
        (_, _, Some(_)) => "failed",
        _ => "unpacking",
    };
    UploadStatus {
        status,
        project_id: upload.project_id,
        error: upload.unpack_error,
    }
}

async fn project_upload(
    conn: &Conn,
    user_id: UserId,
    id: crate::ids::AttachmentId,
) -> Result<crate::store::Attachment> {
    conn.attachment(id, user_id)
        .await?
        .filter(|a| a.purpose == crate::kinds::UploadPurpose::Project)
        .ok_or(Error::NotFound)
}
