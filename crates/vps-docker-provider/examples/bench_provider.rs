//! `cargo xtask bench provider`: the host lifecycle on `local-vps`, in release mode.
//!
//! Prints a local create's wall time by phase and the share that is the library's own work
//! (this process's CPU time over the wall time: everything else is waiting on the provider,
//! dockerd, cloud-init and sshd), then stop, start and destroy, `exec true` in the container
//! over its pooled SSH, `docker inspect` over the pooled VPS connection, and listing one
//! host against eight. `--quick`: one create, fewer samples, N=4 instead of 8.

use std::sync::Arc;
use std::time::{Duration, Instant};

use docker_ssh::{Command, Executor};
use local_vps::{ACCOUNT_LABEL, LocalVpsClient, LocalVpsConfig};
use local_vps_images::{Image, ensure_image};
use vps_docker_provider::{
    Cancel, CreateHostRequest, NoProgress, Phases, Step, StopReason, VpsDockerProvider,
    VpsDockerProviderConfig,
};
use vps_primitives::{HostName, ProviderName};

struct Account {
    name: String,
    provider: VpsDockerProvider,
    _keys: tempfile::TempDir,
}

impl Drop for Account {
    fn drop(&mut self) {
        // Whatever a failed run left: everything of this account, by label.
        if let Err(e) = testbed::remove_labelled(ACCOUNT_LABEL, &self.name) {
            eprintln!("cleanup of {}: {e}", self.name);
        }
    }
}

fn account(image: &str, tag: &str) -> Account {
    let name = format!("bench-{tag}-{}", std::process::id());
    let run = std::env::var("MNGR_TEST_RUN_ID")
        .unwrap_or_else(|_| format!("bench-{}", std::process::id()));
    let client = LocalVpsClient::new(
        LocalVpsConfig::default()
            .account(name.clone())
            .label(vps_primitives::LABEL_TEST_RUN, run)
            .progress(|l| eprintln!("[local-vps] {l}")),
    )
    .expect("local client");
    let keys = tempfile::tempdir().expect("key dir");
    let config = VpsDockerProviderConfig {
        default_image: image.to_owned(),
        state_image: image.to_owned(),
        default_os_id: local_vps::LocalOs::DOCKER_READY_ID.0,
        ..VpsDockerProviderConfig::default()
    };
    let provider = VpsDockerProvider::new(
        ProviderName::parse("local").expect("name"),
        Arc::new(client),
        config,
        keys.path(),
    )
    .expect("provider");
    Account {
        name,
        provider,
        _keys: keys,
    }
}

/// User plus system CPU time of this process.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat; here 12 and 13 (after pid and comm).
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

async fn create(
    provider: &VpsDockerProvider,
    name: &str,
) -> (vps_docker_provider::Host, Duration, Duration) {
    let cpu = cpu_time();
    let started = Instant::now();
    let host = provider
        .create_host(
            CreateHostRequest::new(HostName::parse(name).expect("name")),
            &NoProgress,
            &Cancel::never(),
        )
        .await
        .expect("create");
    (host, started.elapsed(), cpu_time().saturating_sub(cpu))
}

fn print_phases(phases: &Phases) {
    let mut merged: Vec<(Step, Duration)> = Vec::new();
    for (step, took) in &phases.0 {
        match merged.iter_mut().find(|(s, _)| s == step) {
            Some((_, d)) => *d += *took,
            None => merged.push((*step, *took)),
        }
    }
    for (step, took) in merged {
        println!("  {:<18} {:>9}", step.as_str(), secs(took));
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let image = ensure_image(Image::Host, &mut |l| eprintln!("[image] {l}")).expect("host image");
    ensure_image(Image::FakeVps, &mut |l| eprintln!("[image] {l}")).expect("fake VPS image");
    let runs = if quick { 1 } else { 3 };
    let samples = if quick { 50 } else { 200 };
    let many = if quick { 4 } else { 8 };

    println!(
        "# provider benchmark (release, local-vps, {} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let one = account(&image, "one");
    let mut creates = Vec::new();
    let mut stops = Vec::new();
    let mut starts = Vec::new();
    let mut destroys = Vec::new();
    let mut last_phases = Phases::default();
    let mut own_share = Vec::new();
    let mut own_cpu = Vec::new();
    for run in 0..runs {
        let name = format!("bench-{run}");
        let (host, wall, cpu) = create(&one.provider, &name).await;
        creates.push(wall);
        own_share.push(cpu.as_secs_f64() / wall.as_secs_f64());
        own_cpu.push(cpu);
        last_phases = host.phases().clone();
        if run + 1 < runs {
            host.close().await;
            let t = Instant::now();
            one.provider
                .stop_host(&name, StopReason::User)
                .await
                .expect("stop");
            stops.push(t.elapsed());
            let t = Instant::now();
            let h = one.provider.start_host(&name).await.expect("start");
            starts.push(t.elapsed());
            h.close().await;
            let t = Instant::now();
            one.provider.destroy_host(&name).await.expect("destroy");
            destroys.push(t.elapsed());
        } else {
            // The last host stays for the per-command figures and the N=1 listing.
            let t = Instant::now();
            one.provider
                .stop_host(&name, StopReason::User)
                .await
                .expect("stop");
            stops.push(t.elapsed());
            let t = Instant::now();
            let h = one.provider.start_host(&name).await.expect("start");
            starts.push(t.elapsed());
            drop(h);
            let _ = host;
        }
    }
    println!(
        "\n## create (median of {runs}): {}",
        secs(median(creates.clone()))
    );
    println!("phases of the last create:");
    print_phases(&last_phases);
    let share = own_share.iter().copied().fold(0.0, f64::max);
    let each: Vec<String> = own_share
        .iter()
        .zip(&own_cpu)
        .map(|(s, cpu)| format!("{:.1} % = {:.2} s", s * 100.0, cpu.as_secs_f64()))
        .collect();
    println!(
        "library's own work (process CPU / wall, worst run): {:.1} % (target < 5 %; each run: {})",
        share * 100.0,
        each.join(", ")
    );
    println!(
        "\n## stop {}   start {}",
        secs(median(stops)),
        secs(median(starts))
    );

    let host = one
        .provider
        .connect(&format!("bench-{}", runs - 1))
        .await
        .expect("connect");
    let true_cmd = Command::argv(["true"]);
    host.exec(&true_cmd).await.expect("warm up");
    let mut execs = Vec::new();
    for _ in 0..samples {
        let t = Instant::now();
        host.exec(&true_cmd).await.expect("exec");
        execs.push(t.elapsed());
    }
    let docker = host.vps_docker();
    let container =
        vps_docker_provider::plan::container_name(host.info().name.as_ref().expect("name"));
    docker.is_running(&container).await.expect("warm up");
    let mut inspects = Vec::new();
    for _ in 0..samples {
        let t = Instant::now();
        docker.is_running(&container).await.expect("inspect");
        inspects.push(t.elapsed());
    }
    println!("\n## per command (median of {samples})");
    println!(
        "exec `true` in the container (pooled container SSH): {}  (target < 4 ms; upstream 48 ms)",
        ms(median(execs))
    );
    println!(
        "`docker inspect` over the pooled VPS connection:     {}  (upstream 70-73 ms)",
        ms(median(inspects))
    );
    let _ = docker.executor().target();
    host.close().await;

    let list = |p: VpsDockerProvider| async move {
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let hosts = p.list_hosts().await.expect("list");
            times.push(t.elapsed());
            assert!(!hosts.is_empty());
        }
        median(times)
    };
    let n1 = list(one.provider.clone()).await;

    let eight = account(&image, "many");
    let creates = futures_join(&eight.provider, many).await;
    let n8 = list(eight.provider.clone()).await;
    println!("\n## listing (median of 5, fresh connections each time)");
    println!(
        "N=1: {}   N={many}: {}   ratio {:.2}x  (target < 1.5x; upstream 0.88 s vs 5.4 s)",
        ms(n1),
        ms(n8),
        n8.as_secs_f64() / n1.as_secs_f64()
    );
    println!("({many} hosts created concurrently in {})", secs(creates));

    let t = Instant::now();
    one.provider
        .destroy_host(&format!("bench-{}", runs - 1))
        .await
        .expect("destroy");
    destroys.push(t.elapsed());
    println!(
        "\n## destroy (median of {}): {}",
        destroys.len(),
        secs(median(destroys))
    );
    for i in 0..many {
        eight
            .provider
            .destroy_host(&format!("many-{i}"))
            .await
            .expect("destroy");
    }
}

async fn futures_join(provider: &VpsDockerProvider, n: usize) -> Duration {
    let started = Instant::now();
    let never = Cancel::never();
    let all = (0..n).map(|i| {
        let provider = provider.clone();
        let never = never.clone();
        async move {
            provider
                .create_host(
                    CreateHostRequest::new(HostName::parse(&format!("many-{i}")).expect("name")),
                    &NoProgress,
                    &never,
                )
                .await
                .expect("create")
        }
    });
    let hosts = futures::future::join_all(all).await;
    for h in hosts {
        h.close().await;
    }
    started.elapsed()
}
