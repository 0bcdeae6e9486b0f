//! Parsing what the listing scripts print (see [`crate::script`]) into records, skipping
//! and reporting whatever is not a valid record.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use vps_primitives::{AgentId, HostId};

use crate::record::{AgentRecord, HostRecord};
use crate::script::{LIST_END, LIST_HEADER};

/// One host record found by a listing, with its agents.
#[derive(Clone, Debug, PartialEq)]
pub struct ListedHost {
    /// The host record.
    pub record: HostRecord,
    /// Its agent records, ordered by agent id.
    pub agents: Vec<AgentRecord>,
}

/// Why an entry of the state directory was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// The file is not valid JSON for its kind of record.
    Corrupt {
        /// What the JSON parser said.
        error: String,
    },
    /// The name is not `<host_id>.json` (top level), a host id (directory), or
    /// `<agent_id>.json` (in a host's directory).
    UnexpectedName,
    /// The file's name and the id inside it differ.
    IdMismatch {
        /// The id inside the file.
        inside: String,
    },
    /// A `*.json` entry that is not a regular file (a symlink, a directory below a
    /// host's directory, a socket…).
    NotARegularFile,
    /// The file could not be read (for instance removed while the listing ran).
    Unreadable,
    /// The name has characters outside `A-Z a-z 0-9 . _ -`; it is not shown.
    UnsafeName,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Corrupt { error } => write!(f, "not a valid record: {error}"),
            Self::UnexpectedName => f.write_str("unexpected name (not a host or agent id)"),
            Self::IdMismatch { inside } => write!(
                f,
                "the file's name does not match the id {inside} inside it"
            ),
            Self::NotARegularFile => f.write_str("not a regular file"),
            Self::Unreadable => f.write_str("could not be read"),
            Self::UnsafeName => f.write_str("name with unexpected characters"),
        }
    }
}

/// An entry of the state directory that is not a valid record: reported, not fatal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Its path below `/mngr-state/host_state/` (`?` for an unsafe name).
    pub path: String,
    /// Why it was skipped.
    pub reason: SkipReason,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// Everything in a state volume, read in one round trip.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Listing {
    /// Valid host records with their agents, ordered by host id.
    pub hosts: Vec<ListedHost>,
    /// Valid agent records whose host has no (valid) record, by host id: left behind by
    /// an interrupted delete, or written before the host record.
    pub orphan_agents: BTreeMap<HostId, Vec<AgentRecord>>,
    /// What was skipped, and why.
    pub skipped: Vec<Skipped>,
}

impl Listing {
    /// The host with this id, if listed.
    pub fn host(&self, id: &HostId) -> Option<&ListedHost> {
        self.hosts.iter().find(|h| h.record.host_id() == id)
    }
}

/// The agent records of one host.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentListing {
    /// Valid agent records, ordered by agent id.
    pub agents: Vec<AgentRecord>,
    /// What was skipped, and why.
    pub skipped: Vec<Skipped>,
}

/// One item of the listing output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RawEntry {
    /// A `*.json` regular file and its content (`None`: it could not be read).
    File {
        path: String,
        content: Option<Vec<u8>>,
    },
    /// A directory.
    Dir { path: String },
    /// A file not named `*.json`.
    NotJson { path: String },
    /// A `*.json` that is not a regular file.
    NotRegular { path: String },
    /// A name with unsafe characters.
    Unsafe,
}

/// The listing output did not follow the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProtocolError(pub String);

fn excerpt(line: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(line).chars().take(80).collect();
    format!("{text:?}")
}

/// Parses the raw output of a listing script.
pub(crate) fn parse_raw(stdout: &[u8]) -> Result<Vec<RawEntry>, ProtocolError> {
    let body = stdout.strip_suffix(b"\n").unwrap_or(stdout);
    let complete = body
        .strip_suffix(LIST_END.as_bytes())
        .is_some_and(|rest| rest.ends_with(b"\n"));
    if !body.is_empty() && !complete {
        return Err(ProtocolError(format!(
            "the output ends without {LIST_END:?}: it was cut short"
        )));
    }
    let mut lines = body.split(|&b| b == b'\n');
    match lines.next() {
        Some(first) if first == LIST_HEADER.as_bytes() => {}
        Some(first) => {
            return Err(ProtocolError(format!(
                "expected {LIST_HEADER:?} first, got {}",
                excerpt(first)
            )));
        }
        None => return Err(ProtocolError("no output".into())),
    }
    let mut entries = Vec::new();
    loop {
        let Some(line) = lines.next() else {
            return Err(ProtocolError(format!(
                "the output ends without {LIST_END:?}: it was cut short"
            )));
        };
        if line == LIST_END.as_bytes() {
            break;
        }
        let text = std::str::from_utf8(line)
            .map_err(|_| ProtocolError(format!("a line is not UTF-8: {}", excerpt(line))))?;
        let entry = match text.split_once(' ') {
            _ if text == "U" => RawEntry::Unsafe,
            Some(("D", path)) => RawEntry::Dir { path: path.into() },
            Some(("N", path)) => RawEntry::NotJson { path: path.into() },
            Some(("O", path)) => RawEntry::NotRegular { path: path.into() },
            Some(("F", path)) => {
                let mut encoded = Vec::new();
                let mut readable = true;
                loop {
                    match lines.next() {
                        None => {
                            return Err(ProtocolError(format!(
                                "the content of {path} ends without its `.` line"
                            )));
                        }
                        Some(b".") => break,
                        Some(b"X") => readable = false,
                        Some(chunk) => encoded.extend_from_slice(chunk),
                    }
                }
                let content = if readable {
                    base64::engine::general_purpose::STANDARD
                        .decode(&encoded)
                        .ok()
                } else {
                    None
                };
                RawEntry::File {
                    path: path.into(),
                    content,
                }
            }
            _ => {
                return Err(ProtocolError(format!("unexpected line {}", excerpt(line))));
            }
        };
        entries.push(entry);
    }
    if lines.next().is_some() {
        return Err(ProtocolError(format!("output after {LIST_END:?}")));
    }
    Ok(entries)
}

fn skip(path: &str, reason: SkipReason) -> Skipped {
    Skipped {
        path: path.to_owned(),
        reason,
    }
}

fn host_id_of(name: &str) -> Option<HostId> {
    HostId::parse(name).ok()
}

/// Parses one host record file (`<host_id>.json`), checking name and content agree.
pub(crate) fn host_record_from(path: &str, content: &[u8]) -> Result<HostRecord, SkipReason> {
    let Some(id) = path.strip_suffix(".json").and_then(host_id_of) else {
        return Err(SkipReason::UnexpectedName);
    };
    let record = HostRecord::from_json(content).map_err(|e| SkipReason::Corrupt {
        error: e.to_string(),
    })?;
    if record.host_id() != &id {
        return Err(SkipReason::IdMismatch {
            inside: record.host_id().to_string(),
        });
    }
    Ok(record)
}

/// Parses one agent record file (`<agent_id>.json`, `file` without the directory).
fn agent_record_from(file: &str, content: &[u8]) -> Result<AgentRecord, SkipReason> {
    let Some(id) = file
        .strip_suffix(".json")
        .and_then(|s| AgentId::parse(s).ok())
    else {
        return Err(SkipReason::UnexpectedName);
    };
    let record = AgentRecord::from_json(content).map_err(|e| SkipReason::Corrupt {
        error: e.to_string(),
    })?;
    if record.id != id {
        return Err(SkipReason::IdMismatch {
            inside: record.id.to_string(),
        });
    }
    Ok(record)
}

/// Turns the raw entries of a full listing into records and skipped entries.
pub(crate) fn interpret_all(entries: Vec<RawEntry>) -> Listing {
    let mut hosts: BTreeMap<HostId, HostRecord> = BTreeMap::new();
    let mut agents: BTreeMap<HostId, Vec<AgentRecord>> = BTreeMap::new();
    let mut skipped = Vec::new();
    for entry in entries {
        match entry {
            RawEntry::Unsafe => skipped.push(skip("?", SkipReason::UnsafeName)),
            RawEntry::NotRegular { path } => skipped.push(skip(&path, SkipReason::NotARegularFile)),
            RawEntry::NotJson { path } => skipped.push(skip(&path, SkipReason::UnexpectedName)),
            RawEntry::Dir { path } => {
                if host_id_of(&path).is_none() {
                    skipped.push(skip(&path, SkipReason::UnexpectedName));
                }
            }
            RawEntry::File { path, content } => match path.split_once('/') {
                None => {
                    let parsed = match content {
                        None => Err(SkipReason::Unreadable),
                        Some(bytes) => host_record_from(&path, &bytes),
                    };
                    match parsed {
                        Ok(record) => {
                            hosts.insert(record.host_id().clone(), record);
                        }
                        Err(reason) => skipped.push(skip(&path, reason)),
                    }
                }
                Some((dir, file)) => {
                    // Files in a stray directory were reported with the directory.
                    let Some(host) = host_id_of(dir) else {
                        continue;
                    };
                    let parsed = match content {
                        None => Err(SkipReason::Unreadable),
                        Some(bytes) => agent_record_from(file, &bytes),
                    };
                    match parsed {
                        Ok(agent) => agents.entry(host).or_default().push(agent),
                        Err(reason) => skipped.push(skip(&path, reason)),
                    }
                }
            },
        }
    }
    let hosts = hosts
        .into_iter()
        .map(|(id, record)| ListedHost {
            record,
            agents: agents.remove(&id).unwrap_or_default(),
        })
        .collect();
    Listing {
        hosts,
        orphan_agents: agents,
        skipped,
    }
}

/// Turns the raw entries of one host's agent directory into records.
pub(crate) fn interpret_agents(entries: Vec<RawEntry>) -> AgentListing {
    let mut listing = interpret_all(entries);
    AgentListing {
        agents: std::mem::take(&mut listing.orphan_agents)
            .into_values()
            .flatten()
            .collect(),
        skipped: listing.skipped,
    }
}

#[cfg(test)]
mod tests;
