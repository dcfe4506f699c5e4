//! Answers that may be larger than Lambda carries (6 MB a response, less once base64-encoded):
//! exports and archives.

use axum::{
    body::Body,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::{
    blobs::{BlobError, BlobKey},
    error::{Error, Result},
    ids::UserId,
    state::AppState,
};

/// How long the link to a stored answer works.
const LINK_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Answers `chunks` inline while they stay within `MAX_INLINE_ANSWER_BYTES`, or where the blob
/// store presigns (S3, deployed) stores them under `exports/` as they come and answers
/// 303 See Other to a presigned GET of them (named `filename`, typed `content_type`). Locally
/// there is no Lambda limit: the answer streams, whatever its size.
pub async fn answer(
    state: &AppState,
    user_id: UserId,
    content_type: &str,
    filename: &str,
    mut chunks: impl Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'static,
) -> Result<Response> {
    let disposition = crate::attachments::content_disposition(filename);
    if !state.blobs().presigns() {
        return Ok(attachment(
            content_type,
            &disposition,
            Body::from_stream(chunks),
        ));
    }
    // Read up to the limit: an answer that ends within it goes inline.
    let limit = state.config().http.max_inline_answer_bytes;
    let mut head: Vec<Bytes> = Vec::new();
    let mut size = 0;
    while size <= limit {
        match chunks.next().await {
            Some(chunk) => {
                let chunk = chunk.map_err(|e| Error::Internal(e.to_string()))?;
                size += chunk.len();
                head.push(chunk);
            }
            None => {
                let body = Body::from(Bytes::from(head.concat()));
                return Ok(attachment(content_type, &disposition, body));
            }
        }
    }
    let key = BlobKey::export(user_id, uuid::Uuid::now_v7());
    let mut writer = state.blobs().writer(&key, content_type).await?;
    let mut all = futures_util::stream::iter(head.into_iter().map(Ok)).chain(chunks);
    while let Some(chunk) = all.next().await {
        let written = match chunk {
            Ok(chunk) => writer.write(chunk).await,
            Err(e) => Err(BlobError::Io(e.to_string())),
        };
        if let Err(e) = written {
            writer.abort().await;
            return Err(e.into());
        }
    }
    writer.finish().await?;
    let url = state
        .blobs()
        .presign_get(&key, content_type, &disposition, LINK_TTL)
        .await?
        .ok_or_else(|| Error::Internal("the blob store stopped presigning".into()))?;
    let location = HeaderValue::from_str(&url)
        .map_err(|_| Error::Internal("a presigned URL is not a header".into()))?;
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response())
}

fn attachment(content_type: &str, disposition: &str, body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition.to_string()),
        ],
        body,
    )
        .into_response()
}
