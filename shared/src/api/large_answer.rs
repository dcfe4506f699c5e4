//! Answers that may be larger than Lambda carries (6 MB a response, less once base64-encoded):
//! exports and archives.

use axum::{
    body::Body,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::{blobs::BlobKey, error::Result, ids::UserId, state::AppState};

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
    chunks: impl Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'static,
) -> Result<Response> {
    let disposition = crate::attachments::content_disposition(filename);
    let mut chunks = chunks;
    let limit = state.config().max_inline_answer_bytes;
    let mut head: Vec<Bytes> = Vec::new();
    let mut size = 0;
    let presigns = state.blobs().presigns();
    while !presigns || size <= limit {
        match chunks.next().await {
            Some(chunk) => {
                let chunk = chunk.map_err(|e| crate::error::Error::Internal(e.to_string()))?;
                size += chunk.len();
                head.push(chunk);
            }
            None => return Ok(inline(content_type, &disposition, head.concat().into())),
        }
        if !presigns {
            // Nothing to redirect to: the rest streams after what was read.
            let head = futures_util::stream::iter(head.into_iter().map(Ok::<_, std::io::Error>));
            return Ok(streamed(content_type, &disposition, head.chain(chunks)));
        }
    }
    let key = BlobKey::export(user_id, uuid::Uuid::now_v7());
    let mut writer = state.blobs().writer(&key, content_type).await?;
    for chunk in head {
        writer.write(chunk).await?;
    }
    while let Some(chunk) = chunks.next().await {
        let written = match chunk {
            Ok(chunk) => writer.write(chunk).await,
            Err(e) => Err(crate::blobs::BlobError::Io(e.to_string())),
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
        .ok_or_else(|| crate::error::Error::Internal("the blob store stopped presigning".into()))?;
    let location = HeaderValue::from_str(&url)
        .map_err(|_| crate::error::Error::Internal("a presigned URL is not a header".into()))?;
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response())
}

fn inline(content_type: &str, disposition: &str, body: Bytes) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition.to_string()),
        ],
        body,
    )
        .into_response()
}

fn streamed(
    content_type: &str,
    disposition: &str,
    chunks: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition.to_string()),
        ],
        Body::from_stream(chunks),
    )
        .into_response()
}
