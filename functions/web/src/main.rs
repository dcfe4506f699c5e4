//! The `web` function: described by `codechat::api::web::FUNCTION`.

#[tokio::main]
async fn main() -> Result<(), codechat::http::BoxError> {
    codechat::http::run(&codechat::api::web::FUNCTION).await
}
