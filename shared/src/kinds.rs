//! The small values that the store, the domain, the providers and the API all speak: account roles,
//! message roles and states, and a model's tool call. A leaf module: it depends on nothing in the
//! crate.

use serde::{Deserialize, Serialize};

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The value for its stored text, if it is one.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

text_enum!(
    /// What an account may do.
    Role { User = "user", Admin = "admin" }
);

text_enum!(
    /// Who wrote a message.
    MessageRole { User = "user", Assistant = "assistant", System = "system" }
);

text_enum!(
    /// How a message ended: `incomplete` when the client went away mid-answer, `failed` when the
    /// model call failed (with any partial text).
    MessageStatus { Complete = "complete", Incomplete = "incomplete", Failed = "failed" }
);

text_enum!(
    /// An attachment is `pending` from a presigned upload until it is completed (checked), then `ready`.
    AttachmentStatus { Pending = "pending", Ready = "ready" }
);

text_enum!(
    /// What an upload is for: an attachment, or the zip of a new project.
    UploadPurpose { Attachment = "attachment", Project = "project" }
);

text_enum!(
    /// A knowledge document is `ready` once indexed; one too large for its request waits as
    /// `indexing` for the worker, which leaves `failed` when its embedding calls fail.
    DocumentStatus { Indexing = "indexing", Ready = "ready", Failed = "failed" }
);

text_enum!(
    /// Whether an agent takes new turns.
    AgentStatus { Active = "active", Inactive = "inactive" }
);

/// A model's call of a tool: what providers return, the agent runs, and an answer keeps (as JSON,
/// for the calls handed to a client unrun).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id for the call, echoed with its output.
    pub id: String,
    pub name: String,
    pub input: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_matches_serde() {
        for s in [
            MessageStatus::Complete,
            MessageStatus::Incomplete,
            MessageStatus::Failed,
        ] {
            assert_eq!(MessageStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(Role::parse("admin"), Some(Role::Admin));
        assert_eq!(Role::parse("root"), None);
        assert_eq!(
            MessageRole::parse("assistant"),
            Some(MessageRole::Assistant)
        );
    }
}
