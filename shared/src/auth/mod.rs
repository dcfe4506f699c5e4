//! Credentials: argon2id password hashes and HS256 JWTs. The account flows that use them (register,
//! login, refresh, logout, profile changes) are in [`crate::accounts`].

pub mod password;
pub mod tokens;
