//! The `conversations` function: its routes are `codechat::api::conversations::routes`.

#[tokio::main]
async fn main() -> Result<(), codechat::http::BoxError> {
    codechat::http::run(
        codechat::api::Group::Conversations,
        codechat::api::conversations::routes,
    )
    .await
}
