//! The `auth` function: described by `codechat::api::auth::FUNCTION`.

#[tokio::main]
async fn main() -> Result<(), codechat::http::BoxError> {
    codechat::http::run(&codechat::api::auth::FUNCTION).await
}
