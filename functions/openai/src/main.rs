//! The `openai` function: described by `codechat::api::openai::FUNCTION`.

#[tokio::main]
async fn main() -> Result<(), codechat::http::BoxError> {
    codechat::http::run(&codechat::api::openai::FUNCTION).await
}
