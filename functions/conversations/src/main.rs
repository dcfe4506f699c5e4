//! The `conversations` function: described by `codechat::api::conversations::FUNCTION`.

#[tokio::main]
async fn main() -> Result<(), codechat::http::BoxError> {
    codechat::http::run(&codechat::api::conversations::FUNCTION).await
}
