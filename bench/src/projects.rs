//! Projects through the release `projects` binary: unpacking an uploaded zip of 1 000 and 5 000
//! files (time, and growth of peak RSS: it should not grow with the archive), and the tree of a
//! 5 000-file project.

use std::{path::Path, time::Duration};

use crate::{
    percentile,
    runtime::{body, event, multipart_event, status, Function, StoreTarget},
    seed::bench_user,
};

pub struct ProjectRow {
    pub label: String,
    pub p50: Duration,
    pub rss_growth_mib: Option<f64>,
}

/// A zip of `files` small source files spread over directories (about 600 bytes each).
fn archive(files: usize) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for i in 0..files {
        w.start_file(format!("src/m{}/d{}/file_{i}.rs", i % 10, i % 7), options)
            .unwrap();
        for line in 0..12 {
            writeln!(
                w,
                "pub fn f_{i}_{line}(x: u64) -> u64 {{ x * {line} + {i} }}"
            )
            .unwrap();
        }
    }
    w.finish().unwrap().into_inner()
}

fn upload_event(token: &str, zip: &[u8]) -> serde_json::Value {
    multipart_event(
        "/api/v1/projects/upload",
        token,
        "bench.zip",
        "application/zip",
        zip,
    )
}

const UNPACKS: usize = 5;
const TREES: usize = 50;

pub async fn measure(binary: &dyn Fn(&str) -> std::path::PathBuf, data: &Path) -> Vec<ProjectRow> {
    let store = StoreTarget::local(&data.join("projects"));
    std::fs::create_dir_all(&store.data_dir).unwrap();
    let auth = Function::start(&binary("auth"), "auth", &store).await;
    let (_, token) = bench_user(&auth, "projects@bench.dev").await;
    drop(auth);
    let mut rows = Vec::new();
    let mut last_project = String::new();
    for files in [1_000usize, 5_000] {
        // A fresh process per size, so each growth is its own.
        let f = Function::start(&binary("projects"), "projects", &store).await;
        let (res, _) = f
            .invoke(event("GET", "/api/v1/projects", Some(&token), None))
            .await;
        assert_eq!(status(&res), 200, "{res}");
        let before = f.peak_rss_kib();
        let zip = archive(files);
        let mut times = Vec::new();
        for _ in 0..UNPACKS {
            let (res, took) = f.invoke(upload_event(&token, &zip)).await;
            assert_eq!(status(&res), 201, "{res}");
            last_project = body(&res)["id"].as_str().unwrap().to_string();
            times.push(took);
        }
        times.sort();
        rows.push(ProjectRow {
            label: format!("unpack a {files}-file zip ({} KiB)", zip.len() / 1024),
            p50: percentile(&times, 0.5),
            rss_growth_mib: Some((f.peak_rss_kib() - before) as f64 / 1024.0),
        });
    }
    let f = Function::start(&binary("projects"), "projects", &store).await;
    let mut times = Vec::new();
    for _ in 0..TREES {
        let (res, took) = f
            .invoke(event(
                "GET",
                &format!("/api/v1/projects/{last_project}/tree"),
                Some(&token),
                None,
            ))
            .await;
        assert_eq!(status(&res), 200);
        times.push(took);
    }
    times.sort();
    rows.push(ProjectRow {
        label: "tree of a 5000-file project".into(),
        p50: percentile(&times, 0.5),
        rss_growth_mib: None,
    });
    rows
}

pub fn print(rows: &[ProjectRow]) {
    println!(
        "\nProjects (release binary through the Runtime API; growth of peak RSS over the unpacks):"
    );
    println!("{:<44} {:>10} {:>16}", "route", "p50 ms", "RSS growth MiB");
    for r in rows {
        let growth = r
            .rss_growth_mib
            .map(|g| format!("{g:.1}"))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<44} {:>10.3} {:>16}",
            r.label,
            r.p50.as_secs_f64() * 1000.0,
            growth
        );
    }
}
