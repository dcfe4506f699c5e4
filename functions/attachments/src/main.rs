//! The `attachments` function: described by `codechat::api::attachments::FUNCTION`.

#[tokio::main]
async fn main() -> Result<(), codechat::http::BoxError> {
    codechat::http::run(&codechat::api::attachments::FUNCTION).await
}
