use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    function::{Function, Limits, Needs, Transport},
    models::Model,
    state::AppState,
};

pub const FUNCTION: Function = Function {
    name: "models",
    transport: Transport::Buffered(routes),
    limits: Limits::API,
    needs: Needs::Static,
};

/// The models catalog.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_models))
}

#[derive(Serialize, ToSchema)]
struct ModelList<'a> {
    items: &'a [Model],
}

/// The models catalog, with availability for this deployment's configuration and the admins'
/// changes (a model they hid is not listed).
#[utoipa::path(get, path = "/api/v1/models", tag = "models", responses((status = 200, body = ModelList)))]
async fn list_models(State(state): State<AppState>) -> Response {
    let catalog = state.fresh_catalog().await;
    (
        // Short: an admin's change shows within seconds.
        [(header::CACHE_CONTROL, "public, max-age=5")],
        Json(ModelList {
            items: catalog.all(),
        }),
    )
        .into_response()
}
