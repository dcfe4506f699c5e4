//! Secrets: from the environment, a file, or AWS Secrets Manager, and the local dev JWT secret.

use super::*;

/// A secret that never prints.
#[derive(Clone)]
pub struct Secret(pub(super) Vec<u8>);

impl Secret {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A secret read when first needed, not at start-up: a value (`NAME`; local, tests) or a Secrets
/// Manager ARN (`NAME_ARN`), so a function that never needs it never reads it.
#[derive(Clone)]
pub enum SecretRef {
    Value(String),
    SecretArn(String),
}

impl std::fmt::Debug for SecretRef {
    // Never the value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Value(_) => f.write_str("SecretRef::Value(..)"),
            SecretRef::SecretArn(arn) => f.debug_tuple("SecretRef::SecretArn").field(arn).finish(),
        }
    }
}

impl SecretRef {
    pub(super) fn named(var: &impl Fn(&str) -> Option<String>, name: &str) -> Option<SecretRef> {
        secret_source(var, name).map(|source| match source {
            SecretSource::Value(v) => SecretRef::Value(v),
            SecretSource::Arn(arn) => SecretRef::SecretArn(arn),
        })
    }

    /// The secret itself, reading it from Secrets Manager if it is an ARN.
    pub async fn read(&self) -> Result<String, ConfigError> {
        match self {
            SecretRef::Value(v) => Ok(v.clone()),
            SecretRef::SecretArn(arn) => resolve_secret(SecretSource::Arn(arn.clone())).await,
        }
    }
}

/// Where a secret comes from before it is resolved: a value (tests, local) or a Secrets Manager ARN.
pub(super) enum SecretSource {
    Value(String),
    Arn(String),
}

/// Static AWS credentials when the environment names them (tests, S3-compatible servers); else the
/// SDK's default chain applies.
pub(super) fn aws_credentials(
    var: &impl Fn(&str) -> Option<String>,
) -> Option<(String, String, Option<String>)> {
    var("AWS_ACCESS_KEY_ID")
        .zip(var("AWS_SECRET_ACCESS_KEY"))
        .map(|(k, s)| (k, s, var("AWS_SESSION_TOKEN")))
}

pub(super) fn secret_source(
    var: &impl Fn(&str) -> Option<String>,
    name: &str,
) -> Option<SecretSource> {
    var(&format!("{name}_ARN"))
        .map(SecretSource::Arn)
        .or_else(|| var(name).map(SecretSource::Value))
}

pub(super) async fn resolve_secret(src: SecretSource) -> Result<String, ConfigError> {
    let arn = match src {
        SecretSource::Value(v) => return Ok(v),
        SecretSource::Arn(arn) => arn,
    };
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let out = aws_sdk_secretsmanager::Client::new(&sdk)
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .map_err(|e| ConfigError::Secret {
            arn: arn.clone(),
            reason: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
        })?;
    out.secret_string()
        .map(str::to_owned)
        .ok_or(ConfigError::Secret {
            arn,
            reason: "the secret has no string value".into(),
        })
}

/// A dev secret (`file` under the data directory): created once, atomically, and shared by every
/// local process (each function runs in its own process under `cargo lambda watch`, and they must
/// accept each other's tokens and open each other's sealed values). `setting` names what a real
/// deployment sets instead.
pub(super) fn dev_secret(
    data_dir: &std::path::Path,
    file: &str,
    setting: &str,
) -> Result<String, ConfigError> {
    let io = |source| ConfigError::DataDir {
        path: data_dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(data_dir).map_err(io)?;
    let path = data_dir.join(file);
    if !path.exists() {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| io(std::io::Error::other(e.to_string())))?;
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let tmp = data_dir.join(format!("{file}.{}", std::process::id()));
        std::fs::write(&tmp, &secret).map_err(io)?;
        // hard_link refuses to replace an existing file: the first process to get here wins and the
        // others read its secret.
        match std::fs::hard_link(&tmp, &path) {
            Ok(()) => tracing::warn!(
                path = %path.display(),
                "created a development secret; set {setting} for real deployments"
            ),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(io(e));
            }
        }
        let _ = std::fs::remove_file(&tmp);
    }
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(io)
}
