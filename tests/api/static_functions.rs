//! The functions that serve static data (`Needs::Static`: the web client, the models catalog) start
//! as Lambda starts them with no database and no secret, and answer every route they serve from
//! that state, so the web client stays up while the database or Secrets Manager is down.

use axum::{
    body::Body,
    http::{Method, Request, StatusCode},
};
use codechat::{
    api::FUNCTIONS,
    config::{Config, Needs},
    http, AppState,
};
use http_body_util::BodyExt;
use tower::ServiceExt;

#[tokio::test]
async fn static_functions_serve_every_route_without_store_or_secrets() {
    // In Lambda, with the store's and the secret's variables naming things nobody can reach.
    let env = [
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
        ("LIBSQL_URL", "http://127.0.0.1:9"),
        (
            "JWT_SECRET_ARN",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt",
        ),
        ("OPENAI_API_KEY", "sk-test"),
    ];
    let config = Config::load_for(Needs::Static, |k| {
        env.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    })
    .await
    .expect("a static function's settings load");
    let state = AppState::new(config)
        .await
        .expect("a static function starts");

    let statics: Vec<_> = FUNCTIONS
        .iter()
        .filter(|f| f.needs == Needs::Static)
        .collect();
    let names: Vec<_> = statics.iter().map(|f| f.name).collect();
    assert_eq!(names, ["models", "web"]);

    let asset = codechat::api::web::ASSETS[0].name;
    let version = codechat::api::web::VERSION;
    for function in statics {
        let routes = function.routes().expect("static functions serve HTTP");
        let doc = serde_json::to_value(routes().into_openapi()).unwrap();
        let app = http::app(state.clone(), routes());
        for (path, item) in doc["paths"].as_object().unwrap() {
            let uri = path.replace("{version}", version).replace("{file}", asset);
            for method in item.as_object().unwrap().keys() {
                let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let res = app
                    .clone()
                    .oneshot(
                        Request::builder()
                            .method(method.clone())
                            .uri(&uri)
                            .body(Body::empty())
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                let status = res.status();
                let body = res.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(
                    status,
                    StatusCode::OK,
                    "{} {method} {uri}: {}",
                    function.name,
                    String::from_utf8_lossy(&body)
                );
                assert!(!body.is_empty());
            }
        }
    }
}
