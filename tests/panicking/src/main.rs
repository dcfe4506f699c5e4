//! A function with a route that panics (`GET /api/v1/panic`) and nothing else, run by
//! `scripts/check-panics` as a release binary under a fake Lambda Runtime API.

use codechat::{
    function::{Function, Limits, Needs, Transport},
    AppState,
};
use utoipa_axum::router::OpenApiRouter;

static FUNCTION: Function = Function {
    name: "panicking",
    transport: Transport::Buffered(routes),
    limits: Limits::API,
    needs: Needs::Static,
};

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().route("/api/v1/panic", axum::routing::get(panics))
}

async fn panics() -> &'static str {
    panic!("a handler panicked on purpose")
}

#[tokio::main]
async fn main() -> Result<(), codechat::http::BoxError> {
    codechat::http::run(&FUNCTION).await
}
