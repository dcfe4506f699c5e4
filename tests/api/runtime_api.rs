//! The runtime's client for the Lambda Runtime API (the patched `lambda_runtime_api_client`, see
//! vendor/lambda_runtime_api_client/PATCH.md) against a Runtime API that answers a posted response
//! before reading its body, as `cargo lambda watch`'s emulator does.

use lambda_runtime_api_client::{body::Body, build_request, PooledClient};
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};

const INVOCATIONS: usize = 20;

/// What the fake Runtime API saw: the length of every posted response as it arrived, and its
/// connections.
struct Seen {
    received: mpsc::UnboundedReceiver<usize>,
    connections: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    most_open_at_once: Arc<AtomicUsize>,
}

/// The runtime's sequence (lambda_runtime builds its client with the pool size 1 when it polls one
/// event at a time): wait for an event, post its response, again.
async fn invocations(response: impl Fn() -> Body) -> Seen {
    invocations_on(Closes::Never, response).await
}

/// Whether the fake Runtime API closes a connection after each exchange, without saying so (as an
/// HTTP/1.0 server, or one restarted between events, does).
#[derive(Clone, Copy, PartialEq)]
enum Closes {
    Never,
    AfterEachExchange,
}

async fn invocations_on(closes: Closes, response: impl Fn() -> Body) -> Seen {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (received_tx, received) = mpsc::unbounded_channel();
    let connections = Arc::new(AtomicUsize::new(0));
    let most_open_at_once = Arc::new(AtomicUsize::new(0));
    let open = Arc::new(AtomicUsize::new(0));
    let (accepted, most, open_now) = (connections.clone(), most_open_at_once.clone(), open.clone());
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            most.fetch_max(open.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            let (open, received) = (open.clone(), received_tx.clone());
            tokio::spawn(async move {
                serve(socket, received, closes).await;
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });

    let client = PooledClient::builder()
        .with_pool_size(1)
        .with_endpoint(base.parse().unwrap())
        .build();
    let run = async {
        for _ in 0..INVOCATIONS {
            let next = build_request()
                .uri("/2018-06-01/runtime/invocation/next")
                .body(Body::empty())
                .unwrap();
            let event = client.call(next).await.expect("the next event");
            assert_eq!(event.status(), 200);
            let request_id = event.headers()["lambda-runtime-aws-request-id"]
                .to_str()
                .unwrap()
                .to_owned();
            http_body_util::BodyExt::collect(event.into_body())
                .await
                .unwrap();

            let answer = build_request()
                .method("POST")
                .uri(format!(
                    "/2018-06-01/runtime/invocation/{request_id}/response"
                ))
                .body(response())
                .unwrap();
            let accepted = client.call(answer).await.expect("the response posted");
            assert_eq!(accepted.status(), 202);
        }
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("no invocation waits forever");
    Seen {
        received,
        connections,
        open: open_now,
        most_open_at_once,
    }
}

async fn assert_whole(seen: &mut Seen, bytes: usize) {
    for invocation in 0..INVOCATIONS {
        let got = tokio::time::timeout(Duration::from_secs(30), seen.received.recv())
            .await
            .expect("every posted response is read to its end")
            .unwrap();
        assert_eq!(got, bytes, "response {invocation} arrived whole");
    }
}

#[tokio::test]
async fn responses_that_fit_the_socket_go_one_after_another_on_one_connection() {
    const BYTES: usize = 64 << 10;
    let mut seen = invocations(|| Body::from(vec![b'x'; BYTES])).await;
    assert_whole(&mut seen, BYTES).await;
    assert_eq!(
        seen.connections.load(Ordering::SeqCst),
        1,
        "one connection, one exchange at a time"
    );
}

#[tokio::test]
async fn responses_larger_than_the_socket_arrive_whole_and_leave_no_connection_behind() {
    // Larger than a loopback socket takes in one write, so the early answer arrives mid-body and
    // hyper never marks the connection ready again: the client goes on on a new one.
    const BYTES: usize = 4 << 20;
    let mut seen = invocations(|| Body::from(vec![b'x'; BYTES])).await;
    assert_whole(&mut seen, BYTES).await;
    // Each connection given up on is closed (hyper-util's pool left all 20 open).
    let settled = async {
        while seen.open.load(Ordering::SeqCst) > 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), settled)
        .await
        .expect("one connection open at the end");
}

#[tokio::test]
async fn a_connection_the_runtime_api_closes_is_replaced_and_no_request_is_lost() {
    const BYTES: usize = 1000;
    let mut seen =
        invocations_on(Closes::AfterEachExchange, || Body::from(vec![b'x'; BYTES])).await;
    assert_whole(&mut seen, BYTES).await;
    // A fresh connection for every request: the event and the response of each invocation.
    assert_eq!(seen.connections.load(Ordering::SeqCst), 2 * INVOCATIONS);
}

#[tokio::test]
async fn a_streamed_response_goes_on_after_the_early_answer_until_its_end() {
    // As lambda_runtime streams an answer: chunks from a task, slower than the client's readiness
    // check, all after the Runtime API has answered.
    const CHUNKS: usize = 4;
    const CHUNK: usize = 1000;
    let mut seen = invocations(|| {
        let (mut sender, body) = Body::channel();
        tokio::spawn(async move {
            for _ in 0..CHUNKS {
                tokio::time::sleep(Duration::from_millis(30)).await;
                sender.send_data(vec![b'x'; CHUNK].into()).await.unwrap();
            }
        });
        body
    })
    .await;
    assert_whole(&mut seen, CHUNKS * CHUNK).await;
    assert_eq!(seen.most_open_at_once.load(Ordering::SeqCst), 1);
}

/// One connection of the fake Runtime API: events on `GET .../next`; a posted response is answered
/// `202` at once and only then read (to its `content-length`, or its last chunk), and its length
/// reported.
async fn serve(socket: TcpStream, received: mpsc::UnboundedSender<usize>, closes: Closes) {
    let (read, mut write) = socket.into_split();
    let mut read = BufReader::new(read);
    let mut invocation = 0;
    while let Some(head) = read_head(&mut read).await {
        // The request line names a path (origin-form), and the host is said.
        let target = head.split(' ').nth(1).unwrap_or_default();
        assert!(
            target.starts_with("/2018-06-01/runtime/invocation/"),
            "{head}"
        );
        assert!(head.contains("\r\nhost: 127.0.0.1:"), "{head}");
        if head.starts_with("get ") {
            invocation += 1;
            let event = b"{}";
            let reply = format!(
                "HTTP/1.1 200 OK\r\nlambda-runtime-aws-request-id: req-{invocation}\r\n\
                 content-type: application/json\r\ncontent-length: {}\r\n\r\n",
                event.len()
            );
            write.write_all(reply.as_bytes()).await.unwrap();
            write.write_all(event).await.unwrap();
            if closes == Closes::AfterEachExchange {
                return;
            }
            continue;
        }
        write
            .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        let length = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .map(|value| value.trim().parse().unwrap());
        let got = match length {
            Some(length) => {
                let mut body = vec![0; length];
                match read.read_exact(&mut body).await {
                    Ok(_) => Some(length),
                    Err(_) => None,
                }
            }
            None => read_chunked(&mut read).await,
        };
        let _ = received.send(got.unwrap_or(0));
        if got.is_none() || closes == Closes::AfterEachExchange {
            return;
        }
    }
}

/// A request's head, lower-cased; `None` at the end of the connection.
async fn read_head(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await.unwrap_or(0) == 0 {
            return None;
        }
        if line == "\r\n" {
            return Some(head);
        }
        head.push_str(&line.to_ascii_lowercase());
    }
}

/// The length of a chunked body, or `None` if the connection ends before its last chunk.
async fn read_chunked(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<usize> {
    let mut total = 0;
    loop {
        let mut size = String::new();
        if read.read_line(&mut size).await.ok()? == 0 {
            return None;
        }
        let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
        let mut chunk = vec![0; size + 2];
        read.read_exact(&mut chunk).await.ok()?;
        if size == 0 {
            return Some(total);
        }
        total += size;
    }
}
