//! The store against a real Docker engine reached over SSH in a fake VPS (see
//! `common`): state container lifecycle, round trips, corrupt entries, concurrency,
//! the 200-record listing, and writers killed mid-write.

#![allow(clippy::unwrap_used)]

mod common;

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::{Bed, Counting};
use docker_ssh::{DockerCli, ExecOptions, Executor, quote_argv};
use futures::{StreamExt, future::join_all};
use host_store::{
    AgentRecord, CertifiedHostData, Ensured, HostRecord, HostStore, SkipReason, StoreError,
    Timestamp, ensure_state_container, host_record_path, script,
};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::oneshot;
use vps_primitives::{AgentId, HostId, HostName};

fn record(id: &HostId, generation: u32, blob_len: usize) -> HostRecord {
    let now: Timestamp = "2026-05-11T12:00:00.123456Z".parse().unwrap();
    let mut data = CertifiedHostData::new(id.clone(), HostName::parse("host").unwrap(), now);
    data.user_tags
        .insert("generation".into(), generation.to_string());
    let fill = char::from(b'a' + (generation % 26) as u8);
    data.plugin
        .insert("blob".into(), json!(fill.to_string().repeat(blob_len)));
    let mut record = HostRecord::new(data);
    record.container_id = Some(format!("{generation:064x}"));
    record
}

fn generation_of(record: &HostRecord) -> u32 {
    record.certified_host_data.user_tags["generation"]
        .parse()
        .unwrap()
}

fn agent(n: u32, name: &str) -> AgentRecord {
    AgentRecord::from_value(json!({
        "id": format!("agent-{n:032x}"),
        "name": name,
        "type": "claude",
        "labels": {"n": n.to_string()},
    }))
    .unwrap()
}

fn hex_id(n: u32) -> HostId {
    HostId::parse(&format!("host-{n:032x}")).unwrap()
}

/// Names in the state directory, dot-files (temp files) included.
async fn state_dir_entries(bed: &Bed, store: &HostStore) -> Vec<String> {
    let out = bed
        .in_state(
            store,
            "cd /mngr-state/host_state 2>/dev/null && ls -A || true",
        )
        .await;
    out.lines().map(str::to_owned).collect()
}

// ---- state container --------------------------------------------------------------------

#[tokio::test]
async fn state_container_is_created_once_under_races_and_restarted() {
    let bed = Bed::new().await;
    let spec = bed.spec();
    let name = spec.name.to_string();

    let outcomes: Vec<Ensured> =
        join_all((0..4).map(|_| ensure_state_container(bed.exec.clone(), &spec)))
            .await
            .into_iter()
            .map(|r| r.expect("every racing ensure succeeds"))
            .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == Ensured::Created).count(),
        1,
        "exactly one caller creates it: {outcomes:?}"
    );
    let template = "{{.HostConfig.RestartPolicy.Name}} {{index .Config.Labels \"com.imbue.mngr.type\"}} \
                    {{index .Config.Labels \"com.imbue.mngr.provider\"}} \
                    {{index .Config.Labels \"com.imbue.mngr.test-run\"}} {{range .Mounts}}{{.Name}}:{{.Destination}}{{end}}";
    let props = bed
        .sh(&quote_argv([
            "docker", "inspect", "--format", template, &name,
        ]))
        .await;
    assert_eq!(
        props.trim(),
        format!(
            "unless-stopped state-container test {} {name}:/mngr-state",
            testbed::run_id()
        )
    );
    let vol = bed
        .sh(&quote_argv([
            "docker",
            "volume",
            "inspect",
            "--format",
            "{{index .Labels \"com.imbue.mngr.type\"}}",
            &name,
        ]))
        .await;
    assert_eq!(vol.trim(), "state-container");

    let again = ensure_state_container(bed.exec.clone(), &spec)
        .await
        .expect("ensure");
    assert_eq!(again, Ensured::AlreadyRunning);

    // Records live in the volume: they survive a stop and a start.
    let store = HostStore::new(bed.exec.clone(), spec.name.clone());
    let id = HostId::generate();
    store
        .write_host_record(&record(&id, 1, 10))
        .await
        .expect("write");
    bed.sh(&quote_argv(["docker", "stop", "-t", "5", &name]))
        .await;
    // Reads go to the volume itself, so they work while the container is stopped...
    let read = store
        .read_host_record(&id)
        .await
        .expect("read while stopped");
    assert_eq!(read.as_ref().map(|r| r.host_id()), Some(&id));
    assert_eq!(
        store.list().await.expect("list while stopped").hosts.len(),
        1
    );
    // ...while a write, which runs in the container, says it is stopped.
    let err = store
        .write_host_record(&record(&id, 2, 20))
        .await
        .expect_err("stopped");
    assert!(
        matches!(err, StoreError::StateContainerStopped { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&name), "{err}");
    let restarted = ensure_state_container(bed.exec.clone(), &spec)
        .await
        .expect("ensure");
    assert_eq!(restarted, Ensured::Started);
    assert_eq!(
        store.read_host_record(&id).await.expect("read"),
        Some(record(&id, 1, 10))
    );
}

#[tokio::test]
async fn state_container_refuses_foreign_containers_and_missing_images() {
    let bed = Bed::new().await;
    // A container that merely has the name is never taken over.
    let foreign = bed.spec();
    let run_label = testbed::run_label();
    bed.sh(&quote_argv([
        "docker",
        "create",
        "--name",
        foreign.name.as_str(),
        "--label",
        &run_label,
        &bed.image,
        "true",
    ]))
    .await;
    let err = ensure_state_container(bed.exec.clone(), &foreign)
        .await
        .expect_err("foreign");
    assert!(
        matches!(err, StoreError::NotAStateContainer { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(foreign.name.as_str()), "{err}");

    // An image that is not there is an error, not a pull.
    let mut missing = bed.spec();
    missing.image = "mngr-test/not-loaded:never".into();
    let err = ensure_state_container(bed.exec.clone(), &missing)
        .await
        .expect_err("missing image");
    assert!(matches!(err, StoreError::ImageMissing { .. }), "{err}");
    assert!(err.to_string().contains("never pulled"), "{err}");
    let listed = bed
        .sh(&quote_argv([
            "docker",
            "ps",
            "-a",
            "-q",
            "--filter",
            &format!("name={}", missing.name),
        ]))
        .await;
    assert_eq!(listed.trim(), "", "nothing was created");

    // No state container: the store says so and what to do.
    let store = HostStore::new(bed.exec.clone(), missing.name.clone());
    let err = store.list().await.expect_err("no container");
    assert!(matches!(err, StoreError::NoStateContainer { .. }), "{err}");
    assert!(err.to_string().contains("ensure_state_container"), "{err}");
}

// ---- round trips ------------------------------------------------------------------------

#[tokio::test]
async fn host_and_agent_records_round_trip() {
    let bed = Bed::new().await;
    let store = bed.store().await;
    let id = HostId::generate();
    assert_eq!(store.read_host_record(&id).await.expect("read"), None);
    assert!(store.list().await.expect("list").hosts.is_empty());

    let mut first = record(&id, 1, 100);
    first.vps_ip = Some("203.0.113.7".parse().unwrap());
    first.ssh_host_public_key = Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHkLtFGM0ebgT9O7".into());
    // Content no shell and no separator may mangle.
    first.certified_host_data.build_log = Some(
        "it's \"quoted\" $(reboot) `id` \\ \n---MNGR_FILE_SEP---\nMNGR-END\n.\nF x.json\n€ ✓"
            .into(),
    );
    store.write_host_record(&first).await.expect("write");
    assert_eq!(
        store.read_host_record(&id).await.expect("read"),
        Some(first.clone())
    );

    let mut second = first.clone();
    second.certified_host_data.host_name = HostName::parse("renamed").unwrap();
    second.container_id = Some("c0ffee".into());
    store.write_host_record(&second).await.expect("rewrite");
    assert_eq!(
        store.read_host_record(&id).await.expect("read"),
        Some(second.clone())
    );

    // Agents: persisted, updated, listed in id order, removed.
    for (n, name) in [(3, "c"), (1, "a"), (2, "b"), (1, "a2")] {
        store
            .persist_agent(&id, &agent(n, name))
            .await
            .expect("persist");
    }
    let agents = store.list_agents(&id).await.expect("agents");
    assert!(agents.skipped.is_empty());
    let names: Vec<&str> = agents.agents.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["a2", "b", "c"]);
    assert_eq!(agents.agents[1], agent(2, "b"), "extra fields kept");

    let listing = store.list().await.expect("list");
    assert_eq!(listing.hosts.len(), 1);
    assert_eq!(listing.hosts[0].record, second);
    assert_eq!(listing.hosts[0].agents, agents.agents);
    assert!(listing.skipped.is_empty() && listing.orphan_agents.is_empty());

    let a1 = AgentId::parse(&format!("agent-{:032x}", 1)).unwrap();
    assert!(store.remove_agent(&id, &a1).await.expect("remove"));
    assert!(!store.remove_agent(&id, &a1).await.expect("remove again"));
    assert_eq!(
        store.list_agents(&id).await.expect("agents").agents.len(),
        2
    );

    assert!(store.delete_host_record(&id).await.expect("delete"));
    assert_eq!(store.read_host_record(&id).await.expect("read"), None);
    assert!(
        store
            .list_agents(&id)
            .await
            .expect("agents")
            .agents
            .is_empty(),
        "agents went with the host"
    );
    assert!(!store.delete_host_record(&id).await.expect("delete again"));
    assert!(
        state_dir_entries(&bed, &store).await.is_empty(),
        "nothing left, no temp files"
    );
}

#[tokio::test]
async fn records_from_a_newer_version_keep_their_fields_through_the_store() {
    let bed = Bed::new().await;
    let store = bed.store().await;
    let id = HostId::generate();
    let mut doc = serde_json::to_value(record(&id, 1, 1)).unwrap();
    doc["schema_version"] = json!(9);
    doc["from_the_future"] = json!({"a": [1, 2]});
    doc["certified_host_data"]["also_new"] = json!("x");
    let parsed: HostRecord = serde_json::from_value(doc.clone()).unwrap();
    store.write_host_record(&parsed).await.expect("write");
    let raw = bed
        .in_state(&store, &format!("cat {}", host_record_path(&id)))
        .await;
    let mut expected = doc;
    expected["certified_host_data"]["idle_mode"] = json!("IO");
    assert_eq!(serde_json::from_str::<Value>(&raw).unwrap(), expected);
    assert_eq!(
        store.read_host_record(&id).await.expect("read"),
        Some(parsed)
    );
}

// ---- corrupt entries --------------------------------------------------------------------

#[tokio::test]
async fn corrupt_record_among_valid_ones_is_skipped_and_reported() {
    let bed = Bed::new().await;
    let store = bed.store().await;
    let good: Vec<HostId> = (1..=3).map(hex_id).collect();
    for id in &good {
        store
            .write_host_record(&record(id, 1, 10))
            .await
            .expect("write");
        store
            .persist_agent(id, &agent(1, "ok"))
            .await
            .expect("agent");
    }
    let corrupt = hex_id(10);
    let mismatched = hex_id(11);
    let dir_named_json = hex_id(12);
    let empty = hex_id(13);
    let misplaced = serde_json::to_string(&record(&good[0], 1, 1)).unwrap();
    let script = format!(
        "cd /mngr-state/host_state && \
         printf '%s' '{{\"certified_host_data\": {{' > {corrupt}.json && \
         printf '%s' {misplaced} > {mismatched}.json && \
         mkdir {dir_named_json}.json && : > {empty}.json && \
         mkdir junk && echo '{{}}' > junk/x.json && echo hi > notes.txt && \
         echo '{{}}' > \"$(printf 'bad\\nname.json')\" && \
         printf nope > {}/agent-{:032x}.json",
        good[1],
        2,
        misplaced = docker_ssh::quote(&misplaced),
    );
    bed.in_state(&store, &script).await;

    let listing = store
        .list()
        .await
        .expect("a corrupt entry does not fail the listing");
    let ids: Vec<&HostId> = listing.hosts.iter().map(|h| h.record.host_id()).collect();
    assert_eq!(ids, good.iter().collect::<Vec<_>>());
    assert!(
        listing.hosts.iter().all(|h| h.agents.len() == 1),
        "the corrupt agent is skipped, the others kept"
    );
    let mut skipped: Vec<(String, String)> = listing
        .skipped
        .iter()
        .map(|s| {
            let kind = match &s.reason {
                SkipReason::Corrupt { .. } => "corrupt".to_owned(),
                other => format!("{other:?}"),
            };
            (s.path.clone(), kind)
        })
        .collect();
    skipped.sort();
    let expected: Vec<(String, String)> = [
        ("?".to_owned(), "UnsafeName".to_owned()),
        (
            format!("{}/agent-{:032x}.json", good[1], 2),
            "corrupt".into(),
        ),
        (format!("{corrupt}.json"), "corrupt".into()),
        (
            format!("{mismatched}.json"),
            format!("IdMismatch {{ inside: {:?} }}", good[0].as_str()),
        ),
        (format!("{dir_named_json}.json"), "UnexpectedName".into()),
        (format!("{empty}.json"), "corrupt".into()),
        ("junk".into(), "UnexpectedName".into()),
        ("notes.txt".into(), "UnexpectedName".into()),
    ]
    .into_iter()
    .collect();
    let mut expected = expected;
    expected.sort();
    assert_eq!(skipped, expected);

    // Asking for the corrupt record by id is an error that says where and what to do.
    let err = store.read_host_record(&corrupt).await.expect_err("corrupt");
    let text = err.to_string();
    assert!(matches!(err, StoreError::CorruptRecord { .. }), "{text}");
    assert!(
        text.contains(&host_record_path(&corrupt)) && text.contains(store.container().as_str()),
        "{text}"
    );
    assert!(text.contains("delete it"), "{text}");
    // Deleting it repairs the listing.
    assert!(store.delete_host_record(&corrupt).await.expect("delete"));
    let after = store.list().await.expect("list");
    assert_eq!(after.skipped.len(), listing.skipped.len() - 1);
}

// ---- concurrency and scale ------------------------------------------------------------------

#[tokio::test]
async fn concurrent_writers_to_different_hosts() {
    let bed = Bed::new().await;
    let store = bed.store().await;
    let ids: Vec<HostId> = (0..16).map(|_| HostId::generate()).collect();
    let writers = ids.iter().map(|id| {
        let store = store.clone();
        async move {
            for generation in 1..=3 {
                store
                    .write_host_record(&record(id, generation, 2000))
                    .await?;
            }
            Ok::<_, StoreError>(())
        }
    });
    for result in join_all(writers).await {
        result.expect("every writer succeeds");
    }
    // And many writers on one host: the last rename wins, whole.
    let shared = HostId::generate();
    let racers = (1..=8).map(|g| {
        let store = store.clone();
        let shared = shared.clone();
        async move { store.write_host_record(&record(&shared, g, 5000)).await }
    });
    for result in join_all(racers).await {
        result.expect("racing writer succeeds");
    }

    let listing = store.list().await.expect("list");
    assert!(listing.skipped.is_empty(), "{:?}", listing.skipped);
    assert_eq!(listing.hosts.len(), 17);
    for id in &ids {
        assert_eq!(
            listing.host(id).map(|h| &h.record),
            Some(&record(id, 3, 2000))
        );
    }
    let winner = &listing.host(&shared).expect("shared host").record;
    assert_eq!(winner, &record(&shared, generation_of(winner), 5000));
    let temp: Vec<String> = state_dir_entries(&bed, &store)
        .await
        .into_iter()
        .filter(|e| e.starts_with('.'))
        .collect();
    assert!(temp.is_empty(), "temp files left: {temp:?}");
}

#[tokio::test]
async fn two_hundred_records_are_listed_in_one_round_trip() {
    let bed = Bed::new().await;
    let store = bed.store().await;
    let ids: Vec<HostId> = (0..200).map(hex_id).collect();
    let started = Instant::now();
    let writes = futures::stream::iter(ids.iter().enumerate())
        .map(|(i, id)| {
            let store = store.clone();
            async move {
                store.write_host_record(&record(id, 1, 1500)).await?;
                if i % 4 == 0 {
                    store.persist_agent(id, &agent(1, "a")).await?;
                    store.persist_agent(id, &agent(2, "b")).await?;
                }
                Ok::<_, StoreError>(())
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    for w in writes {
        w.expect("write");
    }
    let written_in = started.elapsed();

    let counting = Counting::new(bed.exec.clone());
    let counted = HostStore::new(counting.clone(), store.container().clone());
    let mut timings = Vec::new();
    let mut listing = None;
    for _ in 0..3 {
        let t = Instant::now();
        listing = Some(counted.list().await.expect("list"));
        timings.push(t.elapsed());
    }
    let listing = listing.unwrap();
    assert_eq!(counting.count(), 3, "one round trip per listing");
    assert_eq!(listing.hosts.len(), 200);
    assert!(listing.skipped.is_empty());
    assert_eq!(
        listing.hosts.iter().map(|h| h.agents.len()).sum::<usize>(),
        100
    );
    for (host, id) in listing.hosts.iter().zip(&ids) {
        assert_eq!(host.record, record(id, 1, 1500));
    }
    let t = Instant::now();
    counted.read_host_record(&ids[0]).await.expect("read");
    let one = t.elapsed();
    let bytes: usize = listing
        .hosts
        .iter()
        .map(|h| h.record.to_json().unwrap().len())
        .sum();
    eprintln!(
        "[timing] bed={} 200 host records ({} KiB) + 100 agent records: written in {:.2}s (8 at a time); \
         listed in ONE round trip in {:?} (3 runs); one read_host_record: {:?}",
        if bed.is_remote() {
            "fake VPS over SSH"
        } else {
            "local engine"
        },
        bytes / 1024,
        written_in.as_secs_f64(),
        timings,
        one,
    );
    assert!(
        timings.iter().all(|t| *t < Duration::from_secs(30)),
        "{timings:?}"
    );
}

// ---- atomicity: writers killed mid-write --------------------------------------------------

/// What a stalled stdin does once released.
enum Release {
    /// Fails, like a writer that died.
    Fail,
    /// Ends early, like a connection whose stream was cut.
    Eof,
}

type WriteResult = Result<docker_ssh::Output, docker_ssh::ExecError>;
type WriteTask = tokio::task::JoinHandle<WriteResult>;

/// Gives the first `limit` bytes of `data`, says so, then waits to be released.
struct Stalled {
    data: Vec<u8>,
    pos: usize,
    limit: usize,
    reached: Option<oneshot::Sender<()>>,
    release: oneshot::Receiver<Release>,
}

impl AsyncRead for Stalled {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.limit {
            let n = (this.limit - this.pos).min(buf.remaining());
            buf.put_slice(&this.data[this.pos..this.pos + n]);
            this.pos += n;
            return Poll::Ready(Ok(()));
        }
        if let Some(tx) = this.reached.take() {
            let _ = tx.send(());
        }
        match Pin::new(&mut this.release).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(Release::Eof)) => Poll::Ready(Ok(())),
            Poll::Ready(_) => Poll::Ready(Err(std::io::Error::other("the writer was killed"))),
        }
    }
}

/// A write of `record` whose stdin stalls halfway: returns the running write, a way to
/// release its stdin, once the temp file in the volume holds the first half.
async fn stalled_write(
    bed: &Bed,
    store: &HostStore,
    exec: Arc<dyn Executor>,
    record: &HostRecord,
) -> (WriteTask, oneshot::Sender<Release>) {
    let json = record.to_json().unwrap();
    let half = json.len() / 2;
    let script = script::write_host_record(record.host_id(), json.len());
    let cmd = DockerCli::new()
        .exec(&ExecOptions::script(store.container().as_str(), script).interactive());
    let (reached_tx, reached_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel();
    let mut stdin = Stalled {
        data: json,
        pos: 0,
        limit: half,
        reached: Some(reached_tx),
        release: release_rx,
    };
    let task = tokio::spawn(async move { exec.run_with_stdin(&cmd, &mut stdin).await });
    reached_rx.await.expect("half of the record was sent");
    // Wait until the temp file in the volume holds that half.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let sizes = bed
            .in_state(store, "cd /mngr-state/host_state && for f in .*.tmp.*; do [ -f \"$f\" ] && wc -c < \"$f\"; done; true")
            .await;
        if sizes
            .lines()
            .any(|l| l.trim().parse::<usize>().ok() == Some(half))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the temp file never reached {half} bytes: {sizes:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (task, release_tx)
}

/// Releases a stalled write with `how` and waits (at most 30 s) for it to end.
async fn release_and_join(
    task: WriteTask,
    release: oneshot::Sender<Release>,
    how: Release,
) -> Result<WriteResult, tokio::task::JoinError> {
    let _ = release.send(how);
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("write ends")
}

async fn assert_still(store: &HostStore, expected: &HostRecord, what: &str) {
    let got = store
        .read_host_record(expected.host_id())
        .await
        .expect("read after the kill");
    assert_eq!(
        got.as_ref(),
        Some(expected),
        "{what}: the old record must be intact"
    );
    let listing = store.list().await.expect("list after the kill");
    assert!(listing.skipped.is_empty(), "{what}: {:?}", listing.skipped);
}

#[tokio::test]
async fn writes_killed_mid_write_leave_the_old_record() {
    let bed = Bed::new().await;
    let store = bed.store().await;
    let id = HostId::generate();
    let old = record(&id, 1, 1000);
    let new = record(&id, 2, 4 << 20);
    store
        .write_host_record(&old)
        .await
        .expect("write the old record");
    let container = store.container().to_string();

    // 1. kill -9 the `docker exec` client on the Docker host.
    let (task, release) = stalled_write(&bed, &store, bed.exec.clone(), &new).await;
    // The pattern is assembled by the shell, so this shell's own command line does not
    // match it.
    let find = format!(
        "p={}; pgrep -f -- \"$p sh -c\"",
        docker_ssh::quote(&format!("exec -i {container}"))
    );
    let pids = bed.sh(&find).await;
    assert!(!pids.trim().is_empty(), "no docker exec client found");
    bed.sh(&format!(
        "kill -9 {}",
        pids.split_whitespace().collect::<Vec<_>>().join(" ")
    ))
    .await;
    let result = release_and_join(task, release, Release::Fail)
        .await
        .expect("task");
    assert!(
        result.map(|o| !o.success()).unwrap_or(true),
        "the killed write must not succeed"
    );
    assert_still(&store, &old, "docker exec client killed").await;
    eprintln!(
        "[kill 1] docker exec client killed: state dir {:?}",
        state_dir_entries(&bed, &store).await
    );

    // 2. kill -9 the writing shell (and its cat) inside the state container.
    let (task, release) = stalled_write(&bed, &store, bed.exec.clone(), &new).await;
    let killer = r#"pat=XXX; pat=".tmp.${pat}XXX"; n=0
for d in /proc/[0-9]*; do
  p=${d#/proc/}; [ "$p" = "$$" ] && continue
  c=; read -r c < "$d/comm" 2>/dev/null || true
  if grep -q -F -e "$pat" "$d/cmdline" 2>/dev/null || [ "$c" = cat ]; then kill -9 "$p" 2>/dev/null && n=$((n+1)); fi
done
echo "$n""#;
    let killed = bed.in_state(&store, killer).await;
    assert!(
        killed.trim().parse::<u32>().unwrap_or(0) >= 1,
        "killed {killed:?}"
    );
    let _ = release_and_join(task, release, Release::Fail).await;
    assert_still(&store, &old, "writer shell killed").await;
    let left = state_dir_entries(&bed, &store).await;
    assert!(
        left.iter().any(|e| e.starts_with('.')),
        "SIGKILL leaves the temp file (ignored): {left:?}"
    );

    // 3. SIGKILL the whole state container.
    let (task, release) = stalled_write(&bed, &store, bed.exec.clone(), &new).await;
    bed.sh(&quote_argv(["docker", "kill", &container])).await;
    let _ = release_and_join(task, release, Release::Fail).await;
    let spec_again = host_store::StateContainerSpec::new(
        store.container().clone(),
        &bed.image,
        vps_primitives::ProviderName::parse("test").unwrap(),
    );
    ensure_state_container(bed.exec.clone(), &spec_again)
        .await
        .expect("restart");
    assert_still(&store, &old, "state container killed").await;

    // 4. The connection drops while the record streams (over SSH: close the session;
    //    locally: drop the command, which kills `docker exec`).
    if let Some(session) = bed.session().await {
        let session = Arc::new(session);
        let (task, release) = stalled_write(&bed, &store, session.clone(), &new).await;
        session.close().await;
        let result = release_and_join(task, release, Release::Fail)
            .await
            .expect("task");
        assert!(
            result.map(|o| !o.success()).unwrap_or(true),
            "a write on a closed connection fails"
        );
    } else {
        let (task, release) = stalled_write(&bed, &store, bed.exec.clone(), &new).await;
        task.abort();
        let _ = task.await;
        drop(release);
    }
    assert_still(&store, &old, "connection dropped").await;

    // 5. Stdin ends early (a stream cut short): refused by the size check.
    let (task, release) = stalled_write(&bed, &store, bed.exec.clone(), &new).await;
    let out = release_and_join(task, release, Release::Eof)
        .await
        .expect("task")
        .expect("ran");
    assert_eq!(
        out.status.code(),
        Some(script::SHORT_WRITE_STATUS),
        "{out:?}"
    );
    assert!(
        out.stderr_text().contains("the stored file is unchanged"),
        "{out:?}"
    );
    assert_still(&store, &old, "stdin cut short").await;

    // After all that, a normal write still works and replaces the record whole.
    store
        .write_host_record(&new)
        .await
        .expect("write the new record");
    assert_eq!(store.read_host_record(&id).await.expect("read"), Some(new));
    eprintln!(
        "[kill] state dir at the end: {:?}",
        state_dir_entries(&bed, &store).await
    );
}

#[tokio::test]
async fn readers_never_see_a_torn_record_while_writers_are_killed() {
    let bed = Bed::new().await;
    let store = bed.store().await;
    let id = HostId::generate();
    let blob = 1 << 20;
    store
        .write_host_record(&record(&id, 0, blob))
        .await
        .expect("first write");

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (store, id, stop, reads) = (store.clone(), id.clone(), stop.clone(), reads.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let got = store
                    .read_host_record(&id)
                    .await
                    .expect("every read succeeds");
                let got = got.expect("the record never disappears");
                assert_eq!(
                    got,
                    record(&id, generation_of(&got), blob),
                    "a read saw a torn or mixed record"
                );
                reads.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // Even generations run to the end (and tell how long a write takes); odd ones are
    // killed at a random moment within that time.
    let (mut completed, mut killed) = (0, 0);
    let mut write_time = Duration::from_millis(200);
    for generation in 1..=16u32 {
        // A connection of its own for each writer, so killing it hurts nobody else.
        let writer: Arc<dyn Executor> = match bed.session().await {
            Some(session) => Arc::new(session),
            None => bed.exec.clone(),
        };
        let writer_store = HostStore::new(writer, store.container().clone());
        let rec = record(&id, generation, blob);
        let started = Instant::now();
        let task = tokio::spawn(async move { writer_store.write_host_record(&rec).await });
        if generation % 2 == 0 {
            task.await
                .expect("task")
                .expect("an unharmed write succeeds");
            write_time = started.elapsed();
            completed += 1;
            continue;
        }
        let kill_at = write_time.mul_f64(rand::random_range(0.05..0.95));
        tokio::time::sleep(kill_at).await;
        if task.is_finished() {
            completed += 1;
        } else {
            task.abort();
            killed += 1;
        }
        let _ = task.await;
    }
    stop.store(true, Ordering::SeqCst);
    reader.await.expect("reader");
    let last = store
        .read_host_record(&id)
        .await
        .expect("read")
        .expect("record");
    assert_eq!(last, record(&id, generation_of(&last), blob));
    assert!(store.list().await.expect("list").skipped.is_empty());
    eprintln!(
        "[torn] {} consistent reads while 16 writers ran: {completed} completed, {killed} killed mid-write; final generation {}",
        reads.load(Ordering::SeqCst),
        generation_of(&last)
    );
    assert!(reads.load(Ordering::SeqCst) > 0);
    assert!(killed > 0, "no writer was killed mid-write");
}
