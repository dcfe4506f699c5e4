//! The `projects` function: described by `codechat::api::projects::FUNCTION`.

#[tokio::main]
async fn main() -> Result<(), codechat::http::BoxError> {
    codechat::http::run(&codechat::api::projects::FUNCTION).await
}
