//! The `health` function: described by `codechat::api::health::FUNCTION`.

#[tokio::main]
async fn main() -> Result<(), codechat::http::BoxError> {
    codechat::http::run(&codechat::api::health::FUNCTION).await
}
