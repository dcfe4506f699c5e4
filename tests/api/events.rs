//! The sample events in `events/` fed through lambda_http's own adapter to each function's router,
//! exactly as the Lambda runtime does it: this proves the API Gateway wiring (stage prefix, header
//! mapping, base64 bodies, response shape) rather than assuming it.

use std::sync::Once;

use codechat::{api, function::Function};
use codechat_api_tests::{repo_file, TestApp};
use lambda_http::{request::LambdaRequest, tower::ServiceExt, Adapter, Context, LambdaEvent};
use serde_json::Value;

/// What the template sets for every function: REST API events carry the stage (`/Prod/...`) and
/// the routers must see `/api/v1/...`.
fn ignore_stage_in_path() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| std::env::set_var("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true"));
}

/// `events/<file>` as the runtime hands it to lambda_http, with the access token filled in.
fn sample_event(file: &str, access_token: Option<&str>) -> LambdaRequest {
    let token = access_token.map(|t| ("REPLACE_WITH_ACCESS_TOKEN", t));
    sample_event_with(file, token.as_slice())
}

/// `events/<file>` with each placeholder replaced.
fn sample_event_with(file: &str, replace: &[(&str, &str)]) -> LambdaRequest {
    ignore_stage_in_path();
    let mut text = repo_file(&format!("events/{file}"));
    for (placeholder, value) in replace {
        text = text.replace(placeholder, value);
    }
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{file} is not an API Gateway event: {e}"))
}

/// Feeds `events/<file>` to `function`'s router through lambda_http and returns the serialized
/// response, as the runtime would send it back to API Gateway.
async fn invoke(
    app: &TestApp,
    function: &Function,
    file: &str,
    access_token: Option<&str>,
) -> Value {
    let token = access_token.map(|t| ("REPLACE_WITH_ACCESS_TOKEN", t));
    invoke_with(app, function, file, token.as_slice()).await
}

/// [`invoke`] with placeholders of the event replaced.
async fn invoke_with(
    app: &TestApp,
    function: &Function,
    file: &str,
    replace: &[(&str, &str)],
) -> Value {
    let payload = sample_event_with(file, replace);
    let adapter = Adapter::from(app.function(function));
    let response = adapter
        .oneshot(LambdaEvent::new(payload, Context::default()))
        .await
        .expect("router is infallible");
    serde_json::to_value(response).unwrap()
}

fn body_json(response: &Value) -> Value {
    assert_eq!(response["isBase64Encoded"], false, "{response}");
    serde_json::from_str(response["body"].as_str().expect("body")).expect("JSON body")
}

#[tokio::test]
async fn rest_events_reach_the_routers_with_stage_prefix_and_base64_bodies() {
    let app = TestApp::spawn().await;

    // Base64-encoded JSON body on a REST (v1) event for stage Prod.
    let res = invoke(&app, &api::auth::FUNCTION, "auth-register.rest.json", None).await;
    assert_eq!(res["statusCode"], 201, "{res}");
    let registered = body_json(&res);
    assert_eq!(registered["user"]["email"], "events@example.com");
    let ct = res["headers"]["content-type"]
        .as_str()
        .or(res["multiValueHeaders"]["content-type"][0].as_str());
    assert_eq!(ct, Some("application/json"));

    // Plain JSON body.
    let res = invoke(&app, &api::auth::FUNCTION, "auth-login.rest.json", None).await;
    assert_eq!(res["statusCode"], 200, "{res}");
    let token = body_json(&res)["access_token"]
        .as_str()
        .unwrap()
        .to_string();

    // The Authorization header survives the event mapping.
    let res = invoke(
        &app,
        &api::users::FUNCTION,
        "users-me.rest.json",
        Some(&token),
    )
    .await;
    assert_eq!(res["statusCode"], 200, "{res}");
    assert_eq!(body_json(&res)["email"], "events@example.com");
    let res = invoke(&app, &api::users::FUNCTION, "users-me.rest.json", None).await;
    assert_eq!(res["statusCode"], 401, "{res}");

    let res = invoke(&app, &api::models::FUNCTION, "models-list.rest.json", None).await;
    assert_eq!(res["statusCode"], 200, "{res}");
    assert!(body_json(&res)["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == "local/echo"));

    let res = invoke(&app, &api::health::FUNCTION, "health.rest.json", None).await;
    assert_eq!(res["statusCode"], 200, "{res}");
    assert_eq!(body_json(&res)["status"], "ok");
}

#[tokio::test]
async fn http_api_events_as_cargo_lambda_watch_sends_them() {
    let app = TestApp::spawn().await;
    let res = invoke(&app, &api::health::FUNCTION, "health.http.json", None).await;
    assert_eq!(res["statusCode"], 200, "{res}");

    let res = invoke(&app, &api::auth::FUNCTION, "auth-register.http.json", None).await;
    assert_eq!(res["statusCode"], 201, "{res}");
    let token = body_json(&res)["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let res = invoke(
        &app,
        &api::users::FUNCTION,
        "users-me.http.json",
        Some(&token),
    )
    .await;
    assert_eq!(res["statusCode"], 200, "{res}");
    assert_eq!(body_json(&res)["email"], "watch@example.com");
}

#[tokio::test]
async fn a_function_answers_only_its_own_routes() {
    let app = TestApp::spawn().await;
    // The health event sent to the auth function: not its route, so a 404 problem.
    let res = invoke(&app, &api::auth::FUNCTION, "health.rest.json", None).await;
    assert_eq!(res["statusCode"], 404, "{res}");
    assert_eq!(body_json(&res)["status"], 404);
}

/// Feeds an event to the chat function through lambda_http's streaming adapter, as its
/// `run_with_streaming_response` runtime does, and returns the prelude's status and content type
/// and the whole streamed body.
async fn invoke_streaming(app: &TestApp, file: &str, access_token: &str) -> (u16, String, String) {
    use futures_util::StreamExt;
    let payload = sample_event(file, Some(access_token));
    let adapter = lambda_http::StreamAdapter::from(app.function(&api::chat::FUNCTION));
    let response = adapter
        .oneshot(LambdaEvent::new(payload, Context::default()))
        .await
        .expect("router is infallible");
    let prelude = response.metadata_prelude;
    let content_type = prelude
        .headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let mut body = String::new();
    let mut stream = std::pin::pin!(response.stream);
    while let Some(chunk) = stream.next().await {
        body.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    (prelude.status_code.as_u16(), content_type, body)
}

#[tokio::test]
async fn conversations_and_chat_events() {
    let app = TestApp::spawn().await;
    let token = app.register("chat-events@example.com").await.access;

    let res = invoke(
        &app,
        &api::conversations::FUNCTION,
        "conversations-create.rest.json",
        Some(&token),
    )
    .await;
    assert_eq!(res["statusCode"], 201, "{res}");
    let conversation = body_json(&res);
    assert_eq!(conversation["title"], "From an event");

    // A share link names API Gateway's domain and stage; the link's page reads it signed out.
    let share = invoke_with(
        &app,
        &api::conversations::FUNCTION,
        "shares-create.rest.json",
        &[
            ("REPLACE_WITH_ACCESS_TOKEN", &token),
            (
                "REPLACE_WITH_CONVERSATION_ID",
                conversation["id"].as_str().unwrap(),
            ),
        ],
    )
    .await;
    assert_eq!(share["statusCode"], 201, "{share}");
    let share = body_json(&share);
    let share_token = share["token"].as_str().unwrap();
    assert_eq!(
        share["url"],
        format!("https://abc123.execute-api.us-east-1.amazonaws.com/Prod/s/{share_token}")
    );
    let shared = invoke_with(
        &app,
        &api::conversations::FUNCTION,
        "shared-open.rest.json",
        &[("REPLACE_WITH_SHARE_TOKEN", share_token)],
    )
    .await;
    assert_eq!(shared["statusCode"], 200, "{shared}");
    assert_eq!(body_json(&shared)["title"], "From an event");

    // The chat function streams: its REST event is answered as a prelude and an SSE body.
    let (status, content_type, body) =
        invoke_streaming(&app, "chat-stream.rest.json", &token).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let events = codechat_api_tests::parse_sse(&body);
    assert_eq!(events.first().unwrap().event, "meta");
    assert_eq!(events.last().unwrap().event, "done");
    assert!(events.last().unwrap().data["assistant_message"]["content"]
        .as_str()
        .unwrap()
        .ends_with("Hello from API Gateway"));
    // In Lambda the invocation is over when the streamed body ends, and the sandbox may freeze:
    // by then the answer is stored (no waiting here).
    let conversation = events[0].data["conversation_id"].as_str().unwrap();
    let stored = app
        .get(
            &format!("/api/v1/conversations/{conversation}/messages"),
            Some(&token),
        )
        .await
        .json();
    assert_eq!(stored["items"][1]["status"], "complete", "{stored}");

    // A non-streamed turn through the same streaming runtime is one JSON body (as cargo lambda watch sends it).
    let (status, content_type, body) = invoke_streaming(&app, "chat.http.json", &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "application/json");
    let turn: Value = serde_json::from_str(&body).unwrap();
    assert!(turn["assistant_message"]["content"]
        .as_str()
        .unwrap()
        .ends_with("Hello from cargo lambda watch"));

    let res = invoke(
        &app,
        &api::conversations::FUNCTION,
        "conversations-list.rest.json",
        Some(&token),
    )
    .await;
    assert_eq!(res["statusCode"], 200, "{res}");
    assert_eq!(body_json(&res)["items"].as_array().unwrap().len(), 3);
}

/// Under `sam local start-api` (which cannot stream) the chat function runs lambda_http's buffered
/// runtime: the same streamed turn arrives as one proxy answer holding the whole SSE body.
#[tokio::test]
async fn a_streamed_turn_through_the_buffered_runtime_is_one_whole_answer() {
    let app = TestApp::spawn().await;
    let token = app.register("sam-local@example.com").await.access;
    let res = invoke(
        &app,
        &api::chat::FUNCTION,
        "chat-stream.rest.json",
        Some(&token),
    )
    .await;
    assert_eq!(res["statusCode"], 200, "{res}");
    let content_type = res["headers"]["content-type"]
        .as_str()
        .or(res["multiValueHeaders"]["content-type"][0].as_str())
        .unwrap();
    assert!(content_type.starts_with("text/event-stream"), "{res}");
    assert_eq!(res["isBase64Encoded"], false);
    let events = codechat_api_tests::parse_sse(res["body"].as_str().unwrap());
    assert_eq!(events.first().unwrap().event, "meta");
    assert_eq!(events.last().unwrap().event, "done", "{res}");
}

/// A multipart upload as API Gateway delivers it (binary media type: the body base64-encoded in the
/// event): the file's bytes arrive intact.
#[tokio::test]
async fn a_binary_upload_event_keeps_its_bytes() {
    let app = TestApp::spawn().await;
    let token = app.register("uploads@example.com").await.access;
    let res = invoke(
        &app,
        &api::attachments::FUNCTION,
        "attachments-upload.rest.json",
        Some(&token),
    )
    .await;
    assert_eq!(res["statusCode"], 201, "{res}");
    let attachment = body_json(&res);
    assert_eq!(attachment["filename"], "pixel.png");
    assert_eq!(attachment["content_type"], "image/png");

    let event: Value =
        serde_json::from_str(&repo_file("events/attachments-upload.rest.json")).unwrap();
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD
        .decode(event["body"].as_str().unwrap())
        .unwrap();
    let start = body
        .windows(8)
        .position(|w| w == b"\x89PNG\r\n\x1a\n")
        .unwrap();
    let end = body
        .windows(8)
        .position(|w| w == b"IEND\xaeB`\x82")
        .unwrap()
        + 8;
    let png = &body[start..end];
    assert_eq!(attachment["size"], png.len());

    let id = attachment["id"].as_str().unwrap();
    let res = app
        .get(&format!("/api/v1/attachments/{id}/content"), Some(&token))
        .await;
    assert_eq!(&res.body[..], png);
}

/// A project created through a REST event, then a file written through the greedy `{path+}`
/// resource with a base64 body: the path spans segments and the bytes arrive intact.
#[tokio::test]
async fn project_events_reach_the_wildcard_file_route() {
    let app = TestApp::spawn().await;
    let token = app.register("projects-events@example.com").await.access;
    let res = invoke(
        &app,
        &api::projects::FUNCTION,
        "projects-create.rest.json",
        Some(&token),
    )
    .await;
    assert_eq!(res["statusCode"], 201, "{res}");
    let project = body_json(&res)["id"].as_str().unwrap().to_string();

    ignore_stage_in_path();
    let text = repo_file("events/projects-file-put.rest.json")
        .replace("REPLACE_WITH_ACCESS_TOKEN", &token)
        .replace("REPLACE_WITH_PROJECT_ID", &project);
    let payload: LambdaRequest = serde_json::from_str(&text).unwrap();
    let response = Adapter::from(app.function(&api::projects::FUNCTION))
        .oneshot(LambdaEvent::new(payload, Context::default()))
        .await
        .unwrap();
    let res = serde_json::to_value(response).unwrap();
    assert_eq!(res["statusCode"], 200, "{res}");
    assert_eq!(body_json(&res)["path"], "src/app/main.rs");
    let got = app
        .get(
            &format!("/api/v1/projects/{project}/files/src/app/main.rs"),
            Some(&token),
        )
        .await;
    assert_eq!(&got.body[..], b"fn main() {}\n");
}

#[tokio::test]
async fn agents_and_admin_events() {
    let app = TestApp::with_env(&[("BOOTSTRAP_ADMIN_EMAIL", "root@example.com")]).await;
    let admin = app.register("root@example.com").await.access;
    let user = app.register("agent-events@example.com").await.access;

    let res = invoke(
        &app,
        &api::agents::FUNCTION,
        "agents-create.rest.json",
        Some(&user),
    )
    .await;
    assert_eq!(res["statusCode"], 201, "{res}");
    let agent = body_json(&res);
    assert_eq!(agent["name"], "Reviewer");
    assert_eq!(
        agent["tools"],
        serde_json::json!(["list_files", "read_file"])
    );
    // The tool servers' routes are the agents function's too.
    let res = invoke(
        &app,
        &api::agents::FUNCTION,
        "mcp-servers-create.rest.json",
        Some(&user),
    )
    .await;
    assert_eq!(res["statusCode"], 201, "{res}");
    let server = body_json(&res);
    assert_eq!(server["header_names"], serde_json::json!(["authorization"]));
    assert!(!res.to_string().contains("a-token-of-the-users-own"));

    // The query string reaches the admin router; a user is refused, the admin answered.
    let res = invoke(
        &app,
        &api::admin::FUNCTION,
        "admin-usage.rest.json",
        Some(&user),
    )
    .await;
    assert_eq!(res["statusCode"], 403, "{res}");
    let res = invoke(
        &app,
        &api::admin::FUNCTION,
        "admin-usage.rest.json",
        Some(&admin),
    )
    .await;
    assert_eq!(res["statusCode"], 200, "{res}");
    let report = body_json(&res);
    assert_eq!(report["group_by"], "model");
    assert_eq!(report["from"], "2026-01-01T00:00:00.000000Z");
    assert_eq!(report["to"], "2027-01-01T00:00:00.000000Z");
}

#[tokio::test]
async fn knowledge_event_indexes_a_document() {
    let app = TestApp::spawn().await;
    let user = app.register("knowledge-events@example.com").await.access;
    let res = invoke(
        &app,
        &api::knowledge::FUNCTION,
        "knowledge-create.rest.json",
        Some(&user),
    )
    .await;
    assert_eq!(res["statusCode"], 201, "{res}");
    let doc = body_json(&res);
    assert_eq!(doc["title"], "Lighthouses");
    assert_eq!(doc["chunk_count"], 2);
    let hits = app
        .get("/api/v1/knowledge/search?q=fresnel", Some(&user))
        .await
        .json();
    assert_eq!(hits["items"][0]["document_id"], doc["id"]);
    assert_eq!(hits["items"][0]["heading"], "Lighthouses › Lenses");
}

#[tokio::test]
async fn the_web_client_through_the_rest_api_is_gzipped_and_base64_encoded() {
    let app = TestApp::spawn().await;
    let res = invoke(&app, &api::web::FUNCTION, "web-index.rest.json", None).await;
    assert_eq!(res["statusCode"], 200, "{res}");
    // Gzipped bytes go back base64-encoded; API Gateway decodes them (BinaryMediaTypes */*).
    assert_eq!(res["isBase64Encoded"], true, "{res}");
    let header = |name: &str| {
        let single = &res["headers"][name];
        if single.is_string() {
            single.clone()
        } else {
            res["multiValueHeaders"][name][0].clone()
        }
    };
    assert_eq!(header("content-encoding"), "gzip", "{res}");
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(res["body"].as_str().unwrap())
        .unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "a gzip stream");
}

/// The deployed API has no preflight of its own (template.yaml: no `Cors`, every path `Method: any`),
/// so a browser's preflight reaches the function: every path of every function answers it, through
/// lambda_http, as the gateway forwards it (`events/preflight.rest.json`, moved to each path).
#[tokio::test]
async fn every_path_answers_the_browsers_preflight() {
    ignore_stage_in_path();
    let app = TestApp::spawn().await;
    let template: Value = serde_json::from_str(&repo_file("events/preflight.rest.json")).unwrap();
    let mut checked = 0;
    for function in api::FUNCTIONS {
        let Some(routes) = function.routes() else {
            continue;
        };
        let doc = serde_json::to_value(routes().into_openapi()).unwrap();
        for path in doc["paths"].as_object().unwrap().keys() {
            let concrete = path
                .replace("{path+}", "src/main.rs")
                .split('/')
                .map(|s| {
                    if s.starts_with('{') {
                        "0190c0de-0000-7000-8000-000000000000"
                    } else {
                        s
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let mut event = template.clone();
            event["path"] = concrete.clone().into();
            event["resource"] = path.clone().into();
            event["requestContext"]["resourcePath"] = path.clone().into();
            event["requestContext"]["path"] = format!("/Prod{concrete}").into();
            let payload: LambdaRequest = serde_json::from_value(event).unwrap();
            let adapter = Adapter::from(app.function(function));
            let res = adapter
                .oneshot(LambdaEvent::new(payload, Context::default()))
                .await
                .expect("router is infallible");
            let res = serde_json::to_value(res).unwrap();
            let header = |name: &str| {
                res["headers"][name]
                    .as_str()
                    .or(res["multiValueHeaders"][name][0].as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            assert_eq!(res["statusCode"], 200, "{} {path}: {res}", function.name);
            assert_eq!(header("access-control-allow-origin"), "*", "{path}: {res}");
            assert!(
                header("access-control-allow-methods").contains("POST")
                    || header("access-control-allow-methods") == "*",
                "{path}: {res}"
            );
            // A wildcard would not cover Authorization in a browser: it must be named.
            let allowed = header("access-control-allow-headers").to_lowercase();
            assert!(allowed.contains("authorization"), "{path}: {res}");
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} paths");
}
