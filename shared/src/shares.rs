//! Share links: a read-only snapshot of a conversation's active path, opened without signing in
//! by an unguessable token, revoked by its owner, and copied into a conversation of one's own.

use crate::{
    config::ChatConfig,
    error::{Error, Result},
    ids::{ConversationId, MessageId, ShareId, UserId},
    models::Catalog,
    store::{Conn, Conversation, Share, SharedMessage, Snapshot},
};

/// A token's random bytes: 256 bits (base64url, 43 characters).
const TOKEN_BYTES: usize = 32;
const TOKEN_CHARS: usize = 43;

fn new_token() -> Result<String> {
    use base64::Engine;
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `token` could be one at all: anything else is answered as missing without a query.
fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_CHARS
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Snapshots the user's conversation's active path as a new share link.
pub async fn create(
    conn: &Conn,
    config: &ChatConfig,
    user_id: UserId,
    conversation_id: ConversationId,
) -> Result<Share> {
    let token = new_token()?;
    match conn
        .create_share(
            user_id,
            conversation_id,
            &token,
            config.max_share_messages,
            config.max_shares_per_user,
        )
        .await?
    {
        Snapshot::Created(share) => Ok(share),
        Snapshot::NotFound => Err(Error::NotFound),
        Snapshot::TooLong => Err(Error::invalid(
            "conversation",
            format!(
                "the active path holds more than the {} messages a share link may show",
                config.max_share_messages
            ),
        )),
    }
}

/// The shares of the user's conversation, newest first.
pub async fn list(
    conn: &Conn,
    user_id: UserId,
    conversation_id: ConversationId,
) -> Result<Vec<Share>> {
    crate::conversations::get(conn, user_id, conversation_id).await?;
    Ok(conn.conversation_shares(conversation_id, user_id).await?)
}

/// Revokes one of the user's shares: its link answers 404 from now on.
pub async fn revoke(conn: &Conn, user_id: UserId, id: ShareId) -> Result<()> {
    if conn.delete_share(id, user_id).await? {
        Ok(())
    } else {
        Err(Error::NotFound)
    }
}

/// What a link shows.
pub async fn open(conn: &Conn, token: &str) -> Result<(Share, Vec<SharedMessage>)> {
    if !well_formed(token) {
        return Err(Error::NotFound);
    }
    conn.shared(token).await?.ok_or(Error::NotFound)
}

/// A new conversation of the user's holding the snapshot's messages, on the default model.
pub async fn fork(
    conn: &Conn,
    catalog: &Catalog,
    user_id: UserId,
    token: &str,
) -> Result<Conversation> {
    let (share, messages) = open(conn, token).await?;
    let ids: Vec<MessageId> = messages.iter().map(|_| MessageId::new()).collect();
    conn.fork_share(
        share.id,
        user_id,
        ConversationId::new(),
        catalog.default_model(),
        &ids,
    )
    .await?
    .ok_or(Error::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_256_random_bits_and_others_are_refused_unread() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert!(well_formed(&a) && well_formed(&b));
        for bad in [
            "",
            "short",
            &"a".repeat(44),
            &format!("{}!", &a[..42]),
            &a[..42],
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
    }
}
