//! The POSIX shell scripts the store runs in the state container (`docker exec … sh -c`).
//!
//! Pure functions: each returns the script text. Every value pasted into a script is a
//! shell word made by [`docker_ssh::quote`]; record contents never are (they travel on
//! stdin). The scripts need only `sh` and [`REQUIRED_TOOLS`], which both coreutils and
//! findutils (Debian) and busybox (Alpine) provide.

use docker_ssh::quote;
use vps_primitives::{AgentId, HostId};

use crate::layout::{HOST_STATE_DIR, STATE_MOUNT};

/// First line of every listing output (its format version).
pub(crate) const LIST_HEADER: &str = "MNGR-LIST 1";
/// Last line of every complete listing output.
pub(crate) const LIST_END: &str = "MNGR-END";
/// Last line of a delete that removed something.
pub(crate) const REMOVED: &str = "MNGR-REMOVED";
/// Last line of a delete that found nothing.
pub(crate) const ABSENT: &str = "MNGR-ABSENT";
/// Exit status of a write whose stdin ended early.
pub const SHORT_WRITE_STATUS: u32 = 75;

/// The programs the scripts need in the state container image.
pub const REQUIRED_TOOLS: [&str; 10] = [
    "mkdir", "mktemp", "cat", "wc", "mv", "rm", "sync", "base64", "tail", "find",
];

/// Writes stdin to `<dir>/<file>` atomically: into a temp file in the same directory,
/// checked to hold exactly `expected_len` bytes (so stdin cut short by a dropped
/// connection or a killed `docker exec` is never renamed into place), fsynced, renamed
/// over the target, then the directories are fsynced. A reader sees the old file or the
/// new one, never a mix. The temp file is a dot-file, which listings never match; it is
/// removed when the script fails or is interrupted. One left behind by a shell killed
/// with SIGKILL is removed by a later write of the same file once it is ten minutes old.
///
/// `parent_dir`, when given, is fsynced too: `dir` may be created by this write, which
/// changes the parent's entries.
pub fn write_file(dir: &str, file: &str, expected_len: usize, parent_dir: Option<&str>) -> String {
    let sync_dirs = match parent_dir {
        Some(parent) => format!("\"$dir\" {}", quote(parent)),
        None => "\"$dir\"".to_owned(),
    };
    format!(
        r#"set -eu
dir={dir}
file={file}
expected={expected}
mkdir -p "$dir"
# Temp files of writers killed long ago (no write takes ten minutes).
find "$dir" -maxdepth 1 -type f -name ".$file.tmp.*" -mmin +10 -exec rm -f {{}} \; 2>/dev/null || true
tmp=$(mktemp "$dir/.$file.tmp.XXXXXX")
trap 'rm -f "$tmp"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 141' PIPE
cat > "$tmp"
got=$(( $(wc -c < "$tmp") ))
if [ "$got" -ne "$expected" ]; then
  echo "host-store: received $got of $expected bytes for $dir/$file; the stored file is unchanged" >&2
  exit {SHORT_WRITE_STATUS}
fi
sync "$tmp" 2>/dev/null || sync
mv -f "$tmp" "$dir/$file"
sync {sync_dirs} 2>/dev/null || sync
"#,
        dir = quote(dir),
        file = quote(file),
        expected = quote(&expected_len.to_string()),
    )
}

/// Atomic write of a host record (see [`write_file`]).
pub fn write_host_record(host: &HostId, expected_len: usize) -> String {
    write_file(
        HOST_STATE_DIR,
        &format!("{host}.json"),
        expected_len,
        Some(STATE_MOUNT),
    )
}

/// Atomic write of an agent record (see [`write_file`]).
pub fn write_agent_record(host: &HostId, agent: &AgentId, expected_len: usize) -> String {
    write_file(
        &format!("{HOST_STATE_DIR}/{host}"),
        &format!("{agent}.json"),
        expected_len,
        Some(HOST_STATE_DIR),
    )
}

/// Shell functions shared by the listing scripts.
///
/// Output protocol, one item per line:
/// - `MNGR-LIST 1` first, `MNGR-END` last (a missing end means the output was cut);
/// - `F <path>` then the file's bytes in base64 lines, then `.` (an `X` line before the
///   `.` means it could not be read): a `*.json` regular file;
/// - `D <path>`: a directory; `N <path>`: a file not named `*.json`; `O <path>`: a
///   `*.json` that is not a regular file (a symlink, a socket…); `U`: a name with
///   characters outside `A-Z a-z 0-9 . _ -`, not printed.
///
/// Base64 framing means no file content can be mistaken for a separator, and each file is
/// read by one `base64` process from one open file, so a file replaced during the listing
/// shows either its old or its new content.
const LIST_FUNCTIONS: &str = r#"export LC_ALL=C
entry() {
  case "$1" in *[!A-Za-z0-9._/-]*) echo U; return 0 ;; esac
  case "$1" in *.json) ;; *) printf 'N %s\n' "$1"; return 0 ;; esac
  if [ -L "$1" ] || [ ! -f "$1" ]; then printf 'O %s\n' "$1"; return 0; fi
  printf 'F %s\n' "$1"
  base64 "$1" || echo X
  echo .
}
scan_dir() {
  printf 'D %s\n' "$1"
  for f in "$1"/*; do
    [ -e "$f" ] || [ -L "$f" ] || continue
    entry "$f"
  done
}
"#;

/// A listing of the directory the shell word `dir` names (a quoted path, or an expansion
/// such as [`VOLUME_STATE_DIR`]).
fn list_script(dir: &str, body: &str) -> String {
    format!(
        "{LIST_FUNCTIONS}echo {header}\nif cd {dir} 2>/dev/null; then\n{body}fi\necho {end}\n",
        header = quote(LIST_HEADER),
        end = quote(LIST_END),
    )
}

/// The host_state directory as a shell word in a script of [`read_on_vps`]: under the
/// state volume's mount point, which its prelude puts in `$mngr_state`.
const VOLUME_STATE_DIR: &str = "\"$mngr_state\"/host_state";

/// A read-only script run on the VPS itself rather than in the state container: it finds
/// the state volume's mount point (`docker volume inspect`) and reads the records there,
/// which spares the read a `docker exec` (on a small VPS the costliest part of it: a
/// runtime exec of hundreds of milliseconds of CPU). Where the mount point cannot be read
/// (the executor's user is not root), the same listing runs in the state container.
/// `listing(dir)` makes the listing of the shell word `dir`. A missing volume fails with
/// Docker's "No such volume" on stderr.
pub(crate) fn read_on_vps(container: &str, listing: impl Fn(&str) -> String) -> String {
    let name = quote(container);
    let here = listing(VOLUME_STATE_DIR);
    let there = listing(&quote(HOST_STATE_DIR));
    format!(
        "mngr_state=$(docker volume inspect --format '{{{{.Mountpoint}}}}' {name}) || exit 3\n\
         if [ -d \"$mngr_state\" ] && [ -r \"$mngr_state\" ] && [ -x \"$mngr_state\" ]; then\n\
         {here}\
         else\n\
         exec docker exec -i {name} sh -c {there}\n\
         fi\n",
        there = quote(&there),
    )
}

/// Lists every host record and every agent record in one run: `host_state/*` (files as
/// records, directories as agent directories, one level deep).
#[cfg(test)]
pub fn list_all() -> String {
    list_all_in(HOST_STATE_DIR)
}

/// [`list_all`] of another directory.
#[cfg(test)]
pub(crate) fn list_all_in(state_dir: &str) -> String {
    list_all_at(&quote(state_dir))
}

/// [`list_all`] of the directory the shell word `dir` names.
pub(crate) fn list_all_at(dir: &str) -> String {
    list_script(
        dir,
        r#"for e in *; do
  [ -e "$e" ] || [ -L "$e" ] || continue
  case "$e" in *[!A-Za-z0-9._-]*) echo U; continue ;; esac
  if [ -d "$e" ] && [ ! -L "$e" ]; then scan_dir "$e"; else entry "$e"; fi
done
"#,
    )
}

/// Reads one host record (prints nothing between header and end if there is none).
#[cfg(test)]
pub fn read_host_record(host: &HostId) -> String {
    read_host_record_in(HOST_STATE_DIR, host)
}

/// [`read_host_record`] in another directory.
#[cfg(test)]
pub(crate) fn read_host_record_in(state_dir: &str, host: &HostId) -> String {
    read_host_record_at(&quote(state_dir), host)
}

/// [`read_host_record`] in the directory the shell word `dir` names.
pub(crate) fn read_host_record_at(dir: &str, host: &HostId) -> String {
    let file = quote(&format!("{host}.json")).into_owned();
    list_script(
        dir,
        &format!("if [ -e {file} ] || [ -L {file} ]; then entry {file}; fi\n"),
    )
}

/// Lists the agent records of one host.
#[cfg(test)]
pub fn list_agents(host: &HostId) -> String {
    list_agents_in(HOST_STATE_DIR, host)
}

/// [`list_agents`] in another directory.
#[cfg(test)]
pub(crate) fn list_agents_in(state_dir: &str, host: &HostId) -> String {
    list_agents_at(&quote(state_dir), host)
}

/// [`list_agents`] in the directory the shell word `dir` names.
pub(crate) fn list_agents_at(dir: &str, host: &HostId) -> String {
    let sub = quote(host.as_str()).into_owned();
    list_script(
        dir,
        &format!("if [ -d {sub} ] && [ ! -L {sub} ]; then scan_dir {sub}; fi\n"),
    )
}

/// Removes `targets` (paths relative to the host_state directory), then fsyncs `sync_dir`
/// (relative too) whose entries changed.
fn remove_script(state_dir: &str, targets: &[String], sync_dir: &str) -> String {
    let mut body = String::new();
    for t in targets {
        let t = quote(t);
        body.push_str(&format!(
            "if [ -e {t} ] || [ -L {t} ]; then rm -rf {t}; found=1; fi\n"
        ));
    }
    format!(
        "set -eu\nfound=0\nif cd {dir} 2>/dev/null; then\n{body}sync {sync_dir} 2>/dev/null || sync\nfi\nif [ \"$found\" = 1 ]; then echo {removed}; else echo {absent}; fi\n",
        dir = quote(state_dir),
        sync_dir = quote(sync_dir),
        removed = quote(REMOVED),
        absent = quote(ABSENT),
    )
}

/// Removes a host record, then the host's agent directory. The record goes first, so an
/// interrupted delete leaves at most agents without a host (listed as orphans), never a
/// host that lost its agents.
pub fn delete_host(host: &HostId) -> String {
    delete_host_in(HOST_STATE_DIR, host)
}

/// [`delete_host`] in another directory.
pub(crate) fn delete_host_in(state_dir: &str, host: &HostId) -> String {
    remove_script(
        state_dir,
        &[format!("{host}.json"), host.as_str().to_owned()],
        ".",
    )
}

/// Removes one agent record.
pub fn remove_agent(host: &HostId, agent: &AgentId) -> String {
    remove_agent_in(HOST_STATE_DIR, host, agent)
}

/// [`remove_agent`] in another directory.
pub(crate) fn remove_agent_in(state_dir: &str, host: &HostId, agent: &AgentId) -> String {
    remove_script(state_dir, &[format!("{host}/{agent}.json")], host.as_str())
}

/// Prints the name of each of [`REQUIRED_TOOLS`] missing in the container (nothing when
/// all are there).
pub fn probe_tools() -> String {
    let tools: Vec<String> = REQUIRED_TOOLS
        .iter()
        .map(|t| quote(t).into_owned())
        .collect();
    format!(
        "for t in {}; do command -v \"$t\" >/dev/null 2>&1 || echo \"$t\"; done\n",
        tools.join(" ")
    )
}
