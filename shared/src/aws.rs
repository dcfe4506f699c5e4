//! What every AWS SDK client of the service starts from: the region and static credentials when
//! the configuration names them (tests, S3-compatible servers), else the SDK's default chain (the
//! execution role in Lambda).

use aws_config::{BehaviorVersion, ConfigLoader, Region};

/// Static credentials: access key, secret, optional session token.
pub type StaticCredentials = (String, String, Option<String>);

pub fn loader(region: Option<&str>, credentials: Option<&StaticCredentials>) -> ConfigLoader {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_string()));
    }
    if let Some((key, secret, token)) = credentials {
        loader = loader.credentials_provider(aws_credential_types::Credentials::new(
            key,
            secret,
            token.clone(),
            None,
            "environment",
        ));
    }
    loader
}
