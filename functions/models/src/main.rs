//! The `models` function: its routes are `codechat::api::models::routes`.

#[tokio::main]
async fn main() -> Result<(), codechat::http::BoxError> {
    codechat::http::run(codechat::api::Group::Models, codechat::api::models::routes).await
}
