//! One logical request to the API: auth, timeouts, no redirects, retries (decided in
//! [`crate::retry`]) and pagination. Everything above speaks JSON values and
//! [`CallError`]s.

use std::error::Error as _;
use std::fmt::Write as _;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use vps_client::VpsClientError;

use crate::api::{ErrorBody, Meta};
use crate::error::HetznerError;
use crate::retry::{AttemptFailure, Idempotency, RateLimit, Retrier, Verdict, classify};
use crate::{ApiToken, HetznerConfig};

/// How many pages a list may have before the client assumes the API loops.
const MAX_PAGES: u64 = 10_000;
/// How much of a non-JSON error body is quoted in a message.
const MAX_QUOTED_BODY: usize = 200;

/// The transport shared by all calls of one client.
pub(crate) struct Http {
    client: reqwest::Client,
    base: Url,
    /// `Bearer <token>`, marked sensitive so the HTTP stack never prints it.
    auth: HeaderValue,
    config: HetznerConfig,
}

/// A successful answer: its body.
pub(crate) struct Answer {
    pub(crate) body: Vec<u8>,
}

impl Answer {
    /// The object under `field` of the JSON body; `call` names the request in errors.
    pub(crate) fn field<T: DeserializeOwned>(
        &self,
        field: &str,
        call: &str,
    ) -> Result<T, VpsClientError> {
        take_field(&mut parse_json(&self.body, call)?, field, call)
    }

    /// The object under `field`, or `None` when the answer has no body or no such field
    /// (a `DELETE` may answer 204, or `{"action": …}`).
    pub(crate) fn optional_field<T: DeserializeOwned>(
        &self,
        field: &str,
        call: &str,
    ) -> Result<Option<T>, VpsClientError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let mut value = parse_json(&self.body, call)?;
        match value.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(_) => take_field(&mut value, field, call).map(Some),
        }
    }
}

/// Why a call failed, once retries are done.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The API answered with a status that is not 2xx.
    Status {
        call: String,
        status: u16,
        /// The API's error code (`not_found`, `locked`, …), empty if none.
        code: String,
        message: String,
        attempts: u32,
    },
    /// No answer: connection refused or dropped, timeout, TLS failure.
    Transport {
        call: String,
        message: String,
        attempts: u32,
    },
    /// A request that is not repeated (a `POST`) failed after it may have reached the API.
    OutcomeUnknown { call: String, message: String },
}

impl CallError {
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, CallError::Status { status: 404, .. })
            || matches!(self, CallError::Status { code, .. } if code == "not_found")
    }

    /// The API's error code, if it answered with one.
    pub(crate) fn code(&self) -> Option<&str> {
        match self {
            CallError::Status { code, .. } if !code.is_empty() => Some(code),
            _ => None,
        }
    }
}

impl From<CallError> for VpsClientError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Status {
                call,
                status,
                code,
                message,
                attempts,
            } if status == 429
                || status >= 500
                || matches!(
                    code.as_str(),
                    "locked" | "resource_locked" | "conflict" | "rate_limit_exceeded"
                ) =>
            {
                VpsClientError::Transient {
                    message: format!(
                        "{call}: HTTP {status}: {} (gave up after {attempts} attempt{})",
                        with_code(&code, &message),
                        plural(attempts)
                    ),
                }
            }
            CallError::Status {
                call,
                status,
                code,
                message,
                ..
            } => VpsClientError::Api {
                status,
                message: format!("{call}: {}", with_code(&code, &message)),
            },
            CallError::Transport {
                call,
                message,
                attempts,
            } => VpsClientError::Transient {
                message: format!(
                    "{call}: {message} (gave up after {attempts} attempt{})",
                    plural(attempts)
                ),
            },
            CallError::OutcomeUnknown { call, message } => VpsClientError::OutcomeUnknown {
                message: format!(
                    "{call}: {message} (not repeated: the API may have carried it out)"
                ),
            },
        }
    }
}

fn with_code(code: &str, message: &str) -> String {
    if code.is_empty() {
        message.to_owned()
    } else {
        format!("{code}: {message}")
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// One attempt's outcome: status, rate-limit headers, body.
struct Reply {
    status: StatusCode,
    rate_limit: RateLimit,
    body: Vec<u8>,
}

impl Http {
    pub(crate) fn new(config: &HetznerConfig, token: &ApiToken) -> Result<Self, HetznerError> {
        let base = parse_base_url(&config.api_base_url)?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| HetznerError::InvalidApiToken)?;
        auth.set_sensitive(true);
        install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout())
            .connect_timeout(config.connect_timeout())
            // A redirect would replay a create's body (with the private host key in its
            // user_data) to another address; the API never redirects.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mngr-vps-hetzner/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HetznerError::HttpClient(error_chain(&e)))?;
        Ok(Self {
            client,
            base,
            auth,
            config: config.clone(),
        })
    }

    pub(crate) fn base_url(&self) -> &Url {
        &self.base
    }

    fn url(&self, path: &str, query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        url.set_path(&format!("{}{path}", self.base.path().trim_end_matches('/')));
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in query {
                pairs.append_pair(key, value);
            }
        }
        url
    }

    /// Sends one logical request, retrying as [`crate::retry`] decides, and returns the
    /// first 2xx answer.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, CallError> {
        let call = format!("{method} {path}");
        let url = self.url(path, query);
        // `Value`'s `Display` is its compact JSON text and cannot fail.
        let body = body.map(|value| value.to_string().into_bytes());
        let idempotency = if method == Method::POST {
            Idempotency::NotIdempotent
        } else {
            Idempotency::Idempotent
        };
        let mut retrier = Retrier::new(
            self.config.retry_backoff(),
            self.config.max_retries,
            self.config.lock_timeout(),
            std::time::Duration::from_secs_f64(self.config.rate_limit_max_wait_secs),
        );
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            tracing::debug!(%method, path, attempt, "Hetzner API request");
            let (failure, rate_limit, error) = match self
                .attempt(method.clone(), url.clone(), body.clone())
                .await
            {
                Ok(reply) if reply.status.is_success() => {
                    tracing::trace!(%method, path, status = reply.status.as_u16(), "Hetzner API answer");
                    return Ok(Answer { body: reply.body });
                }
                Ok(reply) => {
                    let (code, message) = error_message(reply.status, &reply.body);
                    (
                        AttemptFailure::Status {
                            status: reply.status.as_u16(),
                            code: (!code.is_empty()).then(|| code.clone()),
                        },
                        reply.rate_limit,
                        CallError::Status {
                            call: call.clone(),
                            status: reply.status.as_u16(),
                            code,
                            message,
                            attempts: attempt,
                        },
                    )
                }
                Err(e) => (
                    if e.is_connect() {
                        AttemptFailure::Connect
                    } else {
                        AttemptFailure::AfterSend
                    },
                    RateLimit::default(),
                    CallError::Transport {
                        call: call.clone(),
                        message: error_chain(&e),
                        attempts: attempt,
                    },
                ),
            };
            let verdict = classify(&failure, idempotency);
            let reason = describe(&error);
            let Some(pause) = retrier.pause(verdict, &rate_limit) else {
                if verdict
                    == (Verdict::Stop {
                        may_have_acted: true,
                    })
                {
                    tracing::warn!(%method, path, attempt, %reason, "Hetzner API request failed after it may have been carried out; not retried");
                    return Err(CallError::OutcomeUnknown {
                        call,
                        message: reason,
                    });
                }
                tracing::debug!(%method, path, attempt, %reason, ?verdict, "Hetzner API request failed; not retried");
                return Err(error);
            };
            tracing::warn!(
                %method,
                path,
                attempt,
                %reason,
                ?verdict,
                pause_ms = pause.as_millis() as u64,
                "Hetzner API request failed; retrying"
            );
            tokio::time::sleep(pause).await;
        }
    }

    /// One attempt.
    async fn attempt(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, reqwest::Error> {
        let mut request = self
            .client
            .request(method, url)
            .header(AUTHORIZATION, self.auth.clone())
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let rate_limit = rate_limit_headers(response.headers());
        let body = response.bytes().await?.to_vec();
        Ok(Reply {
            status,
            rate_limit,
            body,
        })
    }

    /// Reads every page of a list: `GET path?…&page=N&per_page=M` until
    /// `meta.pagination.next_page` is `null` (or 0), collecting the array under `field`.
    pub(crate) async fn list_all<T: DeserializeOwned>(
        &self,
        path: &str,
        field: &str,
        filter: &[(&str, String)],
    ) -> Result<Vec<T>, VpsClientError> {
        let call = format!("GET {path}");
        let mut items = Vec::new();
        let mut page = 1u64;
        while page <= MAX_PAGES {
            let mut query = filter.to_vec();
            query.push(("page", page.to_string()));
            query.push(("per_page", self.config.page_size.to_string()));
            let answer = self.send(Method::GET, path, &query, None).await?;
            let mut value = parse_json(&answer.body, &call)?;
            let page_items: Vec<T> = take_field(&mut value, field, &call)?;
            let meta: Meta = match value.get_mut("meta").map(serde_json::Value::take) {
                Some(meta) => serde_json::from_value(meta)
                    .map_err(|e| VpsClientError::InvalidResponse(format!("{call}: `meta`: {e}")))?,
                None => Meta::default(),
            };
            tracing::trace!(path, page, items = page_items.len(), "Hetzner API page");
            items.extend(page_items);
            match meta
                .pagination
                .and_then(|p| p.next_page)
                .filter(|n| *n != 0)
            {
                None => return Ok(items),
                Some(next) if next <= page => {
                    return Err(VpsClientError::InvalidResponse(format!(
                        "{call}: page {page} says the next page is {next}"
                    )));
                }
                Some(next) => page = next,
            }
        }
        Err(VpsClientError::InvalidResponse(format!(
            "{call}: more than {MAX_PAGES} pages"
        )))
    }
}

/// The `RateLimit-*` (and `Retry-After`) headers.
fn rate_limit_headers(headers: &HeaderMap) -> RateLimit {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    RateLimit {
        limit: number("ratelimit-limit"),
        remaining: number("ratelimit-remaining"),
        reset_unix: number("ratelimit-reset"),
        retry_after: number("retry-after"),
    }
}

fn parse_json(body: &[u8], call: &str) -> Result<serde_json::Value, VpsClientError> {
    serde_json::from_slice(body).map_err(|e| {
        VpsClientError::InvalidResponse(format!("{call}: the answer is not JSON: {e}"))
    })
}

fn take_field<T: DeserializeOwned>(
    value: &mut serde_json::Value,
    field: &str,
    call: &str,
) -> Result<T, VpsClientError> {
    let inner = value
        .get_mut(field)
        .map(serde_json::Value::take)
        .ok_or_else(|| {
            VpsClientError::InvalidResponse(format!("{call}: no `{field}` in the answer"))
        })?;
    serde_json::from_value(inner)
        .map_err(|e| VpsClientError::InvalidResponse(format!("{call}: `{field}`: {e}")))
}

/// The API's error code and message (`{"error": {"code", "message"}}`), else a bounded
/// quote of the body, else the reason phrase. A redirect is named as one.
fn error_message(status: StatusCode, body: &[u8]) -> (String, String) {
    if status.is_redirection() {
        return (
            String::new(),
            format!("the API answered with a redirect (HTTP {status}), which is not followed"),
        );
    }
    if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body)
        && !(parsed.error.code.is_empty() && parsed.error.message.trim().is_empty())
    {
        return (parsed.error.code, parsed.error.message.trim().to_owned());
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return (
            String::new(),
            status.canonical_reason().unwrap_or("no message").to_owned(),
        );
    }
    let mut quoted: String = text
        .chars()
        .take(MAX_QUOTED_BODY)
        .flat_map(char::escape_default)
        .collect();
    if text.chars().count() > MAX_QUOTED_BODY {
        quoted.push('…');
    }
    (String::new(), quoted)
}

fn describe(error: &CallError) -> String {
    match error {
        CallError::Status {
            status,
            code,
            message,
            ..
        } => format!("HTTP {status}: {}", with_code(code, message)),
        CallError::Transport { message, .. } | CallError::OutcomeUnknown { message, .. } => {
            message.clone()
        }
    }
}

/// An error and its sources, `outer: inner: innermost`, skipping repeats.
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            let _ = write!(text, ": {inner_text}");
        }
        source = inner.source();
    }
    text
}

/// Checks the base URL: `https`, or `http` to a loopback host only (a local mock), since
/// the token travels in a header. No query or fragment.
fn parse_base_url(text: &str) -> Result<Url, HetznerError> {
    let bad = |why: &str| HetznerError::Config(format!("`api_base_url` {text:?} {why}"));
    let url = Url::parse(text.trim()).map_err(|e| bad(&format!("is not a URL: {e}")))?;
    let loopback = url.host_str().is_some_and(|host| {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(bad(
                "must use https: the token would travel in clear text (http is allowed only to a loopback host)",
            ));
        }
        _ => return Err(bad("must be an https URL")),
    }
    if url.host_str().is_none() || url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must be a plain https://host/path URL"));
    }
    Ok(url)
}

/// reqwest is built without a default TLS crypto provider; install ring once, unless
/// another provider is installed already.
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_rules() {
        assert!(parse_base_url("https://api.hetzner.cloud/v1").is_ok());
        assert!(parse_base_url("http://127.0.0.1:8080/v1").is_ok());
        assert!(parse_base_url("http://localhost:8080").is_ok());
        assert!(parse_base_url("http://[::1]:8080").is_ok());
        assert!(parse_base_url("http://api.hetzner.cloud/v1").is_err());
        assert!(parse_base_url("http://127.0.0.1.example.com/v1").is_err());
        assert!(parse_base_url("ftp://api.hetzner.cloud/v1").is_err());
        assert!(parse_base_url("https://api.hetzner.cloud/v1?x=1").is_err());
        assert!(parse_base_url("not a url").is_err());
    }

    #[test]
    fn label_selectors_are_url_encoded_and_the_base_path_kept() {
        let config = HetznerConfig {
            api_base_url: "https://api.hetzner.cloud/v1/".to_owned(),
            ..HetznerConfig::default()
        };
        let http = Http::new(&config, &ApiToken::new("t")).expect("client");
        let url = http.url(
            "/servers",
            &[
                ("label_selector", "mngr-provider==hetzner".to_owned()),
                ("page", "1".to_owned()),
            ],
        );
        assert_eq!(
            url.as_str(),
            "https://api.hetzner.cloud/v1/servers?label_selector=mngr-provider%3D%3Dhetzner&page=1"
        );
    }

    #[test]
    fn error_messages_use_the_api_error_object() {
        let (code, message) = error_message(
            StatusCode::LOCKED,
            br#"{"error":{"code":"locked","message":"cannot perform operation because server is locked","details":{}}}"#,
        );
        assert_eq!(code, "locked");
        assert_eq!(message, "cannot perform operation because server is locked");
        let (code, message) = error_message(
            StatusCode::TOO_MANY_REQUESTS,
            br#"{"error":{"message":"limit of 3600 requests per hour reached","code":"rate_limit_exceeded","details":null}}"#,
        );
        assert_eq!(code, "rate_limit_exceeded");
        assert!(message.contains("3600"));
        let (code, message) = error_message(StatusCode::BAD_GATEWAY, b"<html>bad\ngateway</html>");
        assert_eq!(
            (code.as_str(), message.as_str()),
            ("", "<html>bad\\ngateway</html>")
        );
        let (_, message) = error_message(StatusCode::SERVICE_UNAVAILABLE, b"");
        assert_eq!(message, "Service Unavailable");
        let (_, message) = error_message(StatusCode::TEMPORARY_REDIRECT, b"");
        assert!(message.contains("redirect"), "{message}");
    }

    #[test]
    fn exhausted_and_permanent_failures_map_to_the_trait_error() {
        let status = |status: u16, code: &str| CallError::Status {
            call: "GET /servers".to_owned(),
            status,
            code: code.to_owned(),
            message: "m".to_owned(),
            attempts: 6,
        };
        assert!(matches!(
            VpsClientError::from(status(429, "rate_limit_exceeded")),
            VpsClientError::Transient { message } if message.contains("HTTP 429") && message.contains("6 attempts")
        ));
        assert!(matches!(
            VpsClientError::from(status(423, "locked")),
            VpsClientError::Transient { .. }
        ));
        assert!(matches!(
            VpsClientError::from(status(422, "invalid_input")),
            VpsClientError::Api { status: 422, message } if message.contains("invalid_input: m")
        ));
        let unknown = VpsClientError::from(CallError::OutcomeUnknown {
            call: "POST /servers".to_owned(),
            message: "HTTP 500: server_error: boom".to_owned(),
        });
        assert!(
            matches!(&unknown, VpsClientError::OutcomeUnknown { .. }),
            "{unknown}"
        );
        assert!(!unknown.is_transient());
        assert!(status(404, "not_found").is_not_found());
        assert_eq!(status(423, "locked").code(), Some("locked"));
    }
}
