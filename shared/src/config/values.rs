//! Parsing one environment value: numbers and booleans, each error naming its variable.

use super::*;

pub(super) fn number<T: std::str::FromStr>(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match var(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| ConfigError::Invalid {
            name,
            reason: format!("expected a non-negative whole number, got `{v}`"),
        }),
    }
}

/// `MAX_USER_STORAGE_BYTES` (1 GiB): what one user may store in all (attachments, project files,
/// knowledge documents); read by each concern that stores files.
pub(super) fn max_user_storage_bytes(
    var: &impl Fn(&str) -> Option<String>,
) -> Result<u64, ConfigError> {
    number(var, "MAX_USER_STORAGE_BYTES", 1024 * 1024 * 1024)
}

pub(super) fn parse_bool(name: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::Invalid {
            name,
            reason: format!("expected true or false, got `{v}`"),
        }),
    }
}
