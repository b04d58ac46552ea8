//! A small W3C WebDriver client driving a real headless Chromium, for the web console's browser test.
//!
//! The client spawns Debian's `chromedriver` on a free loopback port (killed when the `Browser` is dropped), opens
//! one session with a fresh profile in a temporary folder, and speaks WebDriver's JSON over HTTP/1.1 with
//! hyper. Only the commands the tests need are here: navigate, find by CSS, text, attributes, click, keys,
//! submit, the current URL, scripts, screenshots.
//!
//! ```ignore
//! let installation = browser::Installation::find()?;        // Err(reason) when Chromium is not installed
//! let browser = Browser::launch(&installation).await?;
//! browser.goto("http://127.0.0.1:8080/login").await?;
//! browser.find("#token").await?.send_keys("…").await?;
//! browser.find("#login-submit").await?.click().await?;
//! browser.quit().await?;
//! ```

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// The key WebDriver uses to name an element reference in JSON (W3C WebDriver §12.1).
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long one WebDriver command may take (a page load included) before the test gives up on it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How long chromedriver may take to answer its status endpoint after it was spawned.
const DRIVER_START_TIMEOUT: Duration = Duration::from_secs(30);

/// The Chromium flags of every session: headless, no sandbox (tests run as root in CI), no traffic of its own to
/// the internet (updates, sync, field trials), a fixed window so screenshots compare.
const CHROMIUM_ARGS: [&str; 11] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--disable-default-apps",
    "--window-size=1280,900",
];

/// Key codes of the WebDriver "normalised key values" table (W3C WebDriver §17.4.2).
pub mod keys {
    pub const TAB: &str = "\u{E004}";
    pub const ENTER: &str = "\u{E007}";
}

/// Where Chromium and its driver are installed.
#[derive(Debug, Clone)]
pub struct Installation {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

impl Installation {
    /// Debian's `chromium` and `chromedriver` (`scripts/install-browser` installs them), or `ECOVOL_CHROMIUM` /
    /// `ECOVOL_CHROMEDRIVER` when set. `Err` says what is missing and how to install it.
    pub fn find() -> Result<Installation, String> {
        let pick = |variable: &str, default: &str| -> PathBuf {
            std::env::var_os(variable).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default))
        };
        let installation = Installation {
            chromium: pick("ECOVOL_CHROMIUM", "/usr/bin/chromium"),
            chromedriver: pick("ECOVOL_CHROMEDRIVER", "/usr/bin/chromedriver"),
        };
        let missing: Vec<String> = [&installation.chromium, &installation.chromedriver]
            .into_iter()
            .filter(|path| !path.is_file())
            .map(|path| path.display().to_string())
            .collect();
        if missing.is_empty() {
            Ok(installation)
        } else {
            Err(format!("{} not installed (run scripts/install-browser)", missing.join(" and ")))
        }
    }
}

/// A chromedriver process with one open Chromium session. Dropping it ends the session (closing Chromium) and
/// kills the driver; `quit` does the same and reports errors.
pub struct Browser {
    driver: Child,
    address: SocketAddr,
    session: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
    _profile: tempfile::TempDir,
}

/// An element of the current page, as WebDriver names it.
#[derive(Clone)]
pub struct Element<'b> {
    browser: &'b Browser,
    pub id: String,
}

impl Browser {
    /// Spawns chromedriver on a free loopback port and opens a headless Chromium session.
    pub async fn launch(installation: &Installation) -> anyhow::Result<Browser> {
        let port = crate::free_port();
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let driver = Command::new(&installation.chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawning {}", installation.chromedriver.display()))?;
        let mut browser = Browser {
            driver,
            address,
            session: None,
            client: Client::builder(TokioExecutor::new()).build_http(),
            _profile: tempfile::tempdir()?,
        };
        browser.wait_ready().await?;
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|arg| arg.to_string()).collect();
        args.push(format!("--user-data-dir={}", browser._profile.path().display()));
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "goog:chromeOptions": {
                        "binary": installation.chromium.display().to_string(),
                        "args": args,
                    },
                },
            },
        });
        let answer = browser.command(Method::POST, "/session", Some(capabilities)).await?;
        let session = answer["sessionId"].as_str().context("new session: no sessionId in the answer")?;
        browser.session = Some(session.to_string());
        Ok(browser)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + DRIVER_START_TIMEOUT;
        loop {
            if let Some(status) = self.driver.try_wait()? {
                bail!("chromedriver exited at start: {status}");
            }
            if let Ok(answer) = self.command(Method::GET, "/status", None).await
                && answer["ready"].as_bool() == Some(true)
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("chromedriver on {} not ready after {DRIVER_START_TIMEOUT:?}", self.address);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends one WebDriver command; returns the answer's `value`, or an error naming the WebDriver error.
    async fn command(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let uri = format!("http://{}{path}", self.address);
        let body = match body {
            Some(value) => Bytes::from(serde_json::to_vec(&value)?),
            None if method == Method::POST => Bytes::from_static(b"{}"),
            None => Bytes::new(),
        };
        let request = Request::builder()
            .method(method.clone())
            .uri(&uri)
            .header("content-type", "application/json; charset=utf-8")
            .body(Full::new(body))?;
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let bytes = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(COMMAND_TIMEOUT, exchange)
            .await
            .with_context(|| format!("webdriver {method} {path}: no answer in {COMMAND_TIMEOUT:?}"))?
            .with_context(|| format!("webdriver {method} {path}"))?;
        let answer: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("webdriver {method} {path}: not JSON: {}", String::from_utf8_lossy(&bytes)))?;
        let value = answer.get("value").cloned().unwrap_or(Value::Null);
        if !status.is_success() {
            let error = value["error"].as_str().unwrap_or("unknown error");
            let message = value["message"].as_str().unwrap_or_default();
            let first_line = message.lines().next().unwrap_or_default();
            bail!(WebDriverError {
                command: format!("{method} {path}"),
                error: error.into(),
                message: first_line.into()
            });
        }
        Ok(value)
    }

    fn session_path(&self, tail: &str) -> anyhow::Result<String> {
        let session = self.session.as_deref().context("the browser session is closed")?;
        Ok(format!("/session/{session}{tail}"))
    }

    async fn session_command(&self, method: Method, tail: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let path = self.session_path(tail)?;
        self.command(method, &path, body).await
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.session_command(Method::POST, "/url", Some(json!({ "url": url }))).await?;
        Ok(())
    }

    /// The URL of the current page.
    pub async fn url(&self) -> anyhow::Result<String> {
        let value = self.session_command(Method::GET, "/url", None).await?;
        value.as_str().map(str::to_string).context("current url: not a string")
    }

    /// The title of the current page.
    pub async fn title(&self) -> anyhow::Result<String> {
        let value = self.session_command(Method::GET, "/title", None).await?;
        value.as_str().map(str::to_string).context("title: not a string")
    }

    /// The HTML of the current page as the browser holds it now.
    pub async fn source(&self) -> anyhow::Result<String> {
        let value = self.session_command(Method::GET, "/source", None).await?;
        value.as_str().map(str::to_string).context("page source: not a string")
    }

    /// The first element matching the CSS selector, or an error naming the selector and the page.
    pub async fn find(&self, css: &str) -> anyhow::Result<Element<'_>> {
        match self.try_find(css).await? {
            Some(element) => Ok(element),
            None => bail!("no element matches {css:?} on {}", self.url().await.unwrap_or_default()),
        }
    }

    /// The first element matching the CSS selector, if any.
    pub async fn try_find(&self, css: &str) -> anyhow::Result<Option<Element<'_>>> {
        let body = json!({ "using": "css selector", "value": css });
        match self.session_command(Method::POST, "/element", Some(body)).await {
            Ok(value) => Ok(Some(self.element(&value)?)),
            Err(error) if is_no_such_element(&error) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Every element matching the CSS selector, in document order.
    pub async fn find_all(&self, css: &str) -> anyhow::Result<Vec<Element<'_>>> {
        let body = json!({ "using": "css selector", "value": css });
        let value = self.session_command(Method::POST, "/elements", Some(body)).await?;
        value.as_array().context("find elements: not a list")?.iter().map(|v| self.element(v)).collect()
    }

    /// Waits until an element matches the CSS selector (after a navigation the browser started by itself).
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> anyhow::Result<Element<'_>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(element) = self.try_find(css).await? {
                return Ok(element);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("no element matches {css:?} after {timeout:?} on {}", self.url().await.unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The element that has the keyboard focus.
    pub async fn active_element(&self) -> anyhow::Result<Element<'_>> {
        let value = self.session_command(Method::GET, "/element/active", None).await?;
        self.element(&value)
    }

    /// Presses and releases one key on the keyboard (not typed into an element: focus moves as for a person).
    pub async fn press_key(&self, key: &str) -> anyhow::Result<()> {
        let body = json!({
            "actions": [{
                "type": "key",
                "id": "keyboard",
                "actions": [{ "type": "keyDown", "value": key }, { "type": "keyUp", "value": key }],
            }],
        });
        self.session_command(Method::POST, "/actions", Some(body)).await?;
        Ok(())
    }

    /// Runs `script` (a function body: `return …`) in the page with `args` (elements are passed with
    /// `Element::as_arg`) and returns what it returned, as JSON.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        self.session_command(Method::POST, "/execute/sync", Some(json!({ "script": script, "args": args }))).await
    }

    /// Writes a PNG screenshot of the viewport to `path` (its folder is created).
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let value = self.session_command(Method::GET, "/screenshot", None).await?;
        let encoded = value.as_str().context("screenshot: not a string")?;
        let png = base64::engine::general_purpose::STANDARD.decode(encoded).context("screenshot: not base64")?;
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder)?;
        }
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }

    /// Ends the session (Chromium exits) and stops the driver.
    pub async fn quit(mut self) -> anyhow::Result<()> {
        if self.session.is_some() {
            let path = self.session_path("")?;
            self.command(Method::DELETE, &path, None).await?;
            self.session = None;
        }
        Ok(())
    }

    fn element(&self, value: &Value) -> anyhow::Result<Element<'_>> {
        let id = value[ELEMENT_KEY].as_str().with_context(|| format!("not an element reference: {value}"))?;
        Ok(Element { browser: self, id: id.to_string() })
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A session still open (a test failed before `quit`) is deleted with a plain blocking request, since drop
        // cannot await: chromedriver then closes Chromium, which would otherwise outlive the test.
        if let Some(session) = self.session.take() {
            let _ = delete_session_blocking(self.address, &session);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn delete_session_blocking(address: SocketAddr, session: &str) -> std::io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "DELETE /session/{session} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok(())
}

impl<'b> Element<'b> {
    /// This element as an argument of `Browser::execute`.
    pub fn as_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    async fn command(&self, method: Method, tail: &str, body: Option<Value>) -> anyhow::Result<Value> {
        self.browser.session_command(method, &format!("/element/{}{tail}", self.id), body).await
    }

    /// The rendered text of the element (what a person sees, whitespace collapsed).
    pub async fn text(&self) -> anyhow::Result<String> {
        let value = self.command(Method::GET, "/text", None).await?;
        value.as_str().map(str::to_string).context("element text: not a string")
    }

    /// The value of an HTML attribute, `None` when the element does not have it.
    pub async fn attribute(&self, name: &str) -> anyhow::Result<Option<String>> {
        let value = self.command(Method::GET, &format!("/attribute/{name}"), None).await?;
        Ok(value.as_str().map(str::to_string))
    }

    /// The value of a DOM property (e.g. `value` of an input as typed), `None` when unset.
    pub async fn property(&self, name: &str) -> anyhow::Result<Option<String>> {
        let value = self.command(Method::GET, &format!("/property/{name}"), None).await?;
        Ok(match value {
            Value::Null => None,
            Value::String(text) => Some(text),
            other => Some(other.to_string()),
        })
    }

    /// The lower-case tag name.
    pub async fn tag_name(&self) -> anyhow::Result<String> {
        let value = self.command(Method::GET, "/name", None).await?;
        value.as_str().map(str::to_lowercase).context("tag name: not a string")
    }

    /// Whether the element is rendered visibly (WebDriver's "element displayedness").
    pub async fn is_displayed(&self) -> anyhow::Result<bool> {
        let value = self.command(Method::GET, "/displayed", None).await?;
        value.as_bool().context("displayed: not a boolean")
    }

    /// Clicks the element as a person would (scrolled into view; fails if another element covers it).
    pub async fn click(&self) -> anyhow::Result<()> {
        self.command(Method::POST, "/click", None).await?;
        Ok(())
    }

    /// Types `text` into the element (focusing it first).
    pub async fn send_keys(&self, text: &str) -> anyhow::Result<()> {
        self.command(Method::POST, "/value", Some(json!({ "text": text }))).await?;
        Ok(())
    }

    /// Empties an input or textarea.
    pub async fn clear(&self) -> anyhow::Result<()> {
        self.command(Method::POST, "/clear", None).await?;
        Ok(())
    }

    /// Submits the form this element is (or belongs to) as its submit button would: validation and submit
    /// events run. WebDriver has no submit command, so this runs `requestSubmit` in the page.
    pub async fn submit(&self) -> anyhow::Result<()> {
        let script = "const form = arguments[0].form || arguments[0]; \
                      if (!(form instanceof HTMLFormElement)) { throw new Error('not in a form'); } \
                      form.requestSubmit();";
        self.browser.execute(script, vec![self.as_arg()]).await?;
        Ok(())
    }

    /// The first descendant matching the CSS selector.
    pub async fn find(&self, css: &str) -> anyhow::Result<Element<'b>> {
        let body = json!({ "using": "css selector", "value": css });
        let value =
            self.command(Method::POST, "/element", Some(body)).await.with_context(|| format!("finding {css:?}"))?;
        self.browser.element(&value)
    }

    /// Every descendant matching the CSS selector, in document order.
    pub async fn find_all(&self, css: &str) -> anyhow::Result<Vec<Element<'b>>> {
        let body = json!({ "using": "css selector", "value": css });
        let value = self.command(Method::POST, "/elements", Some(body)).await?;
        value.as_array().context("find elements: not a list")?.iter().map(|v| self.browser.element(v)).collect()
    }
}

/// A WebDriver error answer: the command, the W3C error code (`no such element`, …) and the first line of the
/// driver's message.
#[derive(Debug)]
pub struct WebDriverError {
    pub command: String,
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "webdriver {}: {}: {}", self.command, self.error, self.message)
    }
}

impl std::error::Error for WebDriverError {}

fn is_no_such_element(error: &anyhow::Error) -> bool {
    error.downcast_ref::<WebDriverError>().is_some_and(|e| e.error == "no such element")
}

/// The folder for the console test's screenshots: `target/console-screenshots` of the workspace (or of
/// `CARGO_TARGET_DIR`).
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let tests = Path::new(env!("CARGO_MANIFEST_DIR"));
        tests.parent().unwrap_or(tests).join("target")
    });
    target.join("console-screenshots")
}
