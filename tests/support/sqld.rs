//! The libSQL server (`../shared/tools/sqld`, the production store's protocol) on loopback, with JWT
//! auth as a deployment has it. Tests that need it skip, saying so, where the binary is absent.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A test-only Ed25519 key pair (never used anywhere else): sqld checks tokens with the public half.
const PRIVATE_KEY: &str = include_str!("../fixtures/sqld-test-ed25519.pem");
const PUBLIC_KEY_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/sqld-test-ed25519.pub.pem"
);

pub struct Sqld {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`, as `LIBSQL_URL`.
    pub url: String,
}

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/tools/sqld")
}

impl Sqld {
    /// Starts sqld on a free loopback port with a fresh database, or `None` (with a message) when
    /// the binary is not there.
    pub async fn start() -> Option<Sqld> {
        if !binary().exists() {
            eprintln!(
                "SKIPPED: {} is absent; remote libSQL tests need it",
                binary().display()
            );
            return None;
        }
        let mut sqld = Sqld {
            child: None,
            port: 0,
            dir: tempfile::tempdir().expect("temp dir"),
            url: String::new(),
        };
        sqld.spawn_on_a_free_port().await;
        Some(sqld)
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    }

    /// The port is free when picked but not held, so a test running beside this one may take it
    /// first: then our server exits (it cannot bind) while the other answers the health check. Only
    /// a healthy port whose server is still ours counts.
    async fn spawn_on_a_free_port(&mut self) {
        for _ in 0..5 {
            self.port = Self::free_port();
            self.url = format!("http://127.0.0.1:{}", self.port);
            if self.spawn().await {
                return;
            }
        }
        panic!("sqld did not come up on any of five ports");
    }

    /// Starts sqld on `self.port`; false if it exited instead (the port was taken).
    async fn spawn(&mut self) -> bool {
        let child = Command::new(binary())
            .arg("--db-path")
            .arg(self.dir.path().join("data.sqld"))
            .args(["--http-listen-addr", &format!("127.0.0.1:{}", self.port)])
            .args(["--auth-jwt-key-file", PUBLIC_KEY_FILE, "--no-welcome"])
            .current_dir(self.dir.path())
            .stdout(log_file())
            .stderr(log_file())
            .spawn()
            .expect("start sqld");
        self.child = Some(child);
        for _ in 0..200 {
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            if exited {
                self.child = None;
                return false;
            }
            if self.healthy().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("sqld did not come up on port {}", self.port);
    }

    async fn healthy(&self) -> bool {
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        let request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        if stream.write_all(request.as_bytes()).await.is_err() {
            return false;
        }
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        answer.starts_with(b"HTTP/1.1 200")
    }

    /// The server's process id, to read its CPU time.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    /// A read-write token, as the deployment's `LIBSQL_AUTH_TOKEN`.
    pub fn token(&self) -> String {
        sign(PRIVATE_KEY)
    }

    /// Stops the server (the database stays for [`Sqld::restart`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same database and port (clients keep their URL).
    pub async fn restart(&mut self) {
        self.stop();
        assert!(
            self.spawn().await,
            "port {} was taken while sqld was down",
            self.port
        );
    }
}

/// An EdDSA token with full access, signed with `private_pem`.
pub fn sign(private_pem: &str) -> String {
    use base64::Engine;
    let body: String = private_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("a PEM key");
    let key = EncodingKey::from_ed_der(&der);
    encode(
        &Header::new(Algorithm::EdDSA),
        &serde_json::json!({"a": "rw"}),
        &key,
    )
    .expect("sign")
}

impl Drop for Sqld {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where sqld's log goes: the file `CODECHAT_SQLD_LOG` names (appended to), for looking at what the
/// server did during a test or a bench; otherwise nowhere.
fn log_file() -> Stdio {
    crate::log_named_by("CODECHAT_SQLD_LOG")
}
