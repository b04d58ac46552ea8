//! The web console: pages for office staff served by the node itself (docs/CONSOLE.md), rendered on the server
//! in Chinese or English, with charts as inline SVG and every asset served from `/assets/`.
//!
//! The console holds no rule of its own: each page calls the node's gRPC service implementations in-process, as
//! the session's account (`auth::Authenticated` as a request extension), so authorisation, validation and the
//! audit trail are the API's. Sessions live in memory (a restart logs everyone out): a random 256-bit id in an
//! HttpOnly, SameSite=Strict cookie maps to an account id and a CSRF token, and expires after
//! `console.session_ttl_s`.

mod chart;
mod dashboard;
mod i18n;
mod office;
mod page;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use ring::rand::SecureRandom as _;
use tokio::net::TcpListener;

use crate::app::App;
use crate::auth::{self, Caller};
use i18n::Lang;
use page::Reply;

/// Largest request body the console reads (its forms are small).
const BODY_BYTES_MAX: usize = 64 * 1024;
/// Longest a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Sessions kept at most; the oldest expiring are dropped first when a login would exceed it.
const SESSIONS_MAX: usize = 10_000;

pub const SESSION_COOKIE: &str = "ecovol_session";
pub const LANG_COOKIE: &str = "ecovol_lang";

/// A running console; aborting it closes the port (open connections end with the node).
pub struct ConsoleServer {
    task: tokio::task::JoinHandle<()>,
    pub address: std::net::SocketAddr,
}

impl ConsoleServer {
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// Starts the console if `console.listen` is set: HTTPS with `tls` (the office certificate, client certificates
/// of the office client CA requested but not required), plain HTTP without.
pub async fn start(app: &Arc<App>, tls: Option<Arc<rustls::ServerConfig>>) -> anyhow::Result<Option<ConsoleServer>> {
    if app.config.console.listen.is_empty() {
        return Ok(None);
    }
    let listener = TcpListener::bind(&app.config.console.listen)
        .await
        .with_context(|| format!("cannot listen on console.listen = {}", app.config.console.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, tls = tls.is_some(), "console serving");
    let console = Arc::new(Console {
        app: app.clone(),
        sessions: Mutex::new(HashMap::new()),
        ttl: Duration::from_secs(app.config.console.session_ttl_s),
        secure: tls.is_some(),
        random: ring::rand::SystemRandom::new(),
    });
    let task = tokio::spawn(accept(listener, console, tls.map(tokio_rustls::TlsAcceptor::from)));
    Ok(Some(ConsoleServer { task, address }))
}

struct Session {
    account_id: String,
    csrf: String,
    expires_at: Instant,
}

/// The console's state: the node and the open sessions.
pub(crate) struct Console {
    app: Arc<App>,
    sessions: Mutex<HashMap<String, Session>>,
    ttl: Duration,
    secure: bool,
    random: ring::rand::SystemRandom,
}

async fn accept(listener: TcpListener, console: Arc<Console>, tls: Option<tokio_rustls::TlsAcceptor>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "console: cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (console, tls) = (console.clone(), tls.clone());
        tokio::spawn(async move {
            match tls {
                None => serve_connection(TokioIo::new(stream), console, None).await,
                Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let certificate = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|certificates| certificates.first())
                            .map(|certificate| certificate.to_vec());
                        serve_connection(TokioIo::new(stream), console, certificate).await
                    }
                    Ok(Err(error)) => tracing::debug!(%peer, %error, "console: TLS handshake refused"),
                    Err(_) => tracing::debug!(%peer, "console: TLS handshake timed out"),
                },
            }
        });
    }
}

async fn serve_connection<I>(io: TokioIo<I>, console: Arc<Console>, certificate: Option<Vec<u8>>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let certificate = Arc::new(certificate);
    let service = hyper::service::service_fn(move |request| {
        let (console, certificate) = (console.clone(), certificate.clone());
        async move { Ok::<_, Infallible>(console.handle(request, certificate.as_deref()).await) }
    });
    if let Err(error) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
        tracing::debug!(%error, "console: connection ended with an error");
    }
}

/// One request as the pages see it.
pub(crate) struct Request {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub form: Vec<(String, String)>,
    pub lang: Lang,
}

impl Request {
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    pub fn field(&self, name: &str) -> &str {
        self.form.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str()).unwrap_or("")
    }
}

/// A logged-in request: the caller (read again from the account on every request) and the session's CSRF token.
pub(crate) struct Visit<'a> {
    pub app: &'a Arc<App>,
    pub request: Request,
    pub caller: Caller,
    pub csrf: String,
}

impl Visit<'_> {
    pub fn lang(&self) -> Lang {
        self.request.lang
    }

    /// `message` for an in-process service call as this visit's caller.
    pub fn call<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.extensions_mut().insert(auth::Authenticated::new(self.caller.clone()));
        request
    }
}

impl Console {
    async fn handle(self: Arc<Self>, request: hyper::Request<Incoming>, certificate: Option<&[u8]>) -> Reply {
        let started = Instant::now();
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().to_string();
        let query = parts.uri.query().map(page::parse_urlencoded).unwrap_or_default();
        let cookies = parts.headers.get_all(hyper::header::COOKIE).iter().filter_map(|v| v.to_str().ok()).fold(
            Vec::new(),
            |mut all, header| {
                all.extend(page::parse_cookies(header));
                all
            },
        );
        let cookie = |name: &str| cookies.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
        let chosen = query.iter().find(|(key, _)| key == "lang").and_then(|(_, value)| Lang::parse(value));
        let lang = chosen.or_else(|| cookie(LANG_COOKIE).and_then(|value| Lang::parse(&value))).unwrap_or(Lang::Zh);
        let form = if parts.method == Method::POST {
            match Limited::new(body, BODY_BYTES_MAX).collect().await {
                Ok(collected) => page::parse_urlencoded(&String::from_utf8_lossy(&collected.to_bytes())),
                Err(_) => return page::plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
            }
        } else {
            Vec::new()
        };
        let request = Request { method: parts.method.clone(), path, query, form, lang };
        let mut reply = self.route(request, cookie(SESSION_COOKIE), certificate).await;
        if let Some(lang) = chosen {
            page::add_cookie(
                &mut reply,
                &format!("{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Strict", lang.code()),
            );
        }
        tracing::debug!(
            method = %parts.method,
            path = %parts.uri.path(),
            status = reply.status().as_u16(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "console request"
        );
        reply
    }

    async fn route(&self, request: Request, session_id: Option<String>, certificate: Option<&[u8]>) -> Reply {
        let path = request.path.clone();
        match (&request.method, path.as_str()) {
            (&Method::GET, "/assets/console.css") => return page::asset("text/css; charset=utf-8", page::CSS),
            (&Method::GET, "/favicon.ico") => return page::plain(StatusCode::NOT_FOUND, "no icon"),
            (&Method::GET, "/login") => return self.login_form(&request, certificate),
            (&Method::POST, "/login") => return self.login(&request),
            _ => {}
        }
        let Some((account_id, csrf)) = session_id.as_deref().and_then(|id| self.session(id)) else {
            return page::redirect("/login");
        };
        let request_id = format!("console-{}", self.random_hex(8));
        let caller = match auth::authenticate_account(&*self.app.store, &account_id, request_id) {
            Ok(caller) => caller,
            Err(_) => {
                if let Some(id) = &session_id {
                    self.end_session(id);
                }
                return page::redirect("/login");
            }
        };
        if request.method == Method::POST && !page::same_secret(request.field("csrf"), &csrf) {
            tracing::warn!(path = %request.path, account = %caller.account_id, "console: POST without its CSRF token");
            return page::error(request.lang, StatusCode::FORBIDDEN, request.lang.t("error.csrf"));
        }
        if request.method == Method::POST && path == "/logout" {
            if let Some(id) = &session_id {
                self.end_session(id);
            }
            let mut reply = page::redirect("/login");
            page::add_cookie(&mut reply, &self.session_cookie("", 0));
            return reply;
        }
        let visit = Visit { app: &self.app, request, caller, csrf };
        match (&visit.request.method, path.as_str()) {
            (&Method::GET, "/") => page::redirect(&format!("/region/{}", self.app.node_code())),
            (&Method::GET, _) if path.starts_with("/region/") => {
                dashboard::region(&visit, &path["/region/".len()..]).await
            }
            (_, _) if path.starts_with("/office/") => office::route(&visit, &path["/office/".len()..]).await,
            _ => page::error(visit.lang(), StatusCode::NOT_FOUND, &format!("{}: {path}", visit.lang().t("error.404"))),
        }
    }

    fn login_form(&self, request: &Request, certificate: Option<&[u8]>) -> Reply {
        // A client certificate bound to an account logs in without a token.
        if let Some(der) = certificate
            && let Ok(caller) = auth::authenticate(&*self.app.store, None, Some(der), "console-login".into())
        {
            tracing::info!(account = %caller.account_id, "console: logged in by client certificate");
            return self.logged_in(&caller.account_id);
        }
        page::login(request.lang, &self.app.config.node.name, None, StatusCode::OK)
    }

    fn login(&self, request: &Request) -> Reply {
        let token = request.field("token").trim();
        if token.is_empty() {
            return page::login(
                request.lang,
                &self.app.config.node.name,
                Some("login.empty"),
                StatusCode::UNAUTHORIZED,
            );
        }
        match auth::authenticate(&*self.app.store, Some(token), None, "console-login".into()) {
            Ok(caller) => {
                tracing::info!(account = %caller.account_id, "console: logged in by token");
                self.logged_in(&caller.account_id)
            }
            Err(error) => {
                tracing::warn!(reason = %error, "console: login refused");
                page::login(request.lang, &self.app.config.node.name, Some("login.failed"), StatusCode::UNAUTHORIZED)
            }
        }
    }

    fn logged_in(&self, account_id: &str) -> Reply {
        let id = self.random_hex(32);
        let csrf = self.random_hex(32);
        let now = Instant::now();
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.retain(|_, session| session.expires_at > now);
            if sessions.len() >= SESSIONS_MAX
                && let Some(oldest) =
                    sessions.iter().min_by_key(|(_, session)| session.expires_at).map(|(id, _)| id.clone())
            {
                sessions.remove(&oldest);
            }
            sessions
                .insert(id.clone(), Session { account_id: account_id.to_string(), csrf, expires_at: now + self.ttl });
        }
        let mut reply = page::redirect("/");
        page::add_cookie(&mut reply, &self.session_cookie(&id, self.ttl.as_secs()));
        reply
    }

    fn session_cookie(&self, id: &str, max_age_s: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}")
    }

    /// The account and CSRF token of a live session; an expired one is removed.
    fn session(&self, id: &str) -> Option<(String, String)> {
        let mut sessions = self.sessions.lock().ok()?;
        let session = sessions.get(id)?;
        if session.expires_at <= Instant::now() {
            sessions.remove(id);
            return None;
        }
        Some((session.account_id.clone(), session.csrf.clone()))
    }

    fn end_session(&self, id: &str) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.remove(id);
        }
    }

    fn random_hex(&self, bytes: usize) -> String {
        let mut buffer = vec![0u8; bytes];
        if self.random.fill(&mut buffer).is_err() {
            // The system's random source failing is not something to serve through.
            tracing::error!("console: the system random source failed");
            std::process::abort();
        }
        hex::encode(buffer)
    }
}
