//! The `users` function: its routes are `codechat::api::users::routes`.

#[tokio::main]
async fn main() -> Result<(), codechat::http::BoxError> {
    codechat::http::run(codechat::api::Group::Users, codechat::api::users::routes).await
}
