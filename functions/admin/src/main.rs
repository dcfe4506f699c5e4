//! The `admin` function: described by `codechat::api::admin::FUNCTION`.

#[tokio::main]
async fn main() -> Result<(), codechat::http::BoxError> {
    codechat::http::run(&codechat::api::admin::FUNCTION).await
}
