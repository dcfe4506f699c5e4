use axum::http::StatusCode;
use codechat_api_tests::TestApp;

#[tokio::test]
async fn health_reports_store_and_blobs() {
    let app = TestApp::spawn().await;
    let res = app.get("/api/v1/health", None).await;
    assert_eq!(res.status, StatusCode::OK);
    let h = res.json();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(h["checks"]["store"], "ok");
    assert_eq!(h["checks"]["blobs"], "ok");
}

#[tokio::test]
async fn health_is_degraded_when_blobs_cannot_be_written() {
    let app = TestApp::spawn().await;
    // A file where the blob directory should be makes the blob store unusable.
    let blobs = app.data_dir().join("blobs");
    std::fs::remove_dir_all(&blobs).unwrap();
    std::fs::write(&blobs, b"not a directory").unwrap();
    let res = app.get("/api/v1/health", None).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.json()["status"], "degraded");
    assert_eq!(res.json()["checks"]["blobs"], "error");
    assert_eq!(res.json()["checks"]["store"], "ok");
}

#[tokio::test]
async fn in_lambda_without_a_bucket_blobs_are_not_configured_and_health_is_ok() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("file:{}", dir.path().join("db").display());
    // The deployed profile: nothing may be written under the (read-only) task root.
    let app = TestApp::with_env(&[
        ("CODECHAT_PROFILE", "lambda"),
        ("LIBSQL_URL", &db),
        ("CODECHAT_DATA_DIR", "/nonexistent/read-only"),
    ])
    .await;
    let res = app.get("/api/v1/health", None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["checks"]["blobs"], "not_configured");
    assert_eq!(res.json()["status"], "ok");
    assert!(!std::path::Path::new("/nonexistent").exists());
}

#[tokio::test]
async fn models_catalog_marks_availability_by_configuration() {
    let app = TestApp::spawn().await;
    let res = app.get("/api/v1/models", None).await;
    assert_eq!(res.status, StatusCode::OK);
    let items = res.json()["items"].as_array().unwrap().clone();
    let echo = items.iter().find(|m| m["id"] == "local/echo").unwrap();
    assert_eq!(echo["available"], true);
    assert_eq!(echo["provider"], "local");
    assert_eq!(echo["capabilities"]["streaming"], true);
    assert!(echo["pricing"]["input_per_mtok_usd"].is_number());
    assert!(echo["context_window"].is_u64());
    // Without provider configuration, only the offline model is available.
    assert!(items
        .iter()
        .filter(|m| m["id"] != "local/echo")
        .all(|m| m["available"] == false));
    assert!(
        items.iter().any(|m| m["provider"] == "bedrock")
            && items.iter().any(|m| m["provider"] == "openai")
    );

    let app = TestApp::with_env(&[
        ("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1"),
        ("BEDROCK_ENABLED", "true"),
    ])
    .await;
    let items = app.get("/api/v1/models", None).await.json()["items"]
        .as_array()
        .unwrap()
        .clone();
    assert!(items.iter().all(|m| m["available"] == true));
}

/// `shared/openapi.json` is what the handlers declare. Regenerate it with
/// `UPDATE_OPENAPI=1 cargo test -p codechat-api-tests openapi_file`.
#[test]
fn openapi_file_matches_the_code() {
    let generated = serde_json::to_string_pretty(codechat::api::openapi()).unwrap() + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    assert!(
        codechat::api::health::OPENAPI_JSON == generated,
        "shared/openapi.json is stale: run UPDATE_OPENAPI=1 cargo test -p codechat-api-tests openapi_file"
    );
}

#[tokio::test]
async fn openapi_documents_every_route_and_docs_render() {
    let app = TestApp::spawn().await;
    let res = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(res.status, StatusCode::OK);
    let doc = res.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/token",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/users/me",
        "/api/v1/models",
        "/api/v1/health",
        "/api/v1/openapi.json",
        "/api/v1/docs",
        "/api/v1/redoc",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
    // A bearer token, or the docs' password login, on every secured operation.
    let secured = &doc["paths"]["/api/v1/users/me"]["patch"]["security"];
    assert_eq!(
        secured,
        &serde_json::json!([{"bearer": []}, {"oauth2": []}])
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // Relative, like the pages: it holds behind a stage prefix.
    assert_eq!(
        doc["components"]["securitySchemes"]["oauth2"]["flows"]["password"]["tokenUrl"],
        "auth/token"
    );

    let res = app.get("/api/v1/docs", None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = res.text();
    // Every asset from the API itself (the page works offline); no inline script; the token is
    // never persisted by the page.
    assert!(!page.contains("https://"), "{page}");
    assert!(!page.contains("<script>"), "{page}");
    let csp = res.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert!(
        csp.contains("script-src 'self';") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    for file in ["swagger-ui-bundle.js", "swagger-ui.css", "swagger-init.js"] {
        assert!(page.contains(&format!("docs/assets/{file}")), "{file}");
    }
    let init = app.get("/api/v1/docs/assets/swagger-init.js", None).await;
    assert_eq!(init.status, StatusCode::OK);
    let init = init.text();
    assert!(init.contains("url: 'openapi.json'"), "{init}");
    assert!(init.contains("persistAuthorization: false") && !init.contains("localStorage"));
    // Gzipped to a browser that takes it, inflated for one that does not.
    let mut req = codechat_api_tests::request(
        axum::http::Method::GET,
        "/api/v1/docs/assets/swagger-ui-bundle.js",
        None,
        None,
    );
    req.headers_mut()
        .insert("accept-encoding", "gzip, br".parse().unwrap());
    let gz = app.send(req).await;
    assert_eq!(gz.headers["content-encoding"], "gzip");
    let plain = app
        .get("/api/v1/docs/assets/swagger-ui-bundle.js", None)
        .await;
    assert_eq!(plain.status, StatusCode::OK);
    assert!(plain.headers.get("content-encoding").is_none());
    assert!(plain.body.len() > 3 * gz.body.len());
    assert!(plain.text().contains("SwaggerUIBundle"));
    app.get("/api/v1/docs/assets/secret.txt", None)
        .await
        .problem(StatusCode::NOT_FOUND);

    let res = app.get("/api/v1/redoc", None).await;
    assert_eq!(res.status, StatusCode::OK);
    let page = res.text();
    assert!(page.contains("spec-url=\"openapi.json\""));
    assert!(
        page.contains("docs/assets/redoc.standalone.js") && !page.contains("https://"),
        "{page}"
    );
    assert_eq!(
        app.get("/api/v1/docs/assets/redoc.standalone.js", None)
            .await
            .status,
        StatusCode::OK
    );
    let csp = res.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && !csp.contains("unsafe-eval"));
    assert!(csp.contains("script-src 'self';"), "{csp}");
}
