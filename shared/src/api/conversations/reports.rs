//! What a conversation cost (per model, per message) and the conversation exported.

use super::*;

/// The usage and export routes.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(conversation_usage))
        .routes(routes!(export_conversation))
        .routes(routes!(message_usage))
}

/// One model call's usage and cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageRow {
    #[schema(value_type = String)]
    pub message_id: MessageId,
    pub model: String,
    /// `chat` for the answer, `summary` for folding older turns into the rolling summary.
    pub kind: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    /// Input tokens written to the provider's prompt cache (part of `input_tokens`; 0 where the
    /// provider reports none).
    pub cache_write_tokens: i64,
    /// Reasoning tokens (part of `output_tokens`; 0 where the provider reports none).
    pub reasoning_tokens: i64,
    pub cost_usd: f64,
}

impl From<UsageRecord> for UsageRow {
    fn from(u: UsageRecord) -> Self {
        UsageRow {
            message_id: u.message_id,
            model: u.model,
            kind: u.kind,
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cached_tokens: u.cached_tokens,
            cache_write_tokens: u.cache_write_tokens,
            reasoning_tokens: u.reasoning_tokens,
            cost_usd: u.cost_usd,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct TotalsOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    input_tokens: i64,
    output_tokens: i64,
    cached_tokens: i64,
    cost_usd: f64,
}

impl TotalsOut {
    fn new(t: UsageTotals, with_model: bool) -> Self {
        TotalsOut {
            model: with_model.then_some(t.model),
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            cached_tokens: t.cached_tokens,
            cost_usd: t.cost_usd,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct UsageReport {
    /// The active path's.
    total: TotalsOut,
    by_model: Vec<TotalsOut>,
    /// Every branch's (regenerated answers and edits included): what was billed. Equals `total`
    /// until the conversation branches.
    all_branches: TotalsOut,
}

#[derive(Debug, Serialize, ToSchema)]
struct UsageList {
    items: Vec<UsageRow>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ExportFormat {
    #[default]
    Json,
    #[serde(alias = "md")]
    Markdown,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ExportQuery {
    /// `json` (default) or `markdown`.
    #[param(value_type = Option<String>)]
    format: Option<ExportFormat>,
}

/// Tokens and cost of the conversation's active path, per model and in total (summaries
/// included), and of every branch.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/usage", tag = "conversations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Conversation id")),
    responses((status = 200, body = UsageReport), (status = 404, body = Problem)))]
async fn conversation_usage(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<ConversationId>,
) -> Result<Json<UsageReport>> {
    record_conversation(id);
    let conn = state.store().conn().await?;
    let usage = conversations::usage(&conn, user.id, id).await?;
    Ok(Json(UsageReport {
        total: TotalsOut::new(usage.total, false),
        all_branches: TotalsOut::new(usage.all_branches, false),
        by_model: usage
            .by_model
            .into_iter()
            .map(|t| TotalsOut::new(t, true))
            .collect(),
    }))
}

#[derive(Serialize, ToSchema)]
struct ExportJson {
    conversation: ConversationOut,
    messages: Vec<MessageOut>,
}

/// The whole conversation as JSON or Markdown.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/export", tag = "conversations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Conversation id"), ExportQuery),
    responses((status = 200, body = ExportJson), (status = 200, content_type = "text/markdown", body = String), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn export_conversation(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<ConversationId>,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Response> {
    record_conversation(id);
    let format = query.format.unwrap_or_default();
    let conn = state.store().conn().await?;
    let (conversation, messages) = conversations::export(&conn, user.id, id).await?;
    let extension = match format {
        ExportFormat::Json => "json",
        ExportFormat::Markdown => "md",
    };
    let filename = format!("conversation-{}.{extension}", conversation.id);
    let (content_type, body) = match format {
        ExportFormat::Markdown => (
            "text/markdown; charset=utf-8",
            conversations::to_markdown(&conversation, &messages).into_bytes(),
        ),
        ExportFormat::Json => {
            let body = ExportJson {
                conversation: conversation.into(),
                messages: messages.into_iter().map(Into::into).collect(),
            };
            let json = serde_json::to_vec(&body)
                .map_err(|e| crate::error::Error::Internal(e.to_string()))?;
            ("application/json", json)
        }
    };
    let chunks = futures_util::stream::iter([Ok(bytes::Bytes::from(body))]);
    crate::api::large_answer::answer(&state, user.id, content_type, &filename, chunks).await
}

/// The usage row(s) of one message: the answer, and the summary made during its turn if any.
#[utoipa::path(get, path = "/api/v1/messages/{id}/usage", tag = "conversations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Message id")),
    responses((status = 200, body = UsageList), (status = 404, body = Problem)))]
async fn message_usage(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<MessageId>,
) -> Result<Json<UsageList>> {
    let conn = state.store().conn().await?;
    let rows = conversations::message_usage(&conn, user.id, id).await?;
    Ok(Json(UsageList {
        items: rows.into_iter().map(Into::into).collect(),
    }))
}
