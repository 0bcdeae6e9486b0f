//! Image builds, tags and rename, agent data and leak cleanup, end to end on `local-vps`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use docker_ssh::{Command, Executor};
use host_store::AgentRecord;
use tokio::io::AsyncBufReadExt;
use vps_client::VpsClient;
use vps_docker_provider::{
    Cancel, CreateHostRequest, HostStatus, LeakKind, NoProgress, Progress, ProviderError, Step,
    StopReason,
};
use vps_primitives::{AgentId, HostName};

use common::Bed;

fn request(name: &str) -> CreateHostRequest {
    CreateHostRequest::new(HostName::parse(name).expect("valid name"))
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// Collects the output lines of the image step.
#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl Progress for Lines {
    fn output(&self, step: Step, line: &str) {
        if step == Step::Image {
            self.0.lock().expect("lock").push(line.to_owned());
        }
    }
}

/// Names that a shell, a tar stream or a `docker build` context could get wrong.
const NAMES: [&str; 4] = [
    "with space.txt",
    "it's \"quoted\" $HOME.txt",
    "ünïcødé ☃.txt",
    "sub dir/nested file.txt",
];

fn build_context(dir: &Path) {
    for name in NAMES {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, format!("content of {name}\n")).expect("write");
    }
    std::fs::write(dir.join("secret.key"), "must not reach the image\n").expect("write");
    std::fs::create_dir_all(dir.join("node_modules/x")).expect("mkdir");
    std::fs::write(dir.join("node_modules/x/index.js"), "ignored\n").expect("write");
    std::fs::write(dir.join(".dockerignore"), "*.key\nnode_modules\n").expect("write");
    std::fs::create_dir_all(dir.join("docker")).expect("mkdir");
    std::fs::write(
        dir.join("docker/Build.Dockerfile"),
        format!(
            "FROM {}\nCOPY . /ctx/\nRUN echo built-on-the-vps > /built\n",
            testbed::image(testbed::Image::Host)
        ),
    )
    .expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn build_tags_rename_and_agent_data() {
    let bed = Bed::new();
    let provider = &bed.provider;
    let ctx = tempfile::tempdir().expect("context");
    build_context(ctx.path());

    // --file X form, an unknown-to-us flag with a value, and the context last.
    let mut req = request("builder");
    req.build_args = vec![
        "--vps-region=ewr".into(),
        "--file".into(),
        "docker/Build.Dockerfile".into(),
        "--build-arg".into(),
        "UNUSED=1".into(),
        ctx.path().to_string_lossy().into_owned(),
    ];
    req.tags = BTreeMap::from([("team".to_owned(), "infra".to_owned())]);
    let lines = Lines::default();
    let host = provider
        .create_host(req, &lines, &Cancel::never())
        .await
        .expect("create with a build");
    let output = lines.0.lock().expect("lock").clone();
    assert!(
        output
            .iter()
            .any(|l| l.contains("uploading the build context")),
        "{output:#?}"
    );
    assert!(
        output
            .iter()
            .filter(|l| l.contains("Step") || l.contains("#"))
            .count()
            >= 2,
        "the build's own output is streamed line by line: {output:#?}"
    );
    let image = host.info().image.clone().expect("image");
    assert_eq!(image, format!("mngr-build-{}", host.id()));

    let listing = host
        .exec(&Command::script(
            "cat /built; cd /ctx && find . -type f | LC_ALL=C sort",
        ))
        .await
        .expect("exec");
    assert!(listing.success(), "{listing:?}");
    let text = listing.stdout_text();
    assert!(text.starts_with("built-on-the-vps\n"), "{text}");
    for name in NAMES {
        assert!(
            text.contains(&format!("./{name}\n")),
            "{name} missing: {text}"
        );
    }
    assert!(
        !text.contains("secret.key"),
        "ignored file in the image: {text}"
    );
    assert!(
        !text.contains("node_modules"),
        "ignored dir in the image: {text}"
    );
    let quoted = host
        .exec(&Command::argv(["cat", "/ctx/it's \"quoted\" $HOME.txt"]))
        .await
        .expect("exec");
    assert_eq!(
        quoted.stdout_trimmed(),
        "content of it's \"quoted\" $HOME.txt"
    );
    // The uploaded context is gone from the VPS.
    let vps = host.vps_docker().executor().clone();
    let gone = vps
        .run(&Command::script(format!(
            "test ! -e /tmp/mngr-build-{} && echo gone",
            host.id()
        )))
        .await
        .expect("vps exec");
    assert_eq!(gone.stdout_trimmed(), "gone");

    // Tags: add, remove, set; a fresh provider sees each.
    let id = host.id().clone();
    let added = provider
        .add_tags(
            "builder",
            BTreeMap::from([("env".into(), "it's prod".into())]),
        )
        .await
        .expect("add");
    assert_eq!(added.len(), 2);
    let fresh = bed.fresh();
    assert_eq!(
        fresh.get_tags("builder").await.expect("get")["env"],
        "it's prod"
    );
    provider
        .remove_tags("builder", &["team".into()])
        .await
        .expect("remove");
    assert_eq!(
        bed.fresh().get_host("builder").await.expect("get").tags,
        BTreeMap::from([("env".to_owned(), "it's prod".to_owned())])
    );
    provider
        .set_tags("builder", BTreeMap::from([("only".into(), "this".into())]))
        .await
        .expect("set");
    assert_eq!(
        bed.fresh().get_tags(id.as_str()).await.expect("get"),
        BTreeMap::from([("only".to_owned(), "this".to_owned())])
    );
    let e = provider
        .add_tags("builder", BTreeMap::from([("a=b".into(), "x".into())]))
        .await
        .expect_err("bad key");
    assert!(matches!(e, ProviderError::InvalidInput(_)), "{e}");

    // Rename: a fresh provider finds it by the new name only; the container is renamed.
    let new_name = HostName::parse("renamed").expect("name");
    let renamed = provider
        .rename_host("builder", &new_name)
        .await
        .expect("rename");
    assert_eq!(renamed.name.as_ref(), Some(&new_name));
    let fresh = bed.fresh();
    let seen = fresh
        .get_host("renamed")
        .await
        .expect("found by the new name");
    assert_eq!(seen.id, id);
    assert_eq!(seen.status, HostStatus::Running);
    assert!(matches!(
        fresh.get_host("builder").await,
        Err(ProviderError::HostNotFound(_))
    ));
    let names = vps
        .run(&Command::argv(["docker", "ps", "--format", "{{.Names}}"]))
        .await
        .expect("vps exec")
        .stdout_text();
    assert!(names.lines().any(|n| n == "mngr-renamed"), "{names}");
    assert!(!names.lines().any(|n| n == "mngr-builder"), "{names}");
    assert_eq!(
        fresh.list_hosts().await.expect("list")[0].display_name(),
        "renamed"
    );
    // A second host cannot take the name.
    let taken = fresh
        .create_host(request("renamed"), &NoProgress, &Cancel::never())
        .await
        .expect_err("name taken");
    assert!(matches!(taken, ProviderError::NameTaken { .. }), "{taken}");

    // Agent data, also while the host's container is stopped.
    let a1 = AgentRecord::new(AgentId::generate(), "first");
    let a2 = AgentRecord::new(AgentId::generate(), "second");
    provider
        .persist_agent("renamed", &a1)
        .await
        .expect("persist");
    provider
        .stop_host("renamed", StopReason::User)
        .await
        .expect("stop");
    let fresh = bed.fresh();
    fresh
        .persist_agent(id.as_str(), &a2)
        .await
        .expect("persist while stopped");
    let listed = fresh
        .list_agents("renamed")
        .await
        .expect("list while stopped");
    let mut names: Vec<String> = listed.agents.iter().map(|a| a.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["first", "second"]);
    assert!(fresh.remove_agent("renamed", &a1.id).await.expect("remove"));
    assert!(!fresh.remove_agent("renamed", &a1.id).await.expect("again"));
    let left = provider.list_agents("renamed").await.expect("list");
    assert_eq!(left.agents.len(), 1);
    assert_eq!(left.agents[0].id, a2.id);
    let started = provider.start_host("renamed").await.expect("start");
    assert_eq!(
        started
            .exec(&Command::argv(["cat", "/built"]))
            .await
            .expect("exec")
            .stdout_trimmed(),
        "built-on-the-vps"
    );

    provider.destroy_host("renamed").await.expect("destroy");
    bed.assert_nothing_left();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_build_inputs_are_refused_and_create_nothing() {
    let bed = Bed::new();
    let provider = &bed.provider;
    let ctx = tempfile::tempdir().expect("context");
    std::fs::write(ctx.path().join("Dockerfile"), "FROM scratch\n").expect("write");
    let ctx_arg = ctx.path().to_string_lossy().into_owned();
    let missing = ctx
        .path()
        .join("no such dir")
        .to_string_lossy()
        .into_owned();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (strings(&["--vps-zone=x"]), "--vps-zone=x"),
        (strings(&["--vps-os=debian"]), "must be a number"),
        (
            vec!["-f".into(), "Missing.Dockerfile".into(), ctx_arg.clone()],
            "does not exist in the build context",
        ),
        (vec![missing], "does not exist"),
        (strings(&["--no-cache"]), "no build context"),
    ];
    let count = || async {
        (
            bed.client
                .list_instances(None)
                .await
                .expect("instances")
                .len(),
            bed.client.list_ssh_keys().await.expect("keys").len(),
            provider.key_store().hosts().expect("key dirs").len(),
        )
    };
    let before = count().await;
    for (args, want) in cases {
        let mut req = request("bad");
        req.build_args = args.clone();
        let e = provider
            .create_host(req, &NoProgress, &Cancel::never())
            .await
            .expect_err("refused");
        assert!(matches!(e, ProviderError::InvalidInput(_)), "{args:?}: {e}");
        assert!(e.to_string().contains(want), "{args:?}: {e}");
        assert_eq!(count().await, before, "{args:?} left something");
    }
    bed.assert_nothing_left();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_build_names_the_image_step_and_leaves_nothing() {
    let bed = Bed::new();
    let ctx = tempfile::tempdir().expect("context");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {}\nRUN echo mngr-build-fails-here && exit 3\n",
            testbed::image(testbed::Image::Host)
        ),
    )
    .expect("write");
    let mut req = request("broken");
    req.build_args = vec![ctx.path().to_string_lossy().into_owned()];
    let lines = Lines::default();
    let e = bed
        .provider
        .create_host(req, &lines, &Cancel::never())
        .await
        .expect_err("the build fails");
    match &e {
        ProviderError::Create {
            step,
            rollback_failures,
            ..
        } => {
            assert_eq!(*step, Step::Image, "{e}");
            assert!(rollback_failures.is_empty(), "{e}");
        }
        other => panic!("not a create error: {other}"),
    }
    let output = lines.0.lock().expect("lock").clone();
    assert!(
        output.iter().any(|l| l.contains("mngr-build-fails-here")),
        "the failing build's output reached the caller: {output:#?}"
    );
    bed.assert_nothing_left();
}

/// The child side of the leak test: creates a host on the account and key directory the
/// parent names, printing a marker once the instance exists; the parent kills it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by leak_cleanup_finds_a_killed_create as its child process"]
async fn child_create_to_be_killed() {
    let account = std::env::var("MNGR_H8_CHILD_ACCOUNT").expect("account");
    let keys = std::env::var("MNGR_H8_CHILD_KEYS").expect("keys");
    let provider = common::provider_on(&account, Path::new(&keys), common::test_config());
    struct Marker;
    impl Progress for Marker {
        fn step_done(&self, step: Step, _took: Duration) {
            if step == Step::CreateInstance {
                println!("MNGR_INSTANCE_CREATED");
            }
        }
    }
    let _ = provider
        .create_host(request("killed"), &Marker, &Cancel::never())
        .await;
    // Not reached in the leak test: the parent kills this process first.
    panic!("the create was not killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leak_cleanup_finds_a_killed_create() {
    let bed = Bed::new();
    let provider = &bed.provider;
    let healthy = provider
        .create_host(request("healthy"), &NoProgress, &Cancel::never())
        .await
        .expect("create");

    let mut child = tokio::process::Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "child_create_to_be_killed",
            "--ignored",
            "--nocapture",
        ])
        .env("MNGR_H8_CHILD_ACCOUNT", &bed.account)
        .env("MNGR_H8_CHILD_KEYS", bed.keys.path())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let marker = tokio::time::timeout(Duration::from_secs(300), async {
        while let Some(line) = lines.next_line().await.expect("read") {
            if line.contains("MNGR_INSTANCE_CREATED") {
                return true;
            }
        }
        false
    })
    .await
    .expect("the child got to the instance in time");
    assert!(marker, "the child ended before its instance existed");
    child.start_kill().expect("SIGKILL");
    let status = child.wait().await.expect("wait");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{status:?}"
    );

    let killed = |l: &vps_docker_provider::Leak| matches!(&l.kind, LeakKind::Instance { label, .. } if label == "mngr-killed");
    // Its VPS keeps booting; once it answers, it has no record of the host.
    let deadline = Instant::now() + Duration::from_secs(300);
    let leaks = loop {
        let leaks = provider.find_leaks(Duration::ZERO).await.expect("find");
        if leaks.iter().any(killed) {
            break leaks;
        }
        assert!(Instant::now() < deadline, "never found: {leaks:#?}");
        tokio::time::sleep(Duration::from_secs(3)).await;
    };
    eprintln!("leaks: {leaks:#?}");
    let host = leaks
        .iter()
        .find(|l| killed(l))
        .expect("instance")
        .host
        .clone();
    assert!(
        leaks.iter().all(|l| l.host == host),
        "only the killed create leaked: {leaks:#?}"
    );
    let kinds: Vec<&LeakKind> = leaks.iter().map(|l| &l.kind).collect();
    assert!(
        kinds.iter().any(|k| matches!(k, LeakKind::SshKey { .. })),
        "{kinds:#?}"
    );
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, LeakKind::LocalKeys { .. })),
        "{kinds:#?}"
    );
    // The threshold holds a young create back; listing deleted nothing.
    let old_only = provider
        .find_leaks(Duration::from_secs(3600))
        .await
        .expect("find");
    assert!(old_only.is_empty(), "{old_only:#?}");
    assert_eq!(
        bed.client.list_instances(None).await.expect("list").len(),
        2
    );

    let report = bed.fresh().delete_leaks(&leaks).await;
    assert!(report.is_complete(), "{report:#?}");
    assert_eq!(report.deleted.len(), leaks.len());
    let instances = bed.client.list_instances(None).await.expect("list");
    assert_eq!(instances.len(), 1, "{instances:#?}");
    let keys = bed.client.list_ssh_keys().await.expect("keys");
    assert!(
        keys.iter().all(|k| !k.name.contains(host.as_str())),
        "{keys:#?}"
    );
    assert!(!provider.key_store().host(&host).exists());
    assert!(
        provider
            .find_leaks(Duration::ZERO)
            .await
            .expect("find")
            .is_empty()
    );

    // The healthy host was left alone.
    let out = healthy
        .exec(&Command::argv(["echo", "still here"]))
        .await
        .expect("exec");
    assert_eq!(out.stdout_trimmed(), "still here");
    assert_eq!(
        provider.get_host("healthy").await.expect("get").status,
        HostStatus::Running
    );
    provider.destroy_host("healthy").await.expect("destroy");
    bed.assert_nothing_left();
}
