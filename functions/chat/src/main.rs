//! The `chat` function: described by `codechat::api::chat::FUNCTION`.

#[tokio::main]
async fn main() -> Result<(), codechat::http::BoxError> {
    codechat::http::run(&codechat::api::chat::FUNCTION).await
}
