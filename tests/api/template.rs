//! What `template.yaml` must say beyond the routes (those are in `functions.rs`): Bedrock access for
//! exactly the catalog's models, and problem+json for API Gateway's own answers.

use codechat_api_tests::repo_file;

#[test]
fn bedrock_permissions_name_exactly_the_catalogs_models() {
    let catalog: Vec<serde_json::Value> =
        serde_json::from_str(&repo_file("shared/data/models.json")).unwrap();
    let mut expected: Vec<String> = Vec::new();
    for m in catalog.iter().filter(|m| m["provider"] == "bedrock") {
        let id = m["provider_model_id"].as_str().unwrap();
        match id.split_once('.') {
            // A cross-region inference profile: the profile, and the model it routes to.
            Some((geo, model)) if ["us", "eu", "apac", "global"].contains(&geo) => {
                expected.push(format!("inference-profile/{id}"));
                expected.push(format!("foundation-model/{model}"));
            }
            _ => expected.push(format!("foundation-model/{id}")),
        }
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
        let problem: serde_json::Value = serde_json::from_str(body.trim_end_matches('\''))
            .unwrap_or_else(|e| panic!("{kind}: {e}: {body}"));
        for field in ["type", "title", "status", "detail"] {
            assert!(problem.get(field).is_some(), "{kind}: {problem}");
        }
    }
    assert!(section.contains("MISSING_AUTHENTICATION_TOKEN:\n          StatusCode: \"404\""));
}
