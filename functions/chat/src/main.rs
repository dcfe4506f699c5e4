//! The `chat` function: its routes are `codechat::api::chat::routes`.

#[tokio::main]
async fn main() -> Result<(), codechat::http::BoxError> {
    codechat::http::run(codechat::api::Group::Chat, codechat::api::chat::routes).await
}
