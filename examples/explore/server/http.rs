//! The HTTP side: a `tiny_http` server on 127.0.0.1, the page embedded in the
//! binary (no file to find, no CDN: it works offline), the API routes, and a log
//! line with the server's time for every analysis.
//!
//! Routes:
//! - `GET /`, `/explore.js`, `/explore.css`: the page;
//! - `GET /api/model`: title, layer table, filters, number of test images;
//! - `POST /api/drawing?width=W&height=H[&channels=3]` with `W·H` gray bytes
//!   (light on black), or `W·H·3` RGB bytes: the analysis of a drawing;
//! - `GET /api/test/N`: the analysis of test image `N`;
//!   both take `&class=K` for the saliency of class `K` instead of the prediction;
//! - `GET /api/training?since=K`: a live run's figures after step `K`.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use serde_json::{json, Value};
use tiny_http::{Header, Method, Request, Response};

use super::analysis::{self, ms, MAX_DRAWING_SIDE};
use super::App;

const INDEX_HTML: &str = include_str!("../page/index.html");
const EXPLORE_JS: &str = include_str!("../page/explore.js");
const EXPLORE_CSS: &str = include_str!("../page/explore.css");

/// Requests served at once: one analysis keeps a core busy, and a page sends at most
/// one at a time, so two workers serve a page and its training poll on 2 cores.
const WORKERS: usize = 2;

/// A listening server, not yet serving.
pub struct Server {
    inner: Arc<tiny_http::Server>,
    /// Where it listens (the port chosen, for `--port 0`).
    pub addr: SocketAddr,
}

/// Listens on 127.0.0.1:`port` (0 picks a free port). Only this machine can reach
/// the page.
pub fn bind(port: u16) -> Result<Server, String> {
    let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            format!("127.0.0.1:{port} is already in use: give another port (0 picks a free one)")
        }
        _ => format!("cannot listen on 127.0.0.1:{port}: {e}"),
    })?;
    no_delay(&listener);
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot tell the address of 127.0.0.1:{port}: {e}"))?;
    let inner = tiny_http::Server::from_listener(listener, None)
        .map_err(|e| format!("cannot serve on {addr}: {e}"))?;
    Ok(Server {
        inner: Arc::new(inner),
        addr,
    })
}

impl Server {
    /// Serves `app` on background threads for as long as the process runs.
    pub fn spawn(self, app: Arc<App>) -> Vec<JoinHandle<()>> {
        (0..WORKERS)
            .map(|_| {
                let (server, app) = (self.inner.clone(), app.clone());
                std::thread::spawn(move || {
                    while let Ok(request) = server.recv() {
                        handle(&app, request);
                    }
                })
            })
            .collect()
    }

    /// Serves `app` until the process ends.
    pub fn run(self, app: Arc<App>) {
        for worker in self.spawn(app) {
            let _ = worker.join();
        }
    }
}

/// Turns off Nagle's algorithm on the connections this listener accepts (Linux
/// gives them the listener's setting). `tiny_http` writes a response's head and
/// body separately; with Nagle on, the body can wait for the client's delayed ACK
/// of the head, up to 40 ms: measured on 9 of 300 analyses, against 4 ms for the
/// rest, and on none of 600 with it off. Best effort: without it, answers are only
/// sometimes slower.
#[cfg(unix)]
fn no_delay(listener: &TcpListener) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor, and a pointer to an int that lives
    // through the call, with its size.
    unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(unix))]
fn no_delay(_: &TcpListener) {}

/// A response: status, content type, body.
type Reply = (u16, &'static str, Vec<u8>);

fn handle(app: &App, mut request: Request) {
    let start = Instant::now();
    let url = request.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let reply = match (request.method(), path) {
        (Method::Get, "/" | "/index.html") => text(INDEX_HTML, "text/html; charset=utf-8"),
        (Method::Get, "/explore.js") => text(EXPLORE_JS, "text/javascript; charset=utf-8"),
        (Method::Get, "/explore.css") => text(EXPLORE_CSS, "text/css; charset=utf-8"),
        (Method::Get, "/api/model") => json_reply(Ok(analysis::model_info(app))),
        (Method::Get, "/api/training") => json_reply(match &app.live {
            Some(live) => Ok(live.json(param(query, "since").unwrap_or(0))),
            None => Ok(json!({"live": false})),
        }),
        (Method::Get, p) if p.starts_with("/api/test/") => {
            let analysis = p["/api/test/".len()..]
                .parse::<usize>()
                .map_err(|_| format!("{p}: not a test image number"))
                .and_then(|n| analysis::test_image(app, n, param(query, "class")));
            analysis_reply(
                &format!("test image {}", &p["/api/test/".len()..]),
                analysis,
                &app.classes,
                start,
            )
        }
        (Method::Post, "/api/drawing") => {
            let size = (param(query, "height"), param(query, "width"));
            let channels = param(query, "channels").unwrap_or(1);
            let analysis = match size {
                (Some(h), Some(w)) => read_body(&mut request, MAX_DRAWING_SIDE * MAX_DRAWING_SIDE * 3)
                    .and_then(|body| analysis::drawing(app, &body, (h, w, channels), param(query, "class"))),
                _ => Err("POST /api/drawing needs ?width=W&height=H".to_string()),
            };
            let what = format!("drawing {}×{}", size.1.unwrap_or(0), size.0.unwrap_or(0));
            analysis_reply(&what, analysis, &app.classes, start)
        }
        _ => (
            404,
            "text/plain; charset=utf-8",
            format!("no page at {path}").into_bytes(),
        ),
    };
    let (status, content_type, body) = reply;
    let response = Response::from_data(body)
        .with_status_code(status)
        .with_header(header("Content-Type", content_type))
        .with_header(header("Cache-Control", "no-store"));
    // A page closed mid-answer is not the server's problem.
    let _ = request.respond(response);
}

fn text(body: &str, content_type: &'static str) -> Reply {
    (200, content_type, body.as_bytes().to_vec())
}

/// 200 with the JSON, or 400 with `{"error": …}`.
fn json_reply(value: Result<Value, String>) -> Reply {
    match value {
        Ok(value) => (200, "application/json", value.to_string().into_bytes()),
        Err(error) => (
            400,
            "application/json",
            json!({ "error": error }).to_string().into_bytes(),
        ),
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("ASCII header")
}

/// A whole-number query parameter.
fn param(query: &str, name: &str) -> Option<usize> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .and_then(|(_, value)| value.parse().ok())
}

/// The request body, refusing more than `limit` bytes without reading them all.
fn read_body(request: &mut Request, limit: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    request
        .as_reader()
        .take(limit as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| format!("reading the request: {e}"))?;
    if body.len() > limit {
        return Err(format!("a drawing is at most {limit} bytes"));
    }
    Ok(body)
}

/// The analysis as a reply, and one log line: what, the answer (by class name), and
/// where the server's time went (the total includes writing the JSON).
fn analysis_reply(what: &str, analysis: Result<Value, String>, classes: &[String], start: Instant) -> Reply {
    let summary = analysis.as_ref().ok().map(|value| {
        let t = &value["server_ms"];
        let parts: Vec<String> = ["frame", "predict", "layers", "saliency", "encode"]
            .iter()
            .filter_map(|name| Some(format!("{name} {:.1}", t[name].as_f64()?)))
            .collect();
        let predicted = value["predicted"].as_u64().unwrap_or(0) as usize;
        let p = value["probabilities"][predicted].as_f64().unwrap_or(0.0);
        let name = classes.get(predicted).map_or("?", String::as_str);
        (format!("{name} ({p:.3})"), parts.join(", "))
    });
    let reply = json_reply(analysis);
    match summary {
        Some((answer, parts)) => println!("{what}: {answer} in {:.1} ms ({parts})", ms(start)),
        None => println!("{what}: refused: {}", String::from_utf8_lossy(&reply.2)),
    }
    reply
}
