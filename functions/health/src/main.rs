//! The `health` function: its routes are `codechat::api::service::routes`.

#[tokio::main]
async fn main() -> Result<(), codechat::http::BoxError> {
    codechat::http::run(codechat::api::Group::Health, codechat::api::service::routes).await
}
