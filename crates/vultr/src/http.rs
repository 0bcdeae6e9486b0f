//! One HTTP round trip to the API, with auth, rate limit, timeouts, retries and
//! pagination. Everything above speaks JSON values and [`CallError`]s.

use std::error::Error as _;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use vps_client::VpsClientError;

use crate::api::{ErrorBody, Meta};
use crate::error::VultrError;
use crate::rate_limit::{RateLimiter, shared_limiter};
use crate::retry::{AttemptFailure, Idempotency, RetryPolicy, parse_retry_after};
use crate::{ApiKey, VultrConfig};

/// How many pages a list may have before the client assumes the API loops.
const MAX_PAGES: usize = 10_000;
/// How much of a non-JSON error body is quoted in a message.
const MAX_QUOTED_BODY: usize = 200;

/// The transport shared by all calls of one client.
pub(crate) struct Http {
    client: reqwest::Client,
    base: Url,
    /// `Bearer <key>`, marked sensitive so the HTTP stack never prints it.
    auth: HeaderValue,
    limiter: Arc<RateLimiter>,
    retry: RetryPolicy,
    page_size: u32,
}

/// A successful answer: a 2xx status and its body.
pub(crate) struct Answer {
    pub(crate) body: Vec<u8>,
}

impl Answer {
    /// The object under `field` of the JSON body (`{"instance": {...}}`, say); `path`
    /// names the call in errors.
    pub(crate) fn field<T: DeserializeOwned>(
        &self,
        field: &str,
        path: &str,
    ) -> Result<T, VpsClientError> {
        take_field(&mut parse_json(&self.body, path)?, field, path)
    }
}

/// Why a call failed, once retries are done.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The API answered with a status that is not 2xx.
    Status {
        call: String,
        status: u16,
        message: String,
        attempts: u32,
    },
    /// No answer: connection refused or dropped, timeout, TLS failure.
    Transport {
        call: String,
        message: String,
        attempts: u32,
    },
    /// A request that is not repeated (a `POST`) failed after it may have reached the
    /// API (a 5xx other than 503, or the connection failed after sending): the API may
    /// have carried it out.
    OutcomeUnknown {
        call: String,
        /// The status and message, or the transport error, of the failed attempt.
        message: String,
    },
}

impl CallError {
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, CallError::Status { status: 404, .. })
    }
}

impl From<CallError> for VpsClientError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Status {
                call,
                status,
                message,
                attempts,
            } if status == 429 || status >= 500 => VpsClientError::Transient {
                message: format!(
                    "{call}: HTTP {status}: {message} (gave up after {attempts} attempt{})",
                    plural(attempts)
                ),
            },
            CallError::Status {
                status, message, ..
            } => VpsClientError::Api { status, message },
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

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl Http {
    pub(crate) fn new(config: &VultrConfig, key: &ApiKey) -> Result<Self, VultrError> {
        let base = parse_base_url(&config.api_base_url)?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
            .map_err(|_| VultrError::InvalidApiKey)?;
        auth.set_sensitive(true);
        install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout())
            .connect_timeout(config.connect_timeout())
            .user_agent(concat!("mngr-vps-vultr/", env!("CARGO_PKG_VERSION")))
            // Never follow a redirect: a 307/308 would replay the request, the API key
            // and a create's user_data (the VPS's private host key) to wherever it points.
            // A redirect is an error answer like any other non-2xx.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| VultrError::HttpClient(error_chain(&e)))?;
        let limiter = shared_limiter(base.as_str(), key, config.max_requests_per_second);
        Ok(Self {
            client,
            base,
            auth,
            limiter,
            retry: RetryPolicy::from_config(config),
            page_size: config.page_size,
        })
    }

    pub(crate) fn base_url(&self) -> &Url {
        &self.base
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
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

    /// Sends one logical request, retrying as the [`RetryPolicy`] allows, and returns the
    /// first 2xx answer.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
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
        let mut retry = 0u32;
        loop {
            let attempt = retry + 1;
            self.limiter.acquire().await;
            tracing::debug!(%method, path, attempt, "Vultr API request");
            let (failure, retry_after, error) = match self
                .attempt(method.clone(), url.clone(), body.clone())
                .await
            {
                Ok((status, _, body)) if status.is_success() => {
                    tracing::trace!(%method, path, status = status.as_u16(), "Vultr API answer");
                    return Ok(Answer { body });
                }
                Ok((status, retry_after, body)) => {
                    let message = error_message(status, &body);
                    (
                        AttemptFailure::Status(status.as_u16()),
                        retry_after,
                        CallError::Status {
                            call: call.clone(),
                            status: status.as_u16(),
                            message,
                            attempts: attempt,
                        },
                    )
                }
                Err(e) => {
                    let failure = if e.is_connect() {
                        AttemptFailure::Connect
                    } else {
                        AttemptFailure::AfterSend
                    };
                    (
                        failure,
                        None,
                        CallError::Transport {
                            call: call.clone(),
                            message: error_chain(&e),
                            attempts: attempt,
                        },
                    )
                }
            };
            if !RetryPolicy::is_retryable(failure, idempotency) {
                let reason = describe(&error);
                if RetryPolicy::may_have_acted(failure) {
                    tracing::warn!(%method, path, attempt, %reason, "Vultr API request failed after it may have been carried out; not retried");
                    return Err(CallError::OutcomeUnknown {
                        call,
                        message: reason,
                    });
                }
                tracing::debug!(%method, path, attempt, %reason, "Vultr API request failed; not retried");
                return Err(error);
            }
            let Some(delay) = self.retry.delay_before_retry(retry, retry_after) else {
                tracing::warn!(%method, path, attempt, reason = %describe(&error), "Vultr API request failed; no retries left");
                return Err(error);
            };
            tracing::warn!(
                %method,
                path,
                attempt,
                reason = %describe(&error),
                delay_ms = delay.as_millis() as u64,
                "Vultr API request failed; retrying"
            );
            tokio::time::sleep(delay).await;
            retry += 1;
        }
    }

    /// One attempt: the status, a parsed `Retry-After`, and the whole body.
    async fn attempt(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Option<Duration>, Vec<u8>), reqwest::Error> {
        let mut request = self
            .client
            .request(method, url)
            .header(AUTHORIZATION, self.auth.clone());
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let body = response.bytes().await?.to_vec();
        Ok((status, retry_after, body))
    }

    /// Reads every page of a list: `GET path?per_page=N[&cursor=C]` until `meta.links.next`
    /// is empty, collecting the array under `field`.
    pub(crate) async fn list_all<T: DeserializeOwned>(
        &self,
        path: &str,
        field: &str,
        filter: &[(&str, &str)],
    ) -> Result<Vec<T>, VpsClientError> {
        let per_page = self.page_size.to_string();
        let mut items = Vec::new();
        let mut cursor = String::new();
        for page in 0..MAX_PAGES {
            let mut query: Vec<(&str, &str)> = filter.to_vec();
            query.push(("per_page", &per_page));
            if !cursor.is_empty() {
                query.push(("cursor", &cursor));
            }
            let answer = self.send(Method::GET, path, &query, None).await?;
            let mut value = parse_json(&answer.body, path)?;
            let page_items: Vec<T> = take_field(&mut value, field, path)?;
            let meta: Meta = match value.get_mut("meta").map(serde_json::Value::take) {
                Some(meta) => serde_json::from_value(meta).map_err(|e| {
                    VpsClientError::InvalidResponse(format!("GET {path}: `meta`: {e}"))
                })?,
                None => Meta::default(),
            };
            tracing::trace!(path, page, items = page_items.len(), "Vultr API page");
            items.extend(page_items);
            let next = meta.links.next;
            if next.is_empty() {
                return Ok(items);
            }
            if next == cursor {
                return Err(VpsClientError::InvalidResponse(format!(
                    "GET {path}: the API returned the same page cursor twice"
                )));
            }
            cursor = next;
        }
        Err(VpsClientError::InvalidResponse(format!(
            "GET {path}: more than {MAX_PAGES} pages"
        )))
    }
}

/// Parses a JSON body.
fn parse_json(body: &[u8], path: &str) -> Result<serde_json::Value, VpsClientError> {
    serde_json::from_slice(body).map_err(|e| {
        VpsClientError::InvalidResponse(format!("{path}: the answer is not JSON: {e}"))
    })
}

/// Takes `value[field]` and deserialises it; a missing field is an invalid answer.
fn take_field<T: DeserializeOwned>(
    value: &mut serde_json::Value,
    field: &str,
    path: &str,
) -> Result<T, VpsClientError> {
    let inner = value
        .get_mut(field)
        .map(serde_json::Value::take)
        .ok_or_else(|| {
            VpsClientError::InvalidResponse(format!("{path}: no `{field}` in the answer"))
        })?;
    serde_json::from_value(inner)
        .map_err(|e| VpsClientError::InvalidResponse(format!("{path}: `{field}`: {e}")))
}

/// The API's own message (`{"error": "..."}`), else a bounded quote of the body, else
/// the status's reason phrase.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body)
        && !parsed.error.trim().is_empty()
    {
        return parsed.error.trim().to_owned();
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return status.canonical_reason().unwrap_or("no message").to_owned();
    }
    let mut quoted: String = text
        .chars()
        .take(MAX_QUOTED_BODY)
        .flat_map(char::escape_default)
        .collect();
    if text.chars().count() > MAX_QUOTED_BODY {
        quoted.push('…');
    }
    quoted
}

fn describe(error: &CallError) -> String {
    match error {
        CallError::Status {
            status, message, ..
        } => format!("HTTP {status}: {message}"),
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
/// the key travels in a header. No query or fragment.
fn parse_base_url(text: &str) -> Result<Url, VultrError> {
    let url = Url::parse(text.trim())
        .map_err(|e| VultrError::Config(format!("`api_base_url` {text:?} is not a URL: {e}")))?;
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
            return Err(VultrError::Config(format!(
                "`api_base_url` {text:?} must use https: the API key would travel in clear text"
            )));
        }
        other => {
            return Err(VultrError::Config(format!(
                "`api_base_url` {text:?} has scheme {other:?}; use https"
            )));
        }
    }
    if url.host_str().is_none() || url.query().is_some() || url.fragment().is_some() {
        return Err(VultrError::Config(format!(
            "`api_base_url` {text:?} must be a plain https://host/path URL"
        )));
    }
    Ok(url)
}

/// reqwest is built without a default TLS crypto provider (to avoid aws-lc); install
/// ring as the process default once. If another provider is already installed, it stays.
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
        assert!(parse_base_url("https://api.vultr.com/v2").is_ok());
        assert!(parse_base_url("http://127.0.0.1:8080/v2").is_ok());
        assert!(parse_base_url("http://localhost:8080").is_ok());
        assert!(parse_base_url("http://[::1]:8080").is_ok());
        assert!(parse_base_url("http://api.vultr.com/v2").is_err());
        assert!(parse_base_url("ftp://api.vultr.com/v2").is_err());
        assert!(parse_base_url("https://api.vultr.com/v2?x=1").is_err());
        assert!(parse_base_url("not a url").is_err());
    }

    #[test]
    fn urls_encode_filters_and_keep_the_base_path() {
        let config = VultrConfig {
            api_base_url: "https://api.vultr.com/v2/".to_owned(),
            ..VultrConfig::default()
        };
        let http = Http::new(&config, &ApiKey::new("k")).expect("client");
        let url = http.url(
            "/instances",
            &[("tag", "mngr-provider=vultr"), ("per_page", "100")],
        );
        assert_eq!(
            url.as_str(),
            "https://api.vultr.com/v2/instances?tag=mngr-provider%3Dvultr&per_page=100"
        );
        assert_eq!(
            http.url("/instances/abc", &[]).as_str(),
            "https://api.vultr.com/v2/instances/abc"
        );
    }

    #[test]
    fn error_messages_prefer_the_api_error_field() {
        let m = error_message(
            StatusCode::BAD_REQUEST,
            br#"{"error":"Invalid plan chosen.","status":400}"#,
        );
        assert_eq!(m, "Invalid plan chosen.");
        let m = error_message(StatusCode::BAD_GATEWAY, b"<html>bad\ngateway</html>");
        assert_eq!(m, "<html>bad\\ngateway</html>");
        let m = error_message(StatusCode::SERVICE_UNAVAILABLE, b"");
        assert_eq!(m, "Service Unavailable");
        let long = "x".repeat(500);
        assert_eq!(
            error_message(StatusCode::BAD_GATEWAY, long.as_bytes())
                .chars()
                .count(),
            MAX_QUOTED_BODY + 1
        );
    }

    #[test]
    fn exhausted_and_permanent_failures_map_to_the_trait_error() {
        let status = |status: u16| CallError::Status {
            call: "GET /instances".to_owned(),
            status,
            message: "m".to_owned(),
            attempts: 6,
        };
        assert!(matches!(
            VpsClientError::from(status(429)),
            VpsClientError::Transient { message } if message.contains("HTTP 429") && message.contains("6 attempts")
        ));
        assert!(matches!(
            VpsClientError::from(status(502)),
            VpsClientError::Transient { .. }
        ));
        assert!(matches!(
            VpsClientError::from(status(400)),
            VpsClientError::Api { status: 400, message } if message == "m"
        ));
        let unknown = VpsClientError::from(CallError::OutcomeUnknown {
            call: "POST /instances".to_owned(),
            message: "HTTP 500: Internal error.".to_owned(),
        });
        assert!(
            matches!(&unknown, VpsClientError::OutcomeUnknown { message }
                if message.contains("POST /instances: HTTP 500: Internal error.")),
            "{unknown}"
        );
        assert!(!unknown.is_transient());
    }
}
