//! The `ws` function: described by `codechat::api::ws::FUNCTION`.

#[tokio::main]
async fn main() -> Result<(), codechat::http::BoxError> {
    codechat::http::run(&codechat::api::ws::FUNCTION).await
}
