//! The `unpacker` function: described by `codechat::api::unpacker::FUNCTION`.

#[tokio::main]
async fn main() -> Result<(), codechat::http::BoxError> {
    codechat::http::run(&codechat::api::unpacker::FUNCTION).await
}
