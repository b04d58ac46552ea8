//! The frame every console page shares: HTTP replies with the security headers, the layout (navigation, language
//! switch, breadcrumbs), forms with the server's field errors, error pages, and the small parsers of what a browser
//! sends (query strings, form bodies, cookies).

use bytes::Bytes;
use http_body_util::Full;
use hyper::StatusCode;
use hyper::header::{self, HeaderValue};

use super::Visit;
use super::i18n::Lang;

pub type Reply = hyper::Response<Full<Bytes>>;

/// The console's style sheet, served as `/assets/console.css`.
pub const CSS: &str = include_str!("assets/console.css");

/// `text` with `& < > " '` escaped for HTML text and attribute values.
pub fn escape(text: &str) -> String {
    crate::certificate::html_escape(text)
}

/// Percent-encodes `text` for a query value.
pub fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// `a=1&b=x%20y` (a query string or an `application/x-www-form-urlencoded` body) as pairs; `+` is a space.
pub fn parse_urlencoded(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).ok();
                match hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        index += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a=1; b=2` as pairs.
pub fn parse_cookies(header: &str) -> Vec<(String, String)> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('=').map(|(key, value)| (key.to_string(), value.to_string())))
        .collect()
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(given: &str, expected: &str) -> bool {
    let (given, expected) = (given.as_bytes(), expected.as_bytes());
    !expected.is_empty()
        && given.len() == expected.len()
        && given.iter().zip(expected).fold(0u8, |differ, (a, b)| differ | (a ^ b)) == 0
}

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut reply = hyper::Response::new(Full::new(body.into()));
    *reply.status_mut() = status;
    let headers = reply.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'self'"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    reply
}

pub fn html(status: StatusCode, body: String) -> Reply {
    reply(status, "text/html; charset=utf-8", body)
}

pub fn plain(status: StatusCode, text: &'static str) -> Reply {
    reply(status, "text/plain; charset=utf-8", text)
}

/// A CSV download (UTF-8 with a byte-order mark, so spreadsheet programs read the Chinese headers).
pub fn csv(file_name: &str, text: String) -> Reply {
    let mut reply = reply(StatusCode::OK, "text/csv; charset=utf-8", format!("\u{feff}{text}"));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        reply.headers_mut().insert(header::CONTENT_DISPOSITION, value);
    }
    reply
}

pub fn asset(content_type: &'static str, text: &'static str) -> Reply {
    let mut reply = reply(StatusCode::OK, content_type, text);
    reply.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=3600"));
    reply
}

/// 303 See Other to `location`.
pub fn redirect(location: &str) -> Reply {
    let mut reply = reply(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "");
    if let Ok(value) = HeaderValue::from_str(location) {
        reply.headers_mut().insert(header::LOCATION, value);
    }
    reply
}

pub fn add_cookie(reply: &mut Reply, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        reply.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// The document around `main`: head, skip link, header with the node, language switch and logout, navigation.
fn document(lang: Lang, title: &str, header: &str, main: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · {}</title><link rel=\"stylesheet\" href=\"/assets/console.css\"></head><body>\
         <a class=\"skip\" href=\"#main\">{}</a>{header}<main id=\"main\" tabindex=\"-1\">{main}</main></body></html>",
        lang.html_lang(),
        escape(title),
        escape(lang.t("app.title")),
        escape(lang.t("skip")),
    )
}

/// The links switching the language of `path` (keeping its other query parameters).
fn language_switch(lang: Lang, path: &str, query: &[(String, String)]) -> String {
    let kept: String = query
        .iter()
        .filter(|(key, _)| key != "lang" && key != "notice" && key != "id")
        .map(|(key, value)| format!("&{}={}", encode(key), encode(value)))
        .collect();
    let link = |code: &str, text: &str, label: &str| {
        let current = if lang.code() == code { " aria-current=\"true\"" } else { "" };
        format!(
            "<a id=\"lang-{code}\" href=\"{}?lang={code}{}\" hreflang=\"{code}\" lang=\"{label}\"{current}>{text}</a>",
            escape(path),
            escape(&kept)
        )
    };
    format!(
        "<nav class=\"lang\" aria-label=\"{}\">{} | {}</nav>",
        escape(lang.t("lang.label")),
        link("zh", "中文", "zh-CN"),
        link("en", "English", "en")
    )
}

/// A page of a logged-in visit.
pub fn layout(visit: &Visit<'_>, title: &str, main: &str) -> String {
    let lang = visit.lang();
    let app = visit.app;
    let code = app.node_code();
    let mut nav = format!(
        "<nav class=\"main\" aria-label=\"{}\"><ul><li><a href=\"/region/{code}\">{}</a></li>",
        escape(lang.t("nav.label")),
        escape(lang.t("nav.dashboard"))
    );
    if app.config.node.level == crate::config::Level::County {
        for (path, key) in [
            ("volunteers", "nav.volunteers"),
            ("teams", "nav.teams"),
            ("projects", "nav.projects"),
            ("hours", "nav.hours"),
            ("trainings", "nav.trainings"),
            ("certificates", "nav.certificates"),
        ] {
            let current =
                if visit.request.path.starts_with(&format!("/office/{path}")) { " aria-current=\"page\"" } else { "" };
            nav.push_str(&format!("<li><a href=\"/office/{path}\"{current}>{}</a></li>", escape(lang.t(key))));
        }
    }
    nav.push_str("</ul></nav>");
    let header = format!(
        "<header><p class=\"brand\">{} · {} ({code})</p>{}\
         <form class=\"logout\" method=\"post\" action=\"/logout\"><span>{}: {}</span>\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\" id=\"logout\">{}</button></form>\
         {nav}</header>",
        escape(lang.t("app.title")),
        escape(&app.config.node.name),
        language_switch(lang, &visit.request.path, &visit.request.query),
        escape(lang.t("signed_in_as")),
        escape(&visit.caller.name),
        escape(&visit.csrf),
        escape(lang.t("logout")),
    );
    document(lang, title, &header, main)
}

/// The login page, with `error` (a text key) as an alert.
pub fn login(lang: Lang, node_name: &str, error: Option<&str>, status: StatusCode) -> Reply {
    let error = error
        .map(|key| format!("<p class=\"form-error\" role=\"alert\" id=\"login-error\">{}</p>", escape(lang.t(key))))
        .unwrap_or_default();
    let header = format!(
        "<header><p class=\"brand\">{} · {}</p>{}</header>",
        escape(lang.t("app.title")),
        escape(node_name),
        language_switch(lang, "/login", &[])
    );
    let main = format!(
        "<h1>{}</h1><p>{}</p>{error}<form id=\"login\" method=\"post\" action=\"/login\">\
         <label for=\"token\">{}</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required{}>\
         <button id=\"login-submit\" type=\"submit\">{}</button></form>",
        escape(lang.t("login.title")),
        escape(lang.t("login.hint")),
        escape(lang.t("login.token")),
        if error.is_empty() { "" } else { " aria-invalid=\"true\" aria-describedby=\"login-error\"" },
        escape(lang.t("login.submit")),
    );
    html(status, document(lang, lang.t("login.title"), &header, &main))
}

/// An error page (403, 404, …) with the reason.
pub fn error(lang: Lang, status: StatusCode, reason: &str) -> Reply {
    let title = match status {
        StatusCode::FORBIDDEN => lang.t("error.403"),
        StatusCode::NOT_FOUND => lang.t("error.404"),
        _ => lang.t("error.other"),
    };
    let main = format!(
        "<h1>{} ({})</h1><p class=\"reason\" role=\"alert\">{}</p><p><a href=\"/\">{}</a></p>",
        escape(title),
        status.as_u16(),
        escape(reason),
        escape(lang.t("back"))
    );
    html(status, document(lang, title, "", &main))
}

/// The page for a refusal of the API that is not a form's field errors.
pub fn status_page(lang: Lang, status: &tonic::Status) -> Reply {
    let code = match status.code() {
        tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
        tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists => {
            StatusCode::BAD_REQUEST
        }
        tonic::Code::Unavailable | tonic::Code::ResourceExhausted => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(lang, code, status.message())
}

/// A form's state: the user's values and the server's errors per input name, plus errors of no input.
#[derive(Default)]
pub struct Form {
    pub values: Vec<(String, String)>,
    pub errors: Vec<(String, String)>,
    pub general: Vec<String>,
}

impl Form {
    pub fn value(&self, name: &str) -> &str {
        self.values.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str()).unwrap_or("")
    }

    fn error(&self, name: &str) -> Option<&str> {
        self.errors.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// The refusal `status` of a submission of this form: InvalidArgument's field violations go next to the inputs
    /// named in `inputs` (request field → input name), everything else to the form's alert.
    pub fn refused(&mut self, status: &tonic::Status, inputs: &[(&str, &str)]) {
        use tonic_types::StatusExt as _;
        let violations = status.get_details_bad_request().map(|bad| bad.field_violations).unwrap_or_default();
        if violations.is_empty() {
            self.general.push(status.message().to_string());
        }
        for violation in violations {
            // `skills[2]`, `start_time.seconds`: the input is the field's first part.
            let field = violation.field.split(['[', '.']).next().unwrap_or("").to_string();
            match inputs.iter().find(|(request_field, _)| *request_field == field) {
                Some((_, input)) if self.error(input).is_none() => {
                    self.errors.push((input.to_string(), violation.description))
                }
                Some((_, input)) => {
                    if let Some(slot) = self.errors.iter_mut().find(|(key, _)| key == input) {
                        slot.1 = format!("{}; {}", slot.1, violation.description);
                    }
                }
                None => self.general.push(format!("{}: {}", violation.field, violation.description)),
            }
        }
    }

    /// The alert above the form, if anything was refused.
    pub fn alert(&self, lang: Lang) -> String {
        if self.errors.is_empty() && self.general.is_empty() {
            return String::new();
        }
        let mut text = format!("<div class=\"form-error\" role=\"alert\"><p>{}</p>", escape(lang.t("form.errors")));
        if !self.general.is_empty() {
            text.push_str("<ul>");
            for message in &self.general {
                text.push_str(&format!("<li>{}</li>", escape(message)));
            }
            text.push_str("</ul>");
        }
        text.push_str("</div>");
        text
    }

    fn described(&self, name: &str) -> (String, String) {
        match self.error(name) {
            Some(message) => (
                format!(" aria-invalid=\"true\" aria-describedby=\"error-{name}\""),
                format!("<p class=\"field-error\" id=\"error-{name}\" role=\"alert\">{}</p>", escape(message)),
            ),
            None => (String::new(), String::new()),
        }
    }

    /// A labelled `<input>` of `kind` with its value and, if refused, its error.
    pub fn input(&self, lang: Lang, name: &str, kind: &str, required: bool) -> String {
        let (aria, error) = self.described(name);
        let star = if required { " *" } else { "" };
        let required = if required { " required" } else { "" };
        format!(
            "<div class=\"field\"><label for=\"{name}\">{}{star}</label>\
             <input id=\"{name}\" name=\"{name}\" type=\"{kind}\" value=\"{}\"{required}{aria}>{error}</div>",
            escape(lang.t(&format!("field.{name}"))),
            escape(self.value(name)),
        )
    }

    pub fn textarea(&self, lang: Lang, name: &str, required: bool) -> String {
        let (aria, error) = self.described(name);
        let star = if required { " *" } else { "" };
        let required = if required { " required" } else { "" };
        format!(
            "<div class=\"field\"><label for=\"{name}\">{}{star}</label>\
             <textarea id=\"{name}\" name=\"{name}\" rows=\"3\"{required}{aria}>{}</textarea>{error}</div>",
            escape(lang.t(&format!("field.{name}"))),
            escape(self.value(name)),
        )
    }

    pub fn checkbox(&self, lang: Lang, name: &str) -> String {
        let (aria, error) = self.described(name);
        let checked = if self.value(name).is_empty() { "" } else { " checked" };
        format!(
            "<div class=\"field check\"><input id=\"{name}\" name=\"{name}\" type=\"checkbox\" value=\"on\"{checked}{aria}>\
             <label for=\"{name}\">{}</label>{error}</div>",
            escape(lang.t(&format!("field.{name}"))),
        )
    }

    /// A `<select>` of (value, text).
    pub fn select(&self, lang: Lang, name: &str, options: &[(&str, String)], required: bool) -> String {
        let (aria, error) = self.described(name);
        let star = if required { " *" } else { "" };
        let mut text = format!(
            "<div class=\"field\"><label for=\"{name}\">{}{star}</label><select id=\"{name}\" name=\"{name}\"{aria}>",
            escape(lang.t(&format!("field.{name}")))
        );
        for (value, label) in options {
            let selected = if self.value(name) == *value { " selected" } else { "" };
            text.push_str(&format!("<option value=\"{value}\"{selected}>{}</option>", escape(label)));
        }
        text.push_str(&format!("</select>{error}</div>"));
        text
    }
}

/// The `notice` of a list page after a successful form (`?notice=<key>&id=<what>`).
pub fn notice(visit: &Visit<'_>) -> String {
    let lang = visit.lang();
    let Some(key) = visit.request.query("notice") else { return String::new() };
    let key = match key {
        "registered" => "notice.registered",
        "published" => "notice.published",
        "recorded" => "notice.recorded",
        "confirmed" => "notice.confirmed",
        _ => return String::new(),
    };
    format!(
        "<p class=\"notice\" role=\"status\">{}{}</p>",
        escape(lang.t(key)),
        escape(visit.request.query("id").unwrap_or(""))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencoded_pairs_decode_percent_and_plus() {
        assert_eq!(
            parse_urlencoded("a=1&name=%E5%BC%A0+%E4%B8%89&empty=&flag"),
            vec![
                ("a".into(), "1".into()),
                ("name".into(), "张 三".into()),
                ("empty".into(), String::new()),
                ("flag".into(), String::new())
            ]
        );
        assert_eq!(parse_urlencoded("x=%zz&y=%4"), vec![("x".into(), "%zz".into()), ("y".into(), "%4".into())]);
        assert_eq!(decode(&encode("张三 & co/?")), "张三 & co/?");
    }

    #[test]
    fn escaping_covers_attributes_and_text() {
        assert_eq!(escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("", ""));
        assert!(!same_secret("ab", "abc"));
    }
}
