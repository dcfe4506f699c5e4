//! The `users` function: described by `codechat::api::users::FUNCTION`.

#[tokio::main]
async fn main() -> Result<(), codechat::http::BoxError> {
    codechat::http::run(&codechat::api::users::FUNCTION).await
}
