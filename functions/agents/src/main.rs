//! The `agents` function: described by `codechat::api::agents::FUNCTION`.

#[tokio::main]
async fn main() -> Result<(), codechat::http::BoxError> {
    codechat::http::run(&codechat::api::agents::FUNCTION).await
}
