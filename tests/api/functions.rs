//! One list of functions (`codechat::api::FUNCTIONS`) and every place that must agree with it: each
//! function's binary crate and `main.rs`, its resource in `template.yaml` (paths, limits, streaming),
//! the `cargo lambda watch` router in `Cargo.toml`, and its sample events. A function missing from
//! any of them fails here. Both gateways send every method of a path to the function that serves the
//! path, so that a method it does not serve is its own 405 problem; so paths are compared, and the
//! methods the routers serve are checked to be all there is.

use std::collections::{BTreeMap, BTreeSet};

use codechat::{
    api::FUNCTIONS,
    function::{Limits, Needs, Transport},
};
use codechat_api_tests::repo_file;

type Table = BTreeMap<String, BTreeSet<(String, String)>>;
/// function → the paths routed to it.
type Paths = BTreeMap<String, BTreeSet<String>>;

fn paths_of(table: &Table) -> Paths {
    table
        .iter()
        .map(|(f, routes)| (f.clone(), routes.iter().map(|(_, p)| p.clone()).collect()))
        .collect()
}

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
    /// Its policies let it read a secret.
    reads_secrets: bool,
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
            // A greedy `{name+}` is the OpenAPI document's `{name}`.
            path = Some(p.trim().replace("+}", "}"));
        } else if let Some(m) = line.strip_prefix("Method: ") {
            let p = path.take().expect("Method: without Path:");
            entry(&mut table, &function)
                .routes
                .insert((m.trim().to_uppercase(), p));
        } else if let Some(t) = line.strip_prefix("Timeout: ") {
            entry(&mut table, &function).timeout = t.trim().parse().ok();
        } else if let Some(m) = line.strip_prefix("MemorySize: ") {
            entry(&mut table, &function).memory = m.trim().parse().ok();
        } else if line.contains("AWSSecretsManagerGetSecretValuePolicy") {
            entry(&mut table, &function).reads_secrets = true;
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

/// The watch router: `"<path>" = "<function>"` (every method) entries, and the catch-alls.
fn in_watch_router() -> (Paths, BTreeMap<String, String>) {
    let manifest = repo_file("Cargo.toml");
    let section = manifest
        .split("[workspace.metadata.lambda.watch.router]")
        .nth(1)
        .expect("watch router section");
    let mut paths = Paths::new();
    let mut catch_alls = BTreeMap::new();
    for line in section.lines().take_while(|l| !l.starts_with('[')) {
        let Some((path, target)) = line.split_once(" = ") else {
            continue;
        };
        let path = path.trim().trim_matches('"').to_string();
        let function = target.trim();
        assert!(
            function.starts_with('"') && function.ends_with('"'),
            "{line}: route every method of a path to one function (\"path\" = \"function\")"
        );
        let function = function.trim_matches('"').to_string();
        if path.starts_with("/{*") {
            catch_alls.insert(path, function);
        } else {
            // A wildcard `{*name}` (a path that spans segments) is the OpenAPI document's `{name}`.
            let path = path.replace("{*", "{");
            paths.entry(function).or_default().insert(path);
        }
    }
    (paths, catch_alls)
}

#[test]
fn template_and_watch_router_match_the_routers() {
    let served = served();
    let template: Table = in_template()
        .into_iter()
        .map(|(name, f)| (name, f.routes))
        .collect();
    for (function, routes) in &template {
        for (method, path) in routes {
            assert_eq!(
                method, "ANY",
                "{function} {path}: every method goes to the function"
            );
        }
    }
    assert_eq!(
        paths_of(&template),
        paths_of(&served),
        "template.yaml paths differ from the routers"
    );
    let http_only: Paths = paths_of(&served)
        .into_iter()
        .filter(|(_, paths)| !paths.is_empty())
        .collect();
    let (watch, catch_alls) = in_watch_router();
    assert_eq!(
        watch, http_only,
        "the cargo lambda watch router differs from the routers"
    );
    // Unknown paths reach a function, whose fallback answers 404 problem+json.
    let names: BTreeSet<&str> = FUNCTIONS.iter().map(|f| f.name).collect();
    let key = "/{*rest}";
    let f = catch_alls
        .get(key)
        .unwrap_or_else(|| panic!("no watch route for {key}"));
    assert!(
        names.contains(f.as_str()),
        "{key} goes to unknown function {f}"
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
        // A function that opens the store reads its secrets; a static one may read none.
        assert_eq!(
            resource.reads_secrets,
            f.needs == Needs::Store,
            "{name}: its role's secret access differs from its Needs"
        );
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
fn every_route_is_under_api_v1_but_the_web_clients() {
    for (function, routes) in served() {
        for (_, path) in routes {
            if function == "web" {
                assert!(
                    ["/", "/s/{token}", "/c/{id}", "/p/{id}"].contains(&path.as_str())
                        || path.starts_with("/assets/"),
                    "{path}"
                );
            } else {
                assert!(path.starts_with("/api/v1/"), "{path}");
            }
        }
    }
}
