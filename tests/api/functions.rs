//! One list of functions (`codechat::api::FUNCTIONS`) and every place that must agree with it: each
//! function's binary crate and `main.rs`, its resource in `template.yaml` (routes, limits, streaming),
//! the `cargo lambda watch` router in `Cargo.toml`, and its sample events. A function missing from
//! any of them fails here.

use std::collections::{BTreeMap, BTreeSet};

use codechat::{
    api::FUNCTIONS,
    function::{Limits, Transport},
};
use codechat_api_tests::repo_file;

type Table = BTreeMap<String, BTreeSet<(String, String)>>;

const METHODS: [&str; 7] = ["get", "post", "put", "patch", "delete", "head", "options"];

fn served() -> Table {
    let mut table = Table::new();
    for function in FUNCTIONS {
        let routes = table.entry(function.name.to_string()).or_default();
        let Some(router) = function.routes() else {
            continue;
        };
        let doc = serde_json::to_value(router().into_openapi()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    table
}

/// A function's resource in template.yaml, as far as these checks read it.
#[derive(Debug, Default)]
struct TemplateFunction {
    routes: BTreeSet<(String, String)>,
    timeout: Option<u32>,
    memory: Option<u32>,
    streamed_routes: usize,
}

/// Each function resource names its binary (`Binary: <name>`) before its `Timeout:`, `MemorySize:`
/// and events, whose `Path:` / `Method:` pairs follow; see template.yaml.
fn in_template() -> BTreeMap<String, TemplateFunction> {
    let mut table = BTreeMap::<String, TemplateFunction>::new();
    let (mut function, mut path) = (None::<String>, None::<String>);
    for line in repo_file("template.yaml").lines() {
        let line = line.trim();
        if let Some(bin) = line.strip_prefix("Binary: ") {
            function = Some(bin.trim().to_string());
            table.entry(bin.trim().to_string()).or_default();
        } else if function.is_none() {
            continue;
        } else if let Some(p) = line.strip_prefix("Path: ") {
            path = Some(p.trim().to_string());
        } else if let Some(m) = line.strip_prefix("Method: ") {
            let p = path.take().expect("Method: without Path:");
            entry(&mut table, &function)
                .routes
                .insert((m.trim().to_uppercase(), p));
        } else if let Some(t) = line.strip_prefix("Timeout: ") {
            entry(&mut table, &function).timeout = t.trim().parse().ok();
        } else if let Some(m) = line.strip_prefix("MemorySize: ") {
            entry(&mut table, &function).memory = m.trim().parse().ok();
        } else if line == "ResponseTransferMode: RESPONSE_STREAM" {
            entry(&mut table, &function).streamed_routes += 1;
        }
    }
    table
}

fn entry<'a>(
    table: &'a mut BTreeMap<String, TemplateFunction>,
    function: &Option<String>,
) -> &'a mut TemplateFunction {
    let name = function
        .clone()
        .expect("a function property before any Binary:");
    table.entry(name).or_default()
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
    let template: Table = in_template()
        .into_iter()
        .map(|(name, f)| (name, f.routes))
        .collect();
    assert_eq!(
        template, served,
        "template.yaml events differ from the routers"
    );
    let http_only: Table = served
        .iter()
        .filter(|(_, routes)| !routes.is_empty())
        .map(|(n, r)| (n.clone(), r.clone()))
        .collect();
    assert_eq!(
        in_watch_router(),
        http_only,
        "the cargo lambda watch router differs from the routers"
    );
}

#[test]
fn every_function_has_its_binary_template_resource_and_events() {
    let template = in_template();
    let names: BTreeSet<&str> = FUNCTIONS.iter().map(|f| f.name).collect();
    assert_eq!(names.len(), FUNCTIONS.len(), "function names are unique");

    let dirs: BTreeSet<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../functions"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    assert_eq!(
        dirs.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        names,
        "functions/ holds exactly the listed functions"
    );
    let events: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();

    for f in FUNCTIONS {
        let name = f.name;
        let main = repo_file(&format!("functions/{name}/src/main.rs"));
        assert!(
            main.contains(&format!("codechat::api::{name}::FUNCTION")),
            "functions/{name}/src/main.rs must run codechat::api::{name}::FUNCTION"
        );
        let manifest = repo_file(&format!("functions/{name}/Cargo.toml"));
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "functions/{name}/Cargo.toml names the binary {name}"
        );
        let resource = template
            .get(name)
            .unwrap_or_else(|| panic!("template.yaml has no function with Binary: {name}"));
        let Limits {
            timeout_secs,
            memory_mb,
        } = f.limits;
        assert_eq!(
            (resource.timeout, resource.memory),
            (Some(timeout_secs), Some(memory_mb)),
            "{name}: template Timeout/MemorySize differ from its Limits"
        );
        match f.transport {
            Transport::Streaming(_) => assert_eq!(
                resource.streamed_routes,
                resource.routes.len(),
                "{name} streams: every route of it is RESPONSE_STREAM"
            ),
            _ => assert_eq!(resource.streamed_routes, 0, "{name} does not stream"),
        }
        assert!(
            events
                .iter()
                .any(|e| e.starts_with(&format!("{name}-")) || e.starts_with(&format!("{name}."))),
            "events/ has no sample event for {name}"
        );
    }
    assert_eq!(
        template.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        names,
        "template.yaml has exactly the listed functions"
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
