//! The `auth` function: its routes are `codechat::api::auth::routes`.

#[tokio::main]
async fn main() -> Result<(), codechat::http::BoxError> {
    codechat::http::run(codechat::api::Group::Auth, codechat::api::auth::routes).await
}
