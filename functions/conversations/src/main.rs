//! The `conversations` function: see `codechat::api` for its routes.

#[tokio::main]
async fn main() -> Result<(), codechat::http::BoxError> {
    codechat::http::run(codechat::api::Group::Conversations).await
}
