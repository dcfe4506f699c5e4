//! A TCP proxy in front of a server: it holds every chunk for a fixed delay in each direction (a
//! network's round-trip time) and counts the HTTP/1.1 requests that pass, i.e. the round trips a
//! client makes to a remote libSQL server, the write statements among them, and the Hrana streams
//! they open. It can also spoil the next stream's baton, as a server that let the stream go would
//! see it.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
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

/// A TCP proxy that holds every chunk for `delay` in each direction and counts HTTP/1.1 requests
/// and write statements.
pub struct LatencyProxy {
    pub addr: SocketAddr,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    writes: AtomicU64,
    new_streams: AtomicU64,
    spoil_next_baton: AtomicBool,
    spoiled: AtomicU64,
}

/// The end of an HTTP/1.1 request line.
const REQUEST: &[u8] = b" HTTP/1.1\r\n";
/// A pipeline request that opens a stream (ours and the libsql crate's JSON alike).
const NEW_STREAM: &[u8] = br#""baton":null"#;
/// The start of a baton that continues a stream.
const BATON: &[u8] = br#""baton":""#;
/// A write statement in a JSON pipeline request (Hrana over HTTP: ours and the libsql crate's
/// both serialise a statement as `"sql":"..."` and start their SQL with its verb).
const WRITES: [&[u8]; 3] = [
    br#""sql":"INSERT"#,
    br#""sql":"UPDATE"#,
    br#""sql":"DELETE"#,
];

impl LatencyProxy {
    pub async fn start(target: SocketAddr, delay: Duration) -> LatencyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let counter = counts.clone();
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
        LatencyProxy { addr, counts }
    }

    /// The proxy as `LIBSQL_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests that have passed so far.
    pub fn requests(&self) -> u64 {
        self.counts.requests.load(Ordering::SeqCst)
    }

    /// Write statements (INSERT, UPDATE, DELETE) that have passed so far.
    pub fn writes(&self) -> u64 {
        self.counts.writes.load(Ordering::SeqCst)
    }

    /// Pipeline requests that opened a stream so far.
    pub fn new_streams(&self) -> u64 {
        self.counts.new_streams.load(Ordering::SeqCst)
    }

    /// Overwrites the baton of the next request that continues a stream with a write statement
    /// (same length, so the request stays well-formed), which the server then refuses as it
    /// refuses an expired stream's.
    pub fn spoil_next_write_baton(&self) {
        self.counts.spoil_next_baton.store(true, Ordering::SeqCst);
    }

    /// Batons spoiled so far.
    pub fn spoiled(&self) -> u64 {
        self.counts.spoiled.load(Ordering::SeqCst)
    }
}

/// Copies `from` to `to`, each chunk `delay` after it was read, in order; counts request lines and
/// write statements.
async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    counts: Option<Arc<Counts>>,
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
    // The end of the previous chunks, so a mark split across two reads still counts once.
    let longest = WRITES
        .iter()
        .chain([&REQUEST, &NEW_STREAM])
        .map(|m| m.len())
        .max()
        .unwrap_or(1);
    let mut carry: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(counts) = &counts {
            let seen = carry.len();
            carry.extend_from_slice(&buf[..n]);
            counts
                .requests
                .fetch_add(new_marks(&carry, seen, REQUEST), Ordering::SeqCst);
            let writes: u64 = WRITES.iter().map(|m| new_marks(&carry, seen, m)).sum();
            counts.writes.fetch_add(writes, Ordering::SeqCst);
            counts
                .new_streams
                .fetch_add(new_marks(&carry, seen, NEW_STREAM), Ordering::SeqCst);
            if counts.spoil_next_baton.load(Ordering::SeqCst) && spoil_baton(&mut buf[..n]) {
                counts.spoil_next_baton.store(false, Ordering::SeqCst);
                counts.spoiled.fetch_add(1, Ordering::SeqCst);
            }
            let keep = carry.len().min(longest - 1);
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

/// Overwrites the first baton in `chunk` with `x`s; false if the chunk holds no whole baton or no
/// write statement.
fn spoil_baton(chunk: &mut [u8]) -> bool {
    if !WRITES
        .iter()
        .any(|m| chunk.windows(m.len()).any(|w| w == *m))
    {
        return false;
    }
    let Some(at) = chunk.windows(BATON.len()).position(|w| w == BATON) else {
        return false;
    };
    let start = at + BATON.len();
    let Some(len) = chunk[start..].iter().position(|&b| b == b'"') else {
        return false;
    };
    chunk[start..start + len].fill(b'x');
    true
}

/// Occurrences of `mark` in `bytes` that end past `seen` (the bytes already counted).
fn new_marks(bytes: &[u8], seen: usize, mark: &[u8]) -> u64 {
    bytes
        .windows(mark.len())
        .enumerate()
        .filter(|(at, w)| at + mark.len() > seen && *w == mark)
        .count() as u64
}
