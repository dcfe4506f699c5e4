//! The `models` function: described by `codechat::api::models::FUNCTION`.

#[tokio::main]
async fn main() -> Result<(), codechat::http::BoxError> {
    codechat::http::run(&codechat::api::models::FUNCTION).await
}
