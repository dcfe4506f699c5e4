//! Embeds the web client (`../web`) in the library: each asset gzipped at build time, all of them
//! under one content-hashed directory (`assets/<hash>/`, so their relative imports hold and any
//! change gives new URLs that can be cached forever), and `index.html` pointing at it.

use std::{fmt::Write as _, io::Write as _, path::Path};

use sha2::{Digest, Sha256};

const ASSETS: [(&str, &str); 7] = [
    ("app.js", "text/javascript; charset=utf-8"),
    ("branches.js", "text/javascript; charset=utf-8"),
    ("session.js", "text/javascript; charset=utf-8"),
    ("sse.js", "text/javascript; charset=utf-8"),
    ("markdown.js", "text/javascript; charset=utf-8"),
    ("tools.js", "text/javascript; charset=utf-8"),
    ("app.css", "text/css; charset=utf-8"),
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
    for (name, content_type) in ASSETS {
        let path = web.join("src").join(name);
        println!("cargo:rerun-if-changed={}", path.display());
        let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
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
}

fn gzip(raw: &[u8]) -> Vec<u8> {
    // A zero modification time in the header: the same input gives the same bytes.
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    encoder.write_all(raw).unwrap();
    encoder.finish().unwrap()
}
