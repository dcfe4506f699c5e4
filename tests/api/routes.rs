//! The three route tables must agree: what each function's router serves (its OpenAPI paths), what
//! `template.yaml` sends to that function in AWS, and what `cargo lambda watch` sends to it locally
//! (`[workspace.metadata.lambda.watch.router]` in Cargo.toml).

use std::collections::{BTreeMap, BTreeSet};

use codechat::api::{self, Group};
use codechat_api_tests::repo_file;

type Table = BTreeMap<String, BTreeSet<(String, String)>>;

const METHODS: [&str; 7] = ["get", "post", "put", "patch", "delete", "head", "options"];

fn served() -> Table {
    let mut table = Table::new();
    for group in Group::ALL {
        let doc = serde_json::to_value(api::routes(group).into_openapi()).unwrap();
        let routes = table.entry(group.name().to_string()).or_default();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    table
}

/// Each function resource names its binary (`Binary: <name>`) before its events list
/// `Path:` / `Method:` pairs; see template.yaml.
fn in_template() -> Table {
    let mut table = Table::new();
    let (mut function, mut path) = (None::<String>, None::<String>);
    for line in repo_file("template.yaml").lines() {
        let line = line.trim();
        if let Some(bin) = line.strip_prefix("Binary: ") {
            function = Some(bin.trim().to_string());
        } else if let Some(p) = line.strip_prefix("Path: ") {
            path = Some(p.trim().to_string());
        } else if let Some(m) = line.strip_prefix("Method: ") {
            let f = function.clone().expect("an event before any function");
            let p = path.take().expect("Method: without Path:");
            table
                .entry(f)
                .or_default()
                .insert((m.trim().to_uppercase(), p));
        }
    }
    table
}

fn in_watch_router() -> Table {
    let manifest = repo_file("Cargo.toml");
    let section = manifest
        .split("[workspace.metadata.lambda.watch.router]")
        .nth(1)
        .expect("watch router section");
    let mut table = Table::new();
    for line in section.lines().take_while(|l| !l.starts_with('[')) {
        let Some((path, targets)) = line.split_once(" = ") else {
            continue;
        };
        let path = path.trim().trim_matches('"').to_string();
        for target in targets.split('{').skip(1) {
            let field = |name: &str| {
                target
                    .split(&format!("{name} = \""))
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .unwrap_or_else(|| panic!("{name} missing in {line}"))
                    .to_string()
            };
            table
                .entry(field("function"))
                .or_default()
                .insert((field("method"), path.clone()));
        }
    }
    table
}

#[test]
fn template_and_watch_router_match_the_routers() {
    let served = served();
    assert_eq!(
        in_template(),
        served,
        "template.yaml events differ from the routers"
    );
    assert_eq!(
        in_watch_router(),
        served,
        "the cargo lambda watch router differs from the routers"
    );
}

#[test]
fn every_route_is_under_api_v1() {
    for routes in served().values() {
        for (_, path) in routes {
            assert!(path.starts_with("/api/v1/"), "{path}");
        }
    }
}
