//! Embeds the web client (`../web`) in the library: each asset gzipped at build time, all of them
//! under one content-hashed directory (`assets/<hash>/`, so their relative imports hold and any
//! change gives new URLs that can be cached forever), and `index.html` pointing at it.

use std::{fmt::Write as _, io::Write as _, path::Path};

use sha2::{Digest, Sha256};

const JS: &str = "text/javascript; charset=utf-8";

/// Each asset: the name it is served by, its type, and the files (under `web/`) it is made of, in
/// order. The vendored libraries (`web/vendor/`, their versions and licences in its README) are
/// served as npm published them; Prism's core and languages are joined into one script.
const ASSETS: [(&str, &str, &[&str]); 10] = [
    ("app.js", JS, &["src/app.js"]),
    ("branches.js", JS, &["src/branches.js"]),
    ("session.js", JS, &["src/session.js"]),
    ("sse.js", JS, &["src/sse.js"]),
    ("markdown.js", JS, &["src/markdown.js"]),
    ("tools.js", JS, &["src/tools.js"]),
    ("uploads.js", JS, &["src/uploads.js"]),
    ("marked.js", JS, &["vendor/marked/marked.esm.js"]),
    (
        "prism.js",
        JS,
        &[
            "vendor/prism/prism-core.min.js",
            "vendor/prism/prism-markup.min.js",
            "vendor/prism/prism-css.min.js",
            "vendor/prism/prism-clike.min.js",
            "vendor/prism/prism-javascript.min.js",
            "vendor/prism/prism-typescript.min.js",
            "vendor/prism/prism-c.min.js",
            "vendor/prism/prism-cpp.min.js",
            "vendor/prism/prism-java.min.js",
            "vendor/prism/prism-go.min.js",
            "vendor/prism/prism-rust.min.js",
            "vendor/prism/prism-python.min.js",
            "vendor/prism/prism-bash.min.js",
            "vendor/prism/prism-json.min.js",
            "vendor/prism/prism-sql.min.js",
            "vendor/prism/prism-toml.min.js",
            "vendor/prism/prism-yaml.min.js",
            "vendor/prism/prism-diff.min.js",
        ],
    ),
    ("app.css", "text/css; charset=utf-8", &["src/app.css"]),
];

fn main() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!(
        "cargo:rerun-if-changed={}",
        web.join("index.html").display()
    );
    let mut hash = Sha256::new();
    let mut files = Vec::new();
    for (name, content_type, sources) in ASSETS {
        let mut raw = Vec::new();
        for source in sources {
            let path = web.join(source);
            println!("cargo:rerun-if-changed={}", path.display());
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if !raw.is_empty() {
                raw.extend_from_slice(b"\n;\n");
            }
            raw.extend_from_slice(&bytes);
        }
        hash.update(name.as_bytes());
        hash.update((raw.len() as u64).to_le_bytes());
        hash.update(&raw);
        files.push((name, content_type, raw));
    }
    let digest = hash.finalize();
    let version: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();

    let mut code = format!("pub const VERSION: &str = {version:?};\n");
    code.push_str("pub static ASSETS: &[Asset] = &[\n");
    for (name, content_type, raw) in &files {
        std::fs::write(out.join(name), raw).unwrap();
        std::fs::write(out.join(format!("{name}.gz")), gzip(raw)).unwrap();
        writeln!(
            code,
            "    Asset {{ name: {name:?}, content_type: {content_type:?}, raw: include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{name}\")), gzip: include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{name}.gz\")) }},"
        )
        .unwrap();
    }
    code.push_str("];\n");

    let index = std::fs::read_to_string(web.join("index.html")).unwrap();
    let index = index.replace("{{ASSETS}}", &format!("assets/{version}"));
    std::fs::write(out.join("index.html"), &index).unwrap();
    // Precompressed with the default API base; another base is filled in at start-up.
    let default = index.replace("{{API_BASE}}", "api/v1");
    std::fs::write(out.join("index.html.gz"), gzip(default.as_bytes())).unwrap();
    code.push_str(
        "pub const INDEX: &str = include_str!(concat!(env!(\"OUT_DIR\"), \"/index.html\"));\n",
    );
    code.push_str("pub static INDEX_DEFAULT_GZIP: &[u8] = include_bytes!(concat!(env!(\"OUT_DIR\"), \"/index.html.gz\"));\n");
    std::fs::write(out.join("web_assets.rs"), code).unwrap();
    docs_assets(&web, &out);
}

/// The docs pages' assets (Swagger UI and ReDoc, vendored from npm, and Swagger UI's start-up),
/// served by the health function: kept gzipped only (they are large and every browser takes gzip).
fn docs_assets(web: &Path, out: &Path) {
    const DOCS: [(&str, &str, &str); 4] = [
        (
            "swagger-ui-bundle.js",
            JS,
            "vendor/swagger-ui-dist/swagger-ui-bundle.js",
        ),
        (
            "swagger-ui.css",
            "text/css; charset=utf-8",
            "vendor/swagger-ui-dist/swagger-ui.css",
        ),
        ("swagger-init.js", JS, "docs/swagger-init.js"),
        (
            "redoc.standalone.js",
            JS,
            "vendor/redoc/redoc.standalone.js",
        ),
    ];
    let mut code = String::from("pub static DOCS_ASSETS: &[DocsAsset] = &[\n");
    for (name, content_type, source) in DOCS {
        let path = web.join(source);
        println!("cargo:rerun-if-changed={}", path.display());
        let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        std::fs::write(out.join(format!("docs-{name}.gz")), gzip(&raw)).unwrap();
        writeln!(
            code,
            "    DocsAsset {{ name: {name:?}, content_type: {content_type:?}, gzip: include_bytes!(concat!(env!(\"OUT_DIR\"), \"/docs-{name}.gz\")) }},"
        )
        .unwrap();
    }
    code.push_str("];\n");
    std::fs::write(out.join("docs_assets.rs"), code).unwrap();
}

fn gzip(raw: &[u8]) -> Vec<u8> {
    // A zero modification time in the header: the same input gives the same bytes.
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    encoder.write_all(raw).unwrap();
    encoder.finish().unwrap()
}
