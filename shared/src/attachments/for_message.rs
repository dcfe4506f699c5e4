//! The attachments sent with a chat message: checked against the message's model, then read.

use super::*;
use crate::{
    models::Model,
    providers::{FileKind, FilePart},
    store::AttachmentRef,
};

/// The attachments named for a message (`attachment_ids[i]` in errors), checked (the user's own,
/// ready, not sent before, at most `max_bytes`, of a kind the model reads) and read from the blob
/// store. `sent_with` names the message they may already belong to (a regenerated answer re-reads
/// its user message's files).
pub async fn for_message(
    conn: &Conn,
    blobs: &BlobStore,
    user_id: UserId,
    ids: &[AttachmentId],
    max_bytes: u64,
    model: &Model,
    sent_with: Option<crate::ids::MessageId>,
) -> Result<(Vec<AttachmentRef>, Vec<FilePart>)> {
    if ids.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let found = conn.attachments_by_ids(user_id, ids).await?;
    let mut errors = FieldErrors::default();
    let mut chosen = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let field = format!("attachment_ids[{i}]");
        let Some(a) = found
            .iter()
            .find(|a| a.id == *id && a.purpose == UploadPurpose::Attachment)
        else {
            errors.push(FieldError::new(field, "no such attachment"));
            continue;
        };
        let kind = if a.content_type.starts_with("image/") {
            FileKind::Image
        } else if a.content_type == "application/pdf" {
            FileKind::Pdf
        } else {
            FileKind::Text
        };
        let problem = if a.status != AttachmentStatus::Ready {
            Some("is not complete yet".to_string())
        } else if a.message_id.is_some() && a.message_id != sent_with {
            Some("was already sent with another message".to_string())
        } else if a.size as u64 > max_bytes {
            Some(format!(
                "is larger than the {} bytes a model is sent",
                max_bytes
            ))
        } else if kind == FileKind::Image && !model.capabilities.vision {
            Some(format!(
                "is an image, and {} does not read images",
                model.id
            ))
        } else if kind == FileKind::Pdf && !model.capabilities.documents {
            Some(format!(
                "is a PDF, and {} does not read documents",
                model.id
            ))
        } else {
            None
        };
        match problem {
            Some(p) => errors.push(FieldError::new(field, p)),
            None => chosen.push((a, kind)),
        }
    }
    errors.finish()?;
    let mut refs = Vec::with_capacity(chosen.len());
    let mut files = Vec::with_capacity(chosen.len());
    for (a, kind) in chosen {
        let bytes = blobs.read_all(&BlobKey::attachment(user_id, a.id)).await?;
        refs.push(AttachmentRef {
            id: a.id,
            filename: a.filename.clone(),
            content_type: a.content_type.clone(),
            size: a.size,
        });
        files.push(FilePart {
            name: a.filename.clone(),
            media_type: a.content_type.clone(),
            kind,
            bytes: bytes.into(),
        });
    }
    Ok((refs, files))
}
