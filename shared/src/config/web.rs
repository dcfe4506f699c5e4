//! The web client.

use super::*;

/// The web client.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Where the web client finds the API (`WEB_API_BASE_URL`): relative by default (`api/v1`, on
    /// the page's own origin and stage), or another origin's URL.
    pub api_base: String,
    /// The origins browsers upload large attachments to (presigned S3 URLs, from `S3_BUCKET` with
    /// `AWS_REGION`, or `S3_ENDPOINT_URL`'s): the page's policy lets it connect there too. Empty
    /// without S3 (locally an upload URL is the API's own).
    pub upload_origins: Vec<String>,
}

impl WebConfig {
    pub(super) fn load(var: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let upload_origins = match (var("S3_BUCKET"), var("S3_ENDPOINT_URL")) {
            (Some(bucket), Some(endpoint)) => match endpoint.split_once("://") {
                // Path-style or virtual-hosted: either host may be signed.
                Some((scheme, rest)) => {
                    let host = rest.split('/').next().unwrap_or(rest);
                    vec![
                        format!("{scheme}://{host}"),
                        format!("{scheme}://{bucket}.{host}"),
                    ]
                }
                None => Vec::new(),
            },
            (Some(bucket), None) => {
                let region = var("AWS_REGION").unwrap_or_else(|| "us-east-1".into());
                vec![
                    format!("https://{bucket}.s3.{region}.amazonaws.com"),
                    format!("https://{bucket}.s3.amazonaws.com"),
                ]
            }
            _ => Vec::new(),
        };
        Ok(WebConfig {
            api_base: var("WEB_API_BASE_URL").unwrap_or_else(|| "api/v1".into()),
            upload_origins,
        })
    }
}
