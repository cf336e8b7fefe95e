//! The mocks' HTTP server: hyper on a loopback listener, HTTP/1.1 and cleartext HTTP/2 (h2c
//! with prior knowledge, which is how Herald's client talks to `http://` endpoints).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::{MockRequest, MockResponse};

/// Answers one request. Synchronous: the mocks only verify and look things up.
pub(crate) type Handler = Arc<dyn Fn(MockRequest) -> MockResponse + Send + Sync>;

/// A running server; dropping it stops accepting and closes every connection.
pub(crate) struct Server {
    accept: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts the connection tasks.
        self.accept.abort();
    }
}

/// Binds `127.0.0.1:0`. Separate from [`serve`] so a mock knows its own URL (the FCM token
/// endpoint checks the assertion's audience against it) before the first request.
pub(crate) async fn bind() -> io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Serves `handler` on `listener`; `http2_only` refuses HTTP/1.1 like APNs does.
pub(crate) fn serve(listener: TcpListener, http2_only: bool, handler: Handler) -> Server {
    Server { accept: tokio::spawn(accept_loop(listener, http2_only, handler)) }
}

async fn accept_loop(listener: TcpListener, http2_only: bool, handler: Handler) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(serve_connection(stream, http2_only, handler.clone()));
                }
            }
            // Reaps finished connections so the set does not grow over a long benchmark.
            Some(_) = connections.join_next() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, http2_only: bool, handler: Handler) {
    // Latency matters more than packet count on loopback.
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handle(request, &handler).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if http2_only {
        builder = builder.http2_only();
    }
    // Herald multiplexes many deliveries over one connection; don't make them queue.
    builder.http2().max_concurrent_streams(4096);
    // A connection error (client went away) ends only this connection.
    let _ = builder.serve_connection(TokioIo::new(stream), service).await;
}

async fn handle(request: Request<Incoming>, handler: &Handler) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
    let request = MockRequest {
        method: parts.method.to_string(),
        path: parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned()),
        version: format!("{:?}", parts.version),
        headers: parts.headers,
        body,
        received_at: Instant::now(),
        received_at_system: SystemTime::now(),
        status: 0,
        rejection: None,
    };
    to_hyper(handler(request))
}

fn to_hyper(answer: MockResponse) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(answer.status);
    for (name, value) in &answer.headers {
        builder = builder.header(name, value);
    }
    builder.body(Full::new(Bytes::from(answer.body))).unwrap_or_else(|e| {
        // A test scripted an impossible answer (bad status or header); say so loudly.
        let mut response = Response::new(Full::new(Bytes::from(format!("mock: invalid scripted answer: {e}"))));
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        response
    })
}
