//! The bare HTTP ceiling for `scripts/bench-serve`: a hyper 1 HTTP/1.1 server
//! (keep-alive, `TCP_NODELAY`, tokio's multi-threaded runtime, as `srs serve`
//! has) that does nothing but answer. `GET` (any path) → `204`; `POST` (any
//! path) → the whole body read, then `202` with `{}`; anything else → `405`.
//!
//! It is the peer `srs serve` is compared with (`GET /v1/check` against its
//! `GET`, `POST /v1/events` against its `POST`), and the upstream app behind
//! nginx in the gateway latency benchmark.
//!
//! `cargo run --release -p srs-bench --bin bare-http [ADDR]` (default
//! `127.0.0.1:0`); prints `bare-http: listening on http://ADDR` once ready.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Empty, Full, combinators::BoxBody};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, Infallible>;

fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:0")
        .parse()
        .context("the argument is an address such as 127.0.0.1:0")?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(serve(addr))
}

async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    println!("bare-http: listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("bare-http: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}

async fn answer(request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let (status, body): (StatusCode, Body) = match *request.method() {
        Method::GET => (StatusCode::NO_CONTENT, Empty::new().boxed()),
        Method::POST => match request.into_body().collect().await {
            // Read whole, as `srs serve` reads a push before deciding it.
            Ok(collected) => {
                drop(collected.to_bytes());
                (StatusCode::ACCEPTED, Full::from("{}").boxed())
            }
            Err(_) => (StatusCode::BAD_REQUEST, Empty::new().boxed()),
        },
        _ => (StatusCode::METHOD_NOT_ALLOWED, Empty::new().boxed()),
    };
    let json = status == StatusCode::ACCEPTED;
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if json {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    Ok(response)
}
