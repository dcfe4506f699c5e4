//! The `knowledge` function: described by `codechat::api::knowledge::FUNCTION`.

#[tokio::main]
async fn main() -> Result<(), codechat::http::BoxError> {
    codechat::http::run(&codechat::api::knowledge::FUNCTION).await
}
