//! A real S3-protocol server on loopback for the blob store's S3 path: s3s-fs (the s3s project's
//! file-system backend) served over HTTP on a free port, checking SigV4 signatures (headers and
//! presigned URLs) against one access key, as S3 does.

use hyper_util::rt::TokioIo;

pub const ACCESS_KEY: &str = "codechat-test-key";
pub const SECRET_KEY: &str = "codechat-test-secret-0123456789";
pub const REGION: &str = "us-east-1";
pub const BUCKET: &str = "codechat-test";

pub struct S3Server {
    /// `http://127.0.0.1:PORT`, as `S3_ENDPOINT_URL`.
    pub endpoint: String,
    dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl S3Server {
    /// Starts a server holding one empty bucket, [`BUCKET`].
    pub async fn start() -> S3Server {
        let dir = tempfile::tempdir().expect("temp dir");
        // s3s-fs keeps each bucket as a directory of the root.
        std::fs::create_dir(dir.path().join(BUCKET)).expect("bucket dir");
        let fs = s3s_fs::FileSystem::new(dir.path()).expect("s3s-fs root");
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        S3Server {
            endpoint,
            dir,
            task,
        }
    }

    /// The configuration that points the service at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("S3_BUCKET", BUCKET.to_string()),
            ("S3_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
        ]
    }

    /// An S3 client of this server, signing with its key: how a test puts objects of its own.
    pub async fn client(&self) -> aws_sdk_s3::Client {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_credential_types::Credentials::new(
                ACCESS_KEY, SECRET_KEY, None, None, "s3-test",
            ))
            .load()
            .await;
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .endpoint_url(&self.endpoint)
                .force_path_style(true)
                .build(),
        )
    }

    /// The keys of every object in the bucket (straight from the server's directory: s3s-fs keeps
    /// each object as a file under the bucket's directory, its metadata elsewhere).
    pub fn keys(&self) -> Vec<String> {
        crate::files_under(&self.dir.path().join(BUCKET))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
