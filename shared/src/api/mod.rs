//! The routers of every function group, and the OpenAPI document generated from them.
//!
//! Each handler carries its `#[utoipa::path]`, and each group's router is an `OpenApiRouter`, so the
//! served routes and the documented routes come from one declaration and cannot drift.

pub mod admin;
pub mod agents;
pub mod attachments;
pub mod auth;
pub mod chat;
pub mod conversations;
mod extract;
pub mod health;
mod jobs;
pub mod knowledge;
pub(crate) mod large_answer;
pub mod mcp_servers;
pub mod models;
pub mod openai;
pub mod projects;
pub mod unpacker;
pub mod users;
pub mod web;
pub mod ws;

use std::sync::OnceLock;

use utoipa::{
    openapi::security::{
        Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme,
    },
    Modify, OpenApi,
};
use utoipa_axum::router::OpenApiRouter;

pub use extract::{AdminUser, ClientIp, CurrentUser, IdPath, PublicBase, SessionUser};
pub use users::UserOut;

use crate::{function::Function, state::AppState};

/// Every function of the service. Adding one: its module here (with its `FUNCTION`), its
/// `functions/<name>/src/main.rs`, its resource in `template.yaml`, its paths in the watch router
/// (`Cargo.toml`), and an entry in this list. `tests/api/functions.rs` fails while any is missing.
pub const FUNCTIONS: [&Function; 15] = [
    &auth::FUNCTION,
    &users::FUNCTION,
    &conversations::FUNCTION,
    &chat::FUNCTION,
    &attachments::FUNCTION,
    &projects::FUNCTION,
    &unpacker::FUNCTION,
    &agents::FUNCTION,
    &admin::FUNCTION,
    &knowledge::FUNCTION,
    &models::FUNCTION,
    &health::FUNCTION,
    &ws::FUNCTION,
    &web::FUNCTION,
    &openai::FUNCTION,
];

/// Every route of every function in one router: what tests drive, and the source of the OpenAPI
/// document. The functions' paths are disjoint, so merging them changes nothing about any route.
pub fn all_routes() -> OpenApiRouter<AppState> {
    FUNCTIONS.iter().filter_map(|f| f.routes()).fold(
        OpenApiRouter::with_openapi(ApiDoc::openapi()),
        |acc, routes| acc.merge(routes()),
    )
}

/// The OpenAPI 3.1 document of the whole API (all functions), generated from the handlers. The
/// health function serves the committed copy (`shared/openapi.json`), which a test keeps equal.
pub fn openapi() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = all_routes().into_openapi();
        password_flow_on_secured_operations(&mut doc);
        doc
    })
}

/// The docs' "Authorize" logs in with the password flow (`oauth2`); for its token to be sent, an
/// operation secured by a bearer token lists `oauth2` as the alternative. (A modifier of
/// [`ApiDoc`] would run before the routes' operations are merged in.)
fn password_flow_on_secured_operations(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::SecurityRequirement;
    let bearer = SecurityRequirement::new("bearer", Vec::<String>::new());
    let oauth2 = SecurityRequirement::new("oauth2", Vec::<String>::new());
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            if let Some(security) = &mut operation.security {
                if security.contains(&bearer) && !security.contains(&oauth2) {
                    security.push(oauth2.clone());
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "CodeChat API",
        description = "Serverless backend for AI chat apps and coding assistants. Errors are RFC 9457 problem details.",
        license(name = "MIT")
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "users", description = "The current user's profile"),
        (name = "conversations", description = "Conversations, messages, usage and export"),
        (name = "chat", description = "Chat turns, whole or streamed (Server-Sent Events)"),
        (name = "attachments", description = "Files to send with chat messages: inline and presigned uploads"),
        (name = "projects", description = "Code workspaces: files, tree, JSON export and import"),
        (name = "agents", description = "Configured assistants: system prompt, model, parameters, tools"),
        (name = "mcp-servers", description = "Users' MCP tool servers (Streamable HTTP) that their agents call; headers kept encrypted"),
        (name = "admin", description = "Admin console (role admin): users, any conversation, usage reports, audit log"),
        (name = "knowledge", description = "Documents chunked and indexed (full text and vectors), hybrid search"),
        (name = "models", description = "The models catalog"),
        (name = "service", description = "Health and documentation"),
        (name = "openai", description = "The OpenAI-compatible endpoint (Chat Completions and models; OpenAI's error shape)"),
        (name = "web", description = "The browser client (served by the web function, outside /api/v1)"),
    ),
    components(schemas(crate::error::Problem))
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        // Lets the interactive docs' "Authorize" button log in with email and password. Relative,
        // like the docs pages, so it holds behind a stage prefix (`/Prod/api/v1/auth/token`).
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::new([Flow::Password(Password::new(
                "auth/token",
                Scopes::new(),
            ))])),
        );
    }
}
