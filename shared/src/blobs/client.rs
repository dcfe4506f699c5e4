//! The S3 client every S3 call of the service goes through.

use aws_sdk_s3::Client as S3Client;

use super::s3_error;
use crate::config::S3Config;

/// One object of any bucket, read with the deployment's S3 settings (`S3_ENDPOINT_URL`, region,
/// credentials) when it has them, else the SDK's defaults: how `MODELS_FILE=s3://…` is read.
pub async fn read_s3_object(
    settings: Option<&S3Config>,
    bucket: &str,
    key: &str,
) -> Result<Vec<u8>, String> {
    let config = S3Config {
        bucket: bucket.to_string(),
        ..settings.cloned().unwrap_or(S3Config {
            bucket: String::new(),
            endpoint_url: None,
            region: None,
            credentials: None,
        })
    };
    let object = build_client(&config)
        .await
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| format!("s3://{bucket}/{key}: {}", s3_error(e)))?;
    let bytes = object.body.collect().await.map_err(|e| e.to_string())?;
    Ok(bytes.into_bytes().to_vec())
}

pub(super) async fn build_client(config: &S3Config) -> S3Client {
    let loader = crate::aws::loader(config.region.as_deref(), config.credentials.as_ref());
    let sdk = loader.load().await;
    let mut s3 = aws_sdk_s3::config::Builder::from(&sdk);
    if let Some(url) = &config.endpoint_url {
        // S3-compatible servers (and tests) address buckets by path, not by subdomain.
        s3 = s3.endpoint_url(url).force_path_style(true);
    }
    S3Client::from_conf(s3.build())
}
