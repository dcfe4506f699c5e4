//! The `web` function: the client's page and assets, their caching and security headers.

use axum::http::{header, Method, StatusCode};
use codechat_api_tests::{request, TestApp};

fn asset_url(index: &str, name: &str) -> String {
    let at = index.find("assets/").expect("an asset URL");
    let rest = &index[at..];
    let version = rest.split('/').nth(1).unwrap();
    format!("/assets/{version}/{name}")
}

#[tokio::test]
async fn the_page_and_its_assets() {
    let app = TestApp::spawn().await;
    let res = app.get("/", None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.headers[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    assert_eq!(res.headers[header::CACHE_CONTROL], "no-cache");
    let csp = res.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    let index = res.text();
    assert!(
        index.contains(r#"<meta name="codechat-api" content="api/v1">"#),
        "{index}"
    );
    // Relative URLs: under a stage prefix (…/Prod/) the page finds its assets and the API.
    assert!(
        !index.contains("\"/assets") && !index.contains("\"/api"),
        "{index}"
    );

    let js = app.get(&asset_url(&index, "app.js"), None).await;
    assert_eq!(js.status, StatusCode::OK);
    assert_eq!(
        js.headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        js.headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert!(js.text().contains("import"), "the module itself");
    for name in [
        "session.js",
        "sse.js",
        "markdown.js",
        "tools.js",
        "uploads.js",
        "branches.js",
        "marked.js",
        "prism.js",
        "app.css",
    ] {
        assert_eq!(
            app.get(&asset_url(&index, name), None).await.status,
            StatusCode::OK,
            "{name}"
        );
    }

    // Gzipped when the browser takes it, and smaller.
    let mut req = request(Method::GET, &asset_url(&index, "app.js"), None, None);
    req.headers_mut()
        .insert(header::ACCEPT_ENCODING, "gzip, br".parse().unwrap());
    let gz = app.send(req).await;
    assert_eq!(gz.headers[header::CONTENT_ENCODING], "gzip");
    assert!(gz.body.len() < js.body.len() / 2);

    // Another build's URL, or a name that is not an asset, is a 404 problem.
    for path in [
        "/assets/000000000000/app.js",
        &asset_url(&index, "secret.txt"),
    ] {
        let res = app.get(path, None).await;
        res.problem(StatusCode::NOT_FOUND);
    }
    assert_eq!(
        app.post("/", serde_json::json!({}), None).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

/// A conversation's and a project's address serve the page one level down: its assets and the
/// API are found from there, and the vendored Prism loads without highlighting by itself.
#[tokio::test]
async fn conversation_and_project_addresses_serve_the_page_one_level_down() {
    let app = TestApp::spawn().await;
    let root = app.get("/", None).await.text();
    assert!(root.contains(r#"prism.js" data-manual>"#), "{root}");
    for path in [
        "/c/0190a0e0-0000-7000-8000-000000000000",
        "/p/0190a0e0-0000-7000-8000-000000000000",
    ] {
        let res = app.get(path, None).await;
        assert_eq!(res.status, StatusCode::OK, "{path}");
        let page = res.text();
        assert!(
            page.contains(r#"content="../api/v1""#) && page.contains(r#"src="../assets/"#),
            "{page}"
        );
    }
}

#[tokio::test]
async fn another_api_origin_is_named_in_the_page_and_its_policy() {
    let app =
        TestApp::with_env(&[("WEB_API_BASE_URL", "https://api.example.com/Prod/api/v1")]).await;
    let res = app.get("/", None).await;
    let csp = res.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("connect-src 'self' https://api.example.com;"),
        "{csp}"
    );
    assert!(res
        .text()
        .contains(r#"content="https://api.example.com/Prod/api/v1""#));
}

/// Large attachments go straight to the bucket by presigned URL: the page may connect there too,
/// and to nothing else.
#[tokio::test]
async fn the_upload_bucket_is_named_in_the_pages_policy() {
    let app = TestApp::with_env(&[
        ("S3_BUCKET", "codechat-uploads"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "x"),
        ("AWS_SECRET_ACCESS_KEY", "x"),
    ])
    .await;
    let csp = app.get("/", None).await.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("connect-src 'self' https://codechat-uploads.s3.eu-west-1.amazonaws.com https://codechat-uploads.s3.amazonaws.com;"),
        "{csp}"
    );
    let local = TestApp::spawn().await;
    let csp = local.get("/", None).await.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("connect-src 'self';"), "{csp}");
}
