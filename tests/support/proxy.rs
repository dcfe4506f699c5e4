//! A TCP proxy in front of a server: it holds every chunk for a fixed delay in each direction (a
//! network's round-trip time) and counts the HTTP/1.1 requests that pass, i.e. the round trips a
//! client makes to a remote libSQL server.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    time::Instant,
};

/// A TCP proxy that holds every chunk for `delay` in each direction and counts HTTP/1.1 requests.
pub struct LatencyProxy {
    pub addr: SocketAddr,
    requests: Arc<AtomicU64>,
}

impl LatencyProxy {
    pub async fn start(target: SocketAddr, delay: Duration) -> LatencyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicU64::new(0));
        let counter = requests.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(relay(
                    client_read,
                    server_write,
                    delay,
                    Some(counter.clone()),
                ));
                tokio::spawn(relay(server_read, client_write, delay, None));
            }
        });
        LatencyProxy { addr, requests }
    }

    /// The proxy as `LIBSQL_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests that have passed so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Copies `from` to `to`, each chunk `delay` after it was read, in order; counts request lines.
async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    requests: Option<Arc<AtomicU64>>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    });
    const MARK: &[u8] = b" HTTP/1.1\r\n";
    // The end of the previous chunk, so a request line split across two reads still counts once.
    let mut carry: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(counter) = &requests {
            carry.extend_from_slice(&buf[..n]);
            let found = carry.windows(MARK.len()).filter(|w| *w == MARK).count();
            counter.fetch_add(found as u64, Ordering::SeqCst);
            let keep = carry.len().min(MARK.len() - 1);
            carry.drain(..carry.len() - keep);
        }
        if tx
            .send((Instant::now() + delay, buf[..n].to_vec()))
            .is_err()
        {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}
