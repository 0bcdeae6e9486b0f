//! SSH sessions with pinned host keys, a connection pool, exec with timeouts, uploads, key
//! files, and a typed Docker command builder that runs over any [`Executor`].

mod command;
mod docker;
mod error;
mod executor;
mod local;
mod quote;

pub use command::{Command, CommandBody, ExitStatus, Output, OutputStream, REDACTED};
pub use docker::*;
pub use error::{ExecError, SshError};
pub use executor::{ExecIo, Executor, LineCallback, check_output};
pub use local::LocalExecutor;
pub use quote::{quote, quote_argv};
