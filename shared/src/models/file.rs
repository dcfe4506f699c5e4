//! An operator's models file (`MODELS_FILE`): reading it, how its entries merge over the
//! built-in ones, and the checks that name every bad entry at start-up.

use serde_json::{Map, Value};

use super::{Model, Provider};
use crate::config::{ModelsSource, ProvidersConfig};

/// The text of the file `source` names. `s3` reaches the bucket with the deployment's S3 settings
/// (endpoint, region, credentials), or the SDK's defaults when there are none.
pub async fn read_source(
    source: &ModelsSource,
    s3: Option<&crate::config::S3Config>,
) -> Result<String, String> {
    match source {
        ModelsSource::Path(path) => tokio::fs::read_to_string(path)
            .await
            .map_err(|e| format!("{}: {e}", path.display())),
        ModelsSource::S3 { bucket, key } => {
            let bytes = crate::blobs::read_s3_object(s3, bucket, key).await?;
            String::from_utf8(bytes).map_err(|_| format!("s3://{bucket}/{key} is not UTF-8"))
        }
    }
}

/// Everything wrong with the catalog, each entry named.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the models catalog has {} problem(s): {}", .0.len(), .0.join("; "))]
pub struct CatalogError(pub Vec<String>);

/// The built-in entries with the overlay's merged over them by `id` (an object's fields replace
/// the built-in entry's one by one, nested objects too, so `{"id": …, "enabled": false}` hides a
/// model and `{"id": …, "pricing": {"input_per_mtok_usd": 1}}` changes one price), then checked.
pub(super) fn merged(
    shipped: &str,
    overlays: &[&str],
    config: &ProvidersConfig,
) -> Result<Vec<Model>, CatalogError> {
    let mut problems = Vec::new();
    let mut entries: Vec<Value> =
        serde_json::from_str(shipped).map_err(|e| CatalogError(vec![format!("built in: {e}")]))?;
    for text in overlays {
        match serde_json::from_str::<Vec<Value>>(text) {
            Err(e) => problems.push(format!("not a JSON array of model entries: {e}")),
            Ok(file) => {
                let mut seen: Vec<String> = Vec::new();
                for (i, entry) in file.into_iter().enumerate() {
                    let Some(id) = entry.get("id").and_then(Value::as_str).map(str::to_string)
                    else {
                        problems.push(format!("entry {} has no string `id`", i + 1));
                        continue;
                    };
                    if seen.contains(&id) {
                        problems.push(format!("`{id}` is listed twice"));
                        continue;
                    }
                    seen.push(id.clone());
                    match entries.iter_mut().find(|e| e["id"] == id.as_str()) {
                        Some(built_in) => merge(built_in, entry),
                        None => entries.push(entry),
                    }
                }
            }
        }
    }
    let mut models = Vec::new();
    for entry in entries {
        let id = entry["id"].as_str().unwrap_or_default().to_string();
        match serde_json::from_value::<Model>(entry) {
            Ok(model) => models.push(model),
            Err(e) => problems.push(format!("`{id}`: {e}")),
        }
    }
    for m in &models {
        problems.extend(
            check(m, config)
                .into_iter()
                .map(|p| format!("`{}`: {p}", m.id)),
        );
    }
    problems.extend(check_fallbacks(&models));
    if !models
        .iter()
        .any(|m| m.enabled && m.id == config.default_model)
    {
        problems.push(format!(
            "DEFAULT_MODEL `{}` is not an enabled model",
            config.default_model
        ));
    }
    if problems.is_empty() {
        Ok(models)
    } else {
        Err(CatalogError(problems))
    }
}

/// Merges a partial entry over another: objects key by key (nested ones too), anything else
/// replaced. How a models file's entries, and the admins' changes, apply.
pub fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => merge_objects(into, from),
        (into, from) => *into = from,
    }
}

fn merge_objects(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (key, value) in from {
        match into.get_mut(&key) {
            Some(existing) => merge(existing, value),
            None => {
                into.insert(key, value);
            }
        }
    }
}

/// One entry's own problems.
fn check(m: &Model, config: &ProvidersConfig) -> Vec<String> {
    let mut problems = Vec::new();
    if let Provider::OpenAiCompatible(name) = &m.provider {
        if name != "openai" && config.compatible(name).is_none() {
            problems.push(format!(
                "provider `{name}` is not one of local, bedrock, openai or a provider named in \
                 PROVIDERS_FILE / OPENAI_COMPATIBLE_PROVIDERS"
            ));
        }
    }
    let p = &m.pricing;
    let prices = [
        ("input_per_mtok_usd", Some(p.input_per_mtok_usd)),
        ("output_per_mtok_usd", Some(p.output_per_mtok_usd)),
        ("cached_input_per_mtok_usd", p.cached_input_per_mtok_usd),
        ("cache_write_per_mtok_usd", p.cache_write_per_mtok_usd),
    ];
    for (name, price) in prices {
        if price.is_some_and(|v| !v.is_finite() || v < 0.0) {
            problems.push(format!("pricing.{name} must be a price of 0 or more"));
        }
    }
    if m.max_output_tokens == 0 || m.context_window <= m.max_output_tokens {
        problems.push("context_window must exceed max_output_tokens, itself over 0".into());
    }
    if m.id.trim().is_empty() || m.provider_model_id.trim().is_empty() {
        problems.push("id and provider_model_id must not be empty".into());
    }
    problems
}

/// Fallbacks that name no model, a hidden one, or lead back to where they started.
fn check_fallbacks(models: &[Model]) -> Vec<String> {
    let mut problems = Vec::new();
    let find = |id: &str| models.iter().find(|m| m.id == id);
    for m in models.iter().filter(|m| m.enabled) {
        for f in &m.fallbacks {
            match find(f) {
                None => problems.push(format!("`{}`: fallback `{f}` is not a model", m.id)),
                Some(target) if !target.enabled => {
                    problems.push(format!("`{}`: fallback `{f}` is disabled", m.id))
                }
                Some(_) => {}
            }
        }
        if let Some(cycle) = cycle_from(models, &m.id, &mut vec![]) {
            problems.push(format!("fallbacks go round: {}", cycle.join(" → ")));
        }
    }
    problems.sort();
    problems.dedup();
    problems
}

/// The first cycle reached from `id` through fallbacks, as the path that closes it.
fn cycle_from(models: &[Model], id: &str, path: &mut Vec<String>) -> Option<Vec<String>> {
    if let Some(start) = path.iter().position(|p| p == id) {
        // Told from its smallest id, so the same cycle reached from any of its models reads alike.
        let mut cycle = path[start..].to_vec();
        let first = (0..cycle.len()).min_by_key(|&i| &cycle[i]).unwrap_or(0);
        cycle.rotate_left(first);
        cycle.push(cycle[0].clone());
        return Some(cycle);
    }
    let model = models.iter().find(|m| m.id == id)?;
    path.push(id.to_string());
    for f in &model.fallbacks {
        if let Some(cycle) = cycle_from(models, f, path) {
            return Some(cycle);
        }
    }
    path.pop();
    None
}

/// The models a turn on `model` tries in order: itself, then its fallbacks depth first (each
/// fallback's own fallbacks after it), each once, skipping those this deployment cannot call.
pub(super) fn chain<'a>(models: &'a [Model], model: &'a Model) -> Vec<&'a Model> {
    fn visit<'a>(models: &'a [Model], model: &'a Model, out: &mut Vec<&'a Model>) {
        if out.iter().any(|m| m.id == model.id) {
            return;
        }
        out.push(model);
        for f in &model.fallbacks {
            if let Some(next) = models.iter().find(|m| &m.id == f) {
                visit(models, next, out);
            }
        }
    }
    let mut out = Vec::new();
    visit(models, model, &mut out);
    out.retain(|m| m.id == model.id || m.available);
    out
}

#[cfg(test)]
mod tests {
    use super::super::Catalog;
    use crate::config::{Config, ProvidersConfig};

    async fn providers(vars: &[(&str, &str)]) -> ProvidersConfig {
        let dir = tempfile::tempdir().unwrap();
        let mut vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        vars.push(("CODECHAT_DATA_DIR".into(), dir.path().display().to_string()));
        Config::load(move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
            .await
            .unwrap()
            .providers
    }

    const GROQ: &str = r#"[{"name": "groq", "base_url": "https://api.groq.com/openai/v1",
                             "api_key_env": "GROQ_API_KEY"}]"#;

    #[tokio::test]
    async fn a_file_hides_reprices_and_adds_models_over_the_built_in_ones() {
        let config = providers(&[
            ("OPENAI_COMPATIBLE_PROVIDERS", GROQ),
            ("GROQ_API_KEY", "gsk-test"),
        ])
        .await;
        let overlay = r#"[
            {"id": "openai/gpt-4o", "enabled": false},
            {"id": "openai/gpt-4.1-nano", "pricing": {"input_per_mtok_usd": 0.11}},
            {"id": "groq/llama-3.3-70b", "provider": "groq",
             "provider_model_id": "llama-3.3-70b-versatile", "display_name": "Llama 3.3 70B (Groq)",
             "context_window": 131072, "max_output_tokens": 32768,
             "pricing": {"input_per_mtok_usd": 0.59, "output_per_mtok_usd": 0.79},
             "capabilities": {"streaming": true, "vision": false, "documents": false, "tools": true},
             "fallbacks": ["openai/gpt-4.1-nano"]}
        ]"#;
        let catalog = Catalog::new(&config, &[overlay]).unwrap();
        assert!(catalog.get("openai/gpt-4o").is_none(), "hidden");
        assert!(catalog.usable("openai/gpt-4o").is_err());
        let nano = catalog.get("openai/gpt-4.1-nano").unwrap();
        assert_eq!(nano.pricing.input_per_mtok_usd, 0.11);
        assert_eq!(
            nano.pricing.output_per_mtok_usd, 0.4,
            "the rest of the entry stays"
        );
        let groq = catalog.usable("groq/llama-3.3-70b").unwrap();
        assert!(groq.available, "its provider is configured");
        // OPENAI_BASE_URL is not set: the fallback cannot be called and is left out.
        let chain: Vec<&str> = catalog.chain(groq).iter().map(|m| m.id.as_str()).collect();
        assert_eq!(chain, ["groq/llama-3.3-70b"]);
    }

    #[tokio::test]
    async fn every_bad_entry_is_named_in_one_error() {
        let config = providers(&[]).await;
        let overlay = r#"[
            {"id": "x/no-price", "provider": "openai", "provider_model_id": "m",
             "display_name": "m", "context_window": 10, "max_output_tokens": 5,
             "pricing": {"output_per_mtok_usd": 1},
             "capabilities": {"streaming": true, "vision": false, "documents": false, "tools": true}},
            {"id": "openai/gpt-4o-mini", "provider": "grok"},
            {"id": "openai/gpt-4.1", "fallbacks": ["openai/gpt-5-ultra"]},
            {"id": "openai/gpt-4.1-mini", "fallbacks": ["openai/gpt-4.1-nano"]},
            {"id": "openai/gpt-4.1-nano", "fallbacks": ["openai/gpt-4.1-mini"]},
            {"id": "bedrock/nova-pro", "pricing": {"input_per_mtok_usd": -1}},
            {"id": "bedrock/nova-pro"},
            {"name": "no id"}
        ]"#;
        let problems = Catalog::new(&config, &[overlay]).err().unwrap().0;
        let all = problems.join("\n");
        for expected in [
            "`x/no-price`: missing field `input_per_mtok_usd`",
            "`openai/gpt-4o-mini`: provider `grok` is not one of",
            "`openai/gpt-4.1`: fallback `openai/gpt-5-ultra` is not a model",
            "fallbacks go round: openai/gpt-4.1-mini → openai/gpt-4.1-nano → openai/gpt-4.1-mini",
            "`bedrock/nova-pro`: pricing.input_per_mtok_usd must be a price of 0 or more",
            "`bedrock/nova-pro` is listed twice",
            "entry 8 has no string `id`",
        ] {
            assert!(all.contains(expected), "{expected:?} in:\n{all}");
        }
        let hidden_default = providers(&[("DEFAULT_MODEL", "openai/gpt-4o")]).await;
        let err = Catalog::new(
            &hidden_default,
            &[r#"[{"id": "openai/gpt-4o", "enabled": false}]"#],
        )
        .err()
        .unwrap();
        assert!(
            err.to_string().contains("DEFAULT_MODEL `openai/gpt-4o`"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn fallbacks_are_tried_depth_first_each_once() {
        let config = providers(&[("OPENAI_API_KEY", "sk-test")]).await;
        let overlay = r#"[
            {"id": "openai/gpt-4.1", "fallbacks": ["openai/gpt-4.1-mini", "openai/gpt-4o-mini"]},
            {"id": "openai/gpt-4.1-mini", "fallbacks": ["openai/gpt-4.1-nano", "openai/gpt-4o-mini"]},
            {"id": "openai/gpt-4o-mini", "fallbacks": ["bedrock/nova-micro"]}
        ]"#;
        let catalog = Catalog::new(&config, &[overlay]).unwrap();
        let first = catalog.get("openai/gpt-4.1").unwrap();
        let chain: Vec<&str> = catalog.chain(first).iter().map(|m| m.id.as_str()).collect();
        // Bedrock is off locally: nova-micro cannot be called and is skipped.
        assert_eq!(
            chain,
            [
                "openai/gpt-4.1",
                "openai/gpt-4.1-mini",
                "openai/gpt-4.1-nano",
                "openai/gpt-4o-mini"
            ]
        );
    }

    /// The example files in `examples/providers/` load as they are documented.
    #[tokio::test]
    async fn the_example_provider_and_model_files_load() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/providers");
        for name in ["groq", "openrouter", "ollama"] {
            let providers_file = format!("{root}/{name}/providers.json");
            let config = providers(&[
                ("PROVIDERS_FILE", &providers_file),
                ("GROQ_API_KEY", "gsk-test"),
                ("OPENROUTER_API_KEY", "sk-or-test"),
            ])
            .await;
            let models = std::fs::read_to_string(format!("{root}/{name}/models.json")).unwrap();
            let catalog =
                Catalog::new(&config, &[&models]).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                catalog
                    .all()
                    .iter()
                    .any(|m| m.id.starts_with(&format!("{name}/")) && m.available),
                "{name}"
            );
        }
    }
}
