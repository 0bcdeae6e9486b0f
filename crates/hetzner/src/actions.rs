//! Waiting for actions: everything asynchronous in Hetzner (create, delete, power,
//! snapshot, firewall rules) is an action that runs, then ends in `success` or `error`.

use std::time::Duration;

use reqwest::Method;
use tokio::time::Instant;
use vps_client::VpsClientError;

use crate::api::Action;
use crate::http::Http;

/// Why a wait for an action ended without success.
#[derive(Debug)]
pub(crate) enum ActionWaitError {
    /// The action ended in error (its code and message are in the error), or it could
    /// not be read.
    Failed(VpsClientError),
    /// It was still running at the deadline; the last state seen.
    TimedOut { waited: Duration, last_seen: String },
}

/// One line for messages: `action 12 \`delete_server\` running (40%)`.
pub(crate) fn describe(action: &Action) -> String {
    format!(
        "action {} `{}` {} ({}%)",
        action.id, action.command, action.status, action.progress
    )
}

/// Polls `GET /actions/{id}` every `poll` until the action is no longer running, for at
/// most `timeout`. An action that is already finished costs no request.
pub(crate) async fn wait_for(
    http: &Http,
    action: Action,
    timeout: Duration,
    poll: Duration,
) -> Result<Action, ActionWaitError> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut current = action;
    loop {
        if !current.is_running() {
            return match current.failure() {
                Some(error) => Err(ActionWaitError::Failed(error)),
                None => {
                    tracing::debug!(action = current.id, command = %current.command, "Hetzner action done");
                    Ok(current)
                }
            };
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(ActionWaitError::TimedOut {
                waited: start.elapsed(),
                last_seen: describe(&current),
            });
        }
        tokio::time::sleep(poll.min(deadline - now)).await;
        current = fetch(http, current.id)
            .await
            .map_err(ActionWaitError::Failed)?;
    }
}

/// The current state of one action.
pub(crate) async fn fetch(http: &Http, id: u64) -> Result<Action, VpsClientError> {
    let path = format!("/actions/{id}");
    http.send(Method::GET, &path, &[], None)
        .await
        .map_err(VpsClientError::from)?
        .field("action", &path)
}
