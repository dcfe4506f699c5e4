//! Logging in: checking credentials, with failed attempts counted and limited per account.

use super::*;

/// One answer for unknown email, wrong password and deactivated account, so the endpoint reveals
/// nothing about which accounts exist.
pub(super) const BAD_CREDENTIALS: &str = "the email or password is incorrect";
/// How many failed password checks an account and a client IP get per window before further
/// attempts answer 429 (without running argon2) until the window passes.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    pub per_account: u32,
    pub per_ip: u32,
    pub window: Duration,
}

impl From<&crate::config::AuthConfig> for LoginLimits {
    fn from(config: &crate::config::AuthConfig) -> Self {
        LoginLimits {
            per_account: config.login_max_failures_per_account,
            per_ip: config.login_max_failures_per_ip,
            window: config.login_failure_window,
        }
    }
}

/// Who is checking a password: the account's email as given, and the client's IP (API Gateway's
/// source IP; never a header the client could set), when known.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub email: &'a str,
    pub ip: Option<IpAddr>,
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn login(
    conn: &Conn,
    keys: &TokenKeys,
    limits: LoginLimits,
    attempt: Attempt<'_>,
    password: String,
) -> Result<(User, TokenPair)> {
    let user = verify_credentials(conn, limits, attempt, password).await?;
    let pair = start_session(conn, keys, &user).await?;
    Ok((user, pair))
}

/// The active user with this email and password; one 401 for every way of being wrong, and 429
/// once the account or the client has failed too often in the window.
pub async fn verify_credentials(
    conn: &Conn,
    limits: LoginLimits,
    attempt: Attempt<'_>,
    password: String,
) -> Result<User> {
    let email = Email::normalize(attempt.email);
    let guard = FailureGuard::check(conn, limits, &email, attempt.ip).await?;
    let user = match conn.user_by_email(&email).await? {
        None => {
            password::verify_dummy(password).await?;
            None
        }
        Some(user) => password::verify(password, user.password_hash.clone())
            .await?
            .then_some(user),
    };
    match user {
        Some(user) if user.is_active => {
            guard.succeeded(conn).await?;
            Ok(user)
        }
        _ => {
            guard.failed(conn).await?;
            Err(Error::Unauthorized(BAD_CREDENTIALS))
        }
    }
}

/// The failure counters one password check is subject to: the account from this client address
/// (failures elsewhere never lock its owner out), and the address across accounts.
pub(super) struct FailureGuard {
    limits: LoginLimits,
    /// The account's counter for this address (`<email> <address>`; the email alone where the
    /// address is unknown).
    account: String,
    ip: Option<String>,
    now: OffsetDateTime,
    /// Whether the account has failures in the current window (a success then clears them).
    account_failed: bool,
}

impl FailureGuard {
    /// 429 with the seconds left in the window when the account (from this address) or the
    /// address is over its limit.
    pub(super) async fn check(
        conn: &Conn,
        limits: LoginLimits,
        account: &str,
        ip: Option<IpAddr>,
    ) -> Result<FailureGuard> {
        let ip = ip.map(|ip| ip.to_string());
        let mut guard = FailureGuard {
            limits,
            account: match &ip {
                Some(ip) => format!("{account} {ip}"),
                None => account.to_string(),
            },
            ip,
            now: OffsetDateTime::now_utc(),
            account_failed: false,
        };
        let cutoff = guard.cutoff();
        let mut scopes = vec![(
            FailureScope::Account,
            guard.account.as_str(),
            limits.per_account,
        )];
        if let Some(ip) = &guard.ip {
            scopes.push((FailureScope::Ip, ip.as_str(), limits.per_ip));
        }
        for (scope, key, limit) in scopes {
            let Some((failures, started)) = conn.login_failures(scope, key, &cutoff).await? else {
                continue;
            };
            guard.account_failed |= scope == FailureScope::Account;
            if failures >= limit as i64 {
                let ends = crate::ids::parse_time(&started).unwrap_or(guard.now) + limits.window;
                let wait = (ends - guard.now).whole_seconds().max(1) as u64;
                tracing::warn!(?scope, failures, "too many failed password checks");
                return Err(Error::TooManyRequests {
                    detail: "too many failed attempts; try again later".into(),
                    retry_after_secs: wait,
                });
            }
        }
        Ok(guard)
    }

    /// A success resets the account's counter; a login with no failures to reset writes nothing.
    async fn succeeded(&self, conn: &Conn) -> Result<()> {
        if self.account_failed {
            conn.clear_login_failures(FailureScope::Account, &self.account)
                .await?;
        }
        Ok(())
    }

    fn cutoff(&self) -> String {
        crate::ids::format_time(self.now - self.limits.window)
    }

    pub(super) async fn failed(&self, conn: &Conn) -> Result<()> {
        let (now, cutoff) = (crate::ids::format_time(self.now), self.cutoff());
        conn.count_login_failure(FailureScope::Account, &self.account, &now, &cutoff)
            .await?;
        if let Some(ip) = &self.ip {
            conn.count_login_failure(FailureScope::Ip, ip, &now, &cutoff)
                .await?;
        }
        Ok(())
    }
}
