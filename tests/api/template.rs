//! What `template.yaml` must say beyond the routes (those are in `functions.rs`): Bedrock access for
//! exactly the catalog's models, and problem+json for API Gateway's own answers.

use codechat_api_tests::repo_file;

#[test]
fn bedrock_permissions_name_exactly_the_catalogs_models() {
    let catalog: Vec<serde_json::Value> =
        serde_json::from_str(&repo_file("shared/data/models.json")).unwrap();
    let mut expected: Vec<String> = Vec::new();
    // Granted to the functions that run chat turns: chat (SSE), ws (WebSocket) and openai.
    for m in catalog
        .iter()
        .filter(|m| m["provider"] == "bedrock")
        .flat_map(|m| [m, m, m])
    {
        let id = m["provider_model_id"].as_str().unwrap();
        match id.split_once('.') {
            // A cross-region inference profile: the profile, and the model it routes to.
            // The catalog names US profiles; the template grants the deployment's geography's
            // (BedrockProfilePrefix), as the functions call them.
            Some(("us", model)) => {
                expected.push(format!(
                    "inference-profile/${{BedrockProfilePrefix}}.{model}"
                ));
                expected.push(format!("foundation-model/{model}"));
            }
            _ => expected.push(format!("foundation-model/{id}")),
        }
    }
    // The embedding model the template offers, granted to the functions that embed (knowledge
    // for documents and search, chat and ws for retrieval before a turn, the unpacker worker for
    // large documents).
    for _ in ["chat", "ws", "openai", "knowledge", "unpacker"] {
        expected.push("foundation-model/amazon.titan-embed-text-v2:0".into());
    }
    let template = repo_file("template.yaml");
    let mut granted: Vec<String> = template
        .lines()
        .filter(|l| l.contains(":bedrock:"))
        .map(|l| {
            let arn = l
                .trim()
                .trim_start_matches("- !Sub")
                .trim()
                .trim_matches(['-', ' ', '"']);
            let i = arn
                .find("foundation-model/")
                .or_else(|| arn.find("inference-profile/"))
                .unwrap_or_else(|| panic!("a Bedrock resource names no model: {l}"));
            arn[i..].to_string()
        })
        .collect();
    expected.sort();
    granted.sort();
    assert_eq!(
        granted, expected,
        "template.yaml Bedrock resources vs the catalog"
    );
    assert!(!template.contains("foundation-model/*") && !template.contains("inference-profile/*"));
}

#[test]
fn gateway_answers_are_problems_with_cors() {
    let template = repo_file("template.yaml");
    let section = template
        .split("GatewayResponses:")
        .nth(1)
        .expect("GatewayResponses")
        .split("MethodSettings:")
        .next()
        .unwrap();
    for kind in [
        "MISSING_AUTHENTICATION_TOKEN",
        "THROTTLED",
        "DEFAULT_4XX",
        "DEFAULT_5XX",
    ] {
        let block = section
            .split(&format!("{kind}:"))
            .nth(1)
            .unwrap_or_else(|| panic!("no gateway response for {kind}"));
        let block: String = block
            .lines()
            .take_while(|l| !l.trim_end().ends_with("X:") && !l.trim_end().ends_with("N:"))
            .take(8)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            block.contains("'application/problem+json'"),
            "{kind}: {block}"
        );
        assert!(
            block.contains("Access-Control-Allow-Origin"),
            "{kind}: {block}"
        );
        let body = block
            .split("application/json: '")
            .nth(1)
            .and_then(|b| b.split("'\n").next())
            .unwrap_or_else(|| panic!("{kind}: no body"));
        // The gateway fills in its own message (a JSON string) where the template names it.
        let body = body
            .trim_end_matches('\'')
            .replace("$context.error.messageString", "\"the gateway's message\"");
        let problem: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{kind}: {e}: {body}"));
        for field in ["type", "title", "detail"] {
            assert!(problem.get(field).is_some(), "{kind}: {problem}");
        }
        // A status in the body only where the response's own status is fixed, and equal to it
        // (DEFAULT_4XX and DEFAULT_5XX answer many statuses).
        let fixed = block
            .split("StatusCode: \"")
            .nth(1)
            .map(|rest| rest[..3].to_string());
        assert_eq!(
            problem.get("status").map(|s| s.to_string()),
            fixed,
            "{kind}: {problem}"
        );
    }
    assert!(section.contains("MISSING_AUTHENTICATION_TOKEN:\n          StatusCode: \"404\""));
}

/// The variables every function gets from `Globals` (name → value as written in the template).
fn global_environment(template: &str) -> Vec<(String, String)> {
    let globals = template
        .split("\nGlobals:\n")
        .nth(1)
        .expect("Globals")
        .split("\nResources:\n")
        .next()
        .unwrap();
    let variables = globals
        .split("      Variables:\n")
        .nth(1)
        .expect("Globals.Function.Environment.Variables");
    variables
        .lines()
        .take_while(|l| l.starts_with("        ") || l.trim().is_empty())
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, value) = l.split_once(':').expect("NAME: value");
            (name.to_string(), value.trim().trim_matches('"').to_string())
        })
        .collect()
}

/// `sam local start-api` (no Docker here to run it): the env-vars file only names variables the
/// template declares (SAM silently drops others), blanks every deploy-only reference, and the
/// variables SAM would hand a function load into the local profile on the libSQL server container
/// that samconfig's network and docs/deploying.md's command provide.
#[tokio::test]
async fn sam_local_env_file_fits_the_template_and_loads_the_local_profile() {
    let template = repo_file("template.yaml");
    let declared = global_environment(&template);
    let file: serde_json::Value =
        serde_json::from_str(&repo_file("events/env.local.json")).unwrap();
    let overrides = file["Parameters"].as_object().expect("Parameters");
    assert_eq!(file.as_object().unwrap().len(), 1, "only Parameters");
    for name in overrides.keys() {
        assert!(
            declared.iter().any(|(n, _)| n == name),
            "events/env.local.json sets {name}, which template.yaml's Globals do not declare"
        );
    }
    for (name, value) in &declared {
        if value.starts_with("!Ref") || value.starts_with("!If") {
            assert!(
                overrides.contains_key(name),
                "{name} ({value}) needs AWS; the env file must set it"
            );
        }
    }
    assert_eq!(overrides["LIBSQL_AUTH_TOKEN_ARN"], "");
    assert_eq!(overrides["JWT_SECRET_ARN"], "");

    // What SAM hands the container: the template's values, the file's overrides, its own markers.
    let mut env: std::collections::HashMap<String, String> = declared.into_iter().collect();
    for (name, value) in overrides {
        env.insert(name.clone(), value.as_str().expect("string").to_string());
    }
    env.insert("AWS_LAMBDA_RUNTIME_API".into(), "127.0.0.1:9001".into());
    env.insert("AWS_SAM_LOCAL".into(), "true".into());
    let config = codechat::config::Config::load(|k| env.get(k).cloned())
        .await
        .expect("the sam local environment loads");
    assert_eq!(config.profile, codechat::config::Profile::Local);
    assert!(
        !config.providers.bedrock_enabled,
        "offline: no Bedrock without asking"
    );
    assert!(config.providers.openai.is_none());
    match &config.blobs {
        codechat::config::BlobConfig::LocalDir(dir) => {
            assert!(
                dir.starts_with("/tmp"),
                "the task root is read-only: {dir:?}"
            )
        }
        other => panic!("{other:?}"),
    }
    let url = match &config.database {
        Some(codechat::config::DatabaseConfig::Remote { url, auth_token }) => {
            assert!(auth_token.is_empty());
            url.clone()
        }
        other => panic!("every container must share one store, not {other:?}"),
    };
    let host = url
        .trim_start_matches("http://")
        .split(':')
        .next()
        .unwrap()
        .to_string();

    let samconfig = repo_file("samconfig.toml");
    let section = samconfig
        .split("[default.local_start_api.parameters]")
        .nth(1)
        .expect("samconfig.toml: [default.local_start_api.parameters]")
        .split("\n[")
        .next()
        .unwrap();
    assert!(section.contains("env_vars = \"events/env.local.json\""));
    let network = section
        .lines()
        .find_map(|l| l.strip_prefix("docker_network = "))
        .expect("docker_network")
        .trim_matches('"');
    let readme = repo_file("docs/deploying.md");
    assert!(
        readme.contains(&format!("--network {network} --name {host}")),
        "docs/deploying.md starts the libSQL server as {host} on {network}"
    );
}

/// With a models file, named providers' keys and extra Bedrock models given as parameters, every
/// function that reads the catalog (all but the web client's) may read exactly that object, and
/// only the functions that run chat turns may read those keys and invoke those models; without
/// them, no function gets any of it.
#[test]
fn the_models_file_and_named_keys_reach_exactly_the_functions_that_use_them() {
    let key = "arn:aws:secretsmanager:us-east-1:123456789012:secret:groq-key-AbCdEf";
    let model = "arn:aws:bedrock:us-east-1::foundation-model/mistral.mistral-large-2407-v1:0";
    let with = serde_json::json!({"ModelsFileBucket": "config-bucket",
                                  "ModelsFileKey": "catalog/models.json",
                                  "OpenAiCompatibleKeySecretArns": [key],
                                  "ExtraBedrockModelArns": [model]});
    let Some(given) = role_policies(&with.to_string()) else {
        return;
    };
    let none = role_policies("{}").expect("the same tools");
    let grants = |policies: &serde_json::Value, function: &str, resource: &str| {
        policies[function]["documents"]
            .to_string()
            .contains(resource)
    };
    let object = "arn:aws:s3:::config-bucket/catalog/models.json";
    let functions: Vec<String> = given.as_object().unwrap().keys().cloned().collect();
    assert_eq!(functions.len(), 15, "{functions:?}");
    for function in &functions {
        let reads_catalog = function != "WebFunction";
        assert_eq!(
            grants(&given, function, object),
            reads_catalog,
            "{function}"
        );
        let calls_models =
            ["ChatFunction", "WsFunction", "OpenaiFunction"].contains(&function.as_str());
        assert_eq!(grants(&given, function, key), calls_models, "{function}");
        assert_eq!(grants(&given, function, model), calls_models, "{function}");
        assert!(
            !grants(&none, function, "InvokeExtraBedrockModels"),
            "{function}"
        );
        assert!(!grants(&none, function, "ReadTheModelsFile"), "{function}");
        assert!(
            !grants(&none, function, "ReadTheNamedProvidersKeys"),
            "{function}"
        );
    }
}

/// Each function's policy documents from the transformed template under these parameters
/// (`scripts/template.py policies`); `None` (the test skipped) without its Python tools, unless
/// `CODECHAT_REQUIRE_TOOLS` is set.
fn role_policies(parameters: &str) -> Option<serde_json::Value> {
    let out = std::process::Command::new("python3")
        .arg(codechat_api_tests::repo_path("scripts/template.py"))
        .arg("policies")
        .env("TEMPLATE_PARAMETERS", parameters)
        .output()
        .expect("python3");
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr).to_string();
        if std::env::var_os("CODECHAT_REQUIRE_TOOLS").is_some() {
            panic!("scripts/template.py policies failed: {why}");
        }
        eprintln!("skipped: scripts/template.py policies failed: {why}");
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).unwrap())
}
