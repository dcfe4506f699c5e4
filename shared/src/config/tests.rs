//! Loading settings: failures said clearly, limits that fit Lambda, the local dev secret.

use super::*;

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

/// Lambda takes an event of at most 6 MB (6 291 456 bytes), and with `*/*` binary media types
/// API Gateway base64-encodes every body: each inline limit's default, base64-encoded, plus
/// room for the event around it (headers, request context, multipart framing), fits.
#[tokio::test]
async fn inline_limits_fit_a_lambda_event_after_base64() {
    const EVENT_LIMIT: u64 = 6 * 1024 * 1024;
    const EVENT_AROUND_THE_BODY: u64 = 64 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let c = Config::load(vars(&[("CODECHAT_DATA_DIR", dir.path().to_str().unwrap())]))
        .await
        .unwrap();
    for (name, bytes) in [
        ("MAX_JSON_BODY_BYTES", c.http.max_json_body_bytes as u64),
        ("MAX_INLINE_UPLOAD_BYTES", c.uploads.max_inline_upload_bytes),
        ("MAX_PROJECT_FILE_BYTES", c.projects.max_project_file_bytes),
        (
            "MAX_PROJECT_IMPORT_BYTES",
            c.projects.max_project_import_bytes as u64,
        ),
        ("MAX_DOCUMENT_BYTES", c.knowledge.max_document_bytes as u64),
        (
            "MAX_INLINE_ANSWER_BYTES",
            c.http.max_inline_answer_bytes as u64,
        ),
    ] {
        let encoded = bytes.div_ceil(3) * 4;
        assert!(
            encoded + EVENT_AROUND_THE_BODY <= EVENT_LIMIT,
            "{name}: {bytes} bytes are {encoded} in base64, over Lambda's event limit"
        );
    }
    assert!(c.websocket.max_message_bytes < 32 * 1024);
}

/// The web client and the models catalog start in Lambda with no database, no secret and
/// nothing reachable: they read neither, even when the variables name them.
#[tokio::test]
async fn static_functions_read_no_secret_and_no_database() {
    let lambda = [("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")];
    let c = Config::load_for(Needs::Static, vars(&lambda))
        .await
        .unwrap();
    assert_eq!(c.profile, Profile::Lambda);
    assert!(c.database.is_none() && c.jwt_secret.is_none());

    // ARNs of secrets nobody can read here (no credentials, no Secrets Manager): a read would fail
    // the load.
    let unreadable = [
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
        ("LIBSQL_URL", "libsql://db.example"),
        (
            "LIBSQL_AUTH_TOKEN_ARN",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:token",
        ),
        (
            "JWT_SECRET_ARN",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt",
        ),
    ];
    let c = Config::load_for(Needs::Static, vars(&unreadable))
        .await
        .unwrap();
    assert!(c.database.is_none() && c.jwt_secret.is_none());
}

#[tokio::test]
async fn lambda_without_database_or_secret_fails_clearly() {
    let err = Config::load(vars(&[("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("LIBSQL_URL is required"), "{err}");

    let err = Config::load(vars(&[
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
        ("LIBSQL_URL", "libsql://db.example"),
    ]))
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("JWT_SECRET_ARN is required"),
        "{err}"
    );
}

#[tokio::test]
async fn local_profile_creates_one_dev_secret_shared_by_processes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let a = Config::load(vars(&[("CODECHAT_DATA_DIR", d)]))
        .await
        .unwrap();
    let b = Config::load(vars(&[
        ("CODECHAT_DATA_DIR", d),
        ("CODECHAT_PROFILE", "local"),
    ]))
    .await
    .unwrap();
    let (a_secret, b_secret) = (a.jwt_secret.unwrap(), b.jwt_secret.unwrap());
    assert_eq!(a_secret.expose(), b_secret.expose());
    assert_eq!(a_secret.expose().len(), 64);
    assert!(matches!(a.database, Some(DatabaseConfig::LocalFile(ref p)) if p.starts_with(d)));
    assert_eq!(format!("{:?}", a_secret), "Secret(..)");
}

#[tokio::test]
async fn bad_numbers_and_short_secrets_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let err = Config::load(vars(&[
        ("CODECHAT_DATA_DIR", d),
        ("MAX_JSON_BODY_BYTES", "1MB"),
    ]))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("MAX_JSON_BODY_BYTES"), "{err}");
    let err = Config::load(vars(&[("CODECHAT_DATA_DIR", d), ("JWT_SECRET", "short")]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at least 32 bytes"), "{err}");
}

/// The tool servers' sealing key: an ARN is kept unread (read when first needed), locally a dev
/// key file, and in Lambda without either nothing (servers with headers are then refused).
#[tokio::test]
async fn the_tool_servers_key_comes_from_a_secret_a_dev_file_or_nowhere() {
    let static_lambda = [
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
        (
            "MCP_HEADERS_KEY_ARN",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:mcp",
        ),
    ];
    let c = Config::load_for(Needs::Static, vars(&static_lambda))
        .await
        .unwrap();
    assert!(matches!(
        c.mcp.headers_key,
        McpKeySource::Secret(SecretRef::SecretArn(_))
    ));
    assert!(!c.mcp.allow_loopback);
    let c = Config::load_for(
        Needs::Static,
        vars(&[("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")]),
    )
    .await
    .unwrap();
    assert!(matches!(c.mcp.headers_key, McpKeySource::Missing));
    assert_eq!(c.mcp.headers_key.read().await.unwrap(), None);

    let dir = tempfile::tempdir().unwrap();
    let local = Config::load(vars(&[("CODECHAT_DATA_DIR", dir.path().to_str().unwrap())]))
        .await
        .unwrap();
    assert!(local.mcp.allow_loopback);
    let first = local.mcp.headers_key.read().await.unwrap().unwrap();
    assert!(first.len() >= 32);
    assert_eq!(local.mcp.headers_key.read().await.unwrap(), Some(first));
    let err = Config::load(vars(&[
        ("CODECHAT_DATA_DIR", dir.path().to_str().unwrap()),
        ("MCP_CALL_TIMEOUT_SECONDS", "0"),
    ]))
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("MCP_CALL_TIMEOUT_SECONDS"),
        "{err}"
    );
}
