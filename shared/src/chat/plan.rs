//! A turn's plan: the model call over the history (or a client's own turns), what it may cost,
//! and its reservation against the user's budget, with the knowledge sources retrieved.

use super::*;

/// What a turn's plan is made from.
pub(super) struct Planning<'a> {
    pub(super) model: &'a Model,
    pub(super) summary: Option<&'a str>,
    /// The conversation's recent history, ending with this message.
    pub(super) history: Vec<Message>,
    pub(super) max_tokens: u32,
    pub(super) temperature: Option<f32>,
}

/// A turn's plan, reserved against the budget.
pub(super) struct Reserved {
    pub(super) plan: context::Plan,
    /// The system prompt with the knowledge sources, when there are any.
    pub(super) base_system: String,
    pub(super) holds: Holds,
    pub(super) citations: Vec<Citation>,
}

impl Planning<'_> {
    /// The model call over the history, and what it may cost at most (with the summary call it
    /// needs, if any).
    fn plan(&self, system: &str) -> (context::Plan, u64) {
        let mut plan = context::plan(
            self.model,
            system,
            self.summary,
            &self.history,
            self.max_tokens,
            self.temperature,
        );
        // A long newest message may leave less room than asked for: the answer gets what fits.
        plan.request.max_tokens =
            context::answer_room(self.model, &plan.request).clamp(1, self.max_tokens);
        let mut cost = plan.request.most_tokens();
        if !plan.to_summarise.is_empty() {
            cost += context::summary_request(self.model, self.summary, &plan.to_summarise)
                .most_tokens();
        }
        (plan, cost)
    }

    /// Plans the call, reserves its cost (with `file_tokens`, the files it will carry), and, with
    /// `knowledge_tokens`, retrieves the sources:
    /// the reservation covers their room and is taken before the query is embedded, so a turn
    /// refused for its budget makes no embedding call and bills nothing. Retrieval runs before the
    /// model call (whatever the model), so sources and citations work with every provider.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn reserve(
        &self,
        conn: &Conn,
        embedding: knowledge::Embedding<'_>,
        budget: &Budget,
        query: &str,
        client: Option<ClientTurns>,
        mut base_system: String,
        knowledge_tokens: Option<usize>,
        file_tokens: u64,
    ) -> Result<Reserved> {
        let (mut plan, cost) = match client {
            Some(client) => client_plan(
                self.model,
                &base_system,
                client,
                self.max_tokens,
                self.temperature,
            )?,
            None => self.plan(&base_system),
        };
        let room = knowledge_tokens.map_or(0, |t| t as u64 + 1);
        let mut holds = quotas::reserve(conn, budget, cost + room + file_tokens).await?;
        let mut citations = Vec::new();
        if let Some(tokens) = knowledge_tokens {
            let retrieved = knowledge::context_for(conn, embedding, budget, query, tokens).await;
            match retrieved {
                Ok(Some((sources, cited))) => {
                    base_system = format!("{base_system}\n\n{sources}");
                    citations = cited;
                    let (with_sources, final_cost) = self.plan(&base_system);
                    plan = with_sources;
                    // Sources that push history into a summary call may cost a little more.
                    if final_cost > cost + room {
                        if let Err(e) = holds.extend(conn, final_cost - cost - room).await {
                            holds.release(conn).await;
                            return Err(e);
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    holds.release(conn).await;
                    return Err(e);
                }
            }
        }
        Ok(Reserved {
            plan,
            base_system,
            holds,
            citations,
        })
    }
}

/// The call over a client's own turns: all of them, or a refusal when they leave no room for an
/// answer; its cost is the input and the answer's room.
pub(super) fn client_plan(
    model: &Model,
    system: &str,
    client: ClientTurns,
    max_tokens: u32,
    temperature: Option<f32>,
) -> Result<(context::Plan, u64)> {
    let mut request = ModelRequest {
        system: Some(system.to_string()),
        turns: client.turns,
        temperature,
        max_tokens,
        purpose: Purpose::Chat,
        tools: client.tools,
        tool_choice: client.tool_choice,
    };
    let room = context::answer_room(model, &request);
    if room == 0 {
        return Err(Error::invalid(
            "messages",
            format!(
                "the messages take more than the {} tokens of {}'s context window",
                model.context_window, model.id
            ),
        ));
    }
    request.max_tokens = room.min(max_tokens);
    let cost = request.most_tokens();
    Ok((
        context::Plan {
            request,
            to_summarise: Vec::new(),
        },
        cost,
    ))
}
