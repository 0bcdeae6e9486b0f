//! Side-by-side benchmark of `docker-ssh` against the OpenSSH client, on loopback.
//!
//! Starts its own OpenSSH sshd container (the `local-vps-images` sshd image, port on
//! 127.0.0.1 only, labelled with the test run, removed at the end) and measures:
//! median latency of a trivial command over the pool vs `ssh` spawned per command vs
//! OpenSSH with ControlMaster; 8-way concurrent throughput; upload MiB/s of a directory
//! tree vs `tar c | ssh 'tar x'`.
//!
//! Run: `cargo run --release -p docker-ssh --features bench --bin bench_ssh [-- --quick]`

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use docker_ssh::{
    Command, Docker, ExcludeList, Executor, KnownHosts, LocalExecutor, PortMapping, RunOptions,
    SshConfig, SshPool, SshTarget, generate_ed25519, private_key_openssh, public_key_line,
    upload_dir, wait_for_sshd, write_keypair,
};
use local_vps_images::{Image, ensure_image};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Settings {
    sequential: usize,
    spawn: usize,
    concurrent: usize,
    upload_mib: usize,
    upload_runs: usize,
}

/// Removes the container and the scratch directory however the run ends.
struct Cleanup {
    container: Option<String>,
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(id) = &self.container {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The OpenSSH client, with a throwaway known_hosts file and strict checking.
struct OpenSsh {
    base: Vec<String>,
}

impl OpenSsh {
    fn command(&self, extra: &[&str], remote: &str) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("ssh");
        c.args(&self.base)
            .args(extra)
            .arg("root@127.0.0.1")
            .arg(remote);
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }

    async fn run(&self, extra: &[&str], remote: &str) -> Result<(), BoxError> {
        let out = self.command(extra, remote).output().await?;
        if !out.status.success() {
            return Err(format!(
                "ssh {remote:?} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
            .into());
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let quick = std::env::args().any(|a| a == "--quick");
    let settings = if quick {
        Settings {
            sequential: 50,
            spawn: 8,
            concurrent: 80,
            upload_mib: 32,
            upload_runs: 1,
        }
    } else {
        Settings {
            sequential: 300,
            spawn: 30,
            concurrent: 400,
            upload_mib: 128,
            upload_runs: 3,
        }
    };
    let scratch =
        std::env::temp_dir().join(format!("docker-ssh-bench-{:016x}", rand::random::<u64>()));
    docker_ssh::create_private_dir(&scratch)?;
    let mut cleanup = Cleanup {
        container: None,
        dir: scratch.clone(),
    };

    // Keys: a client key and the host key sshd will serve (pinned before connecting).
    let client_key = generate_ed25519()?;
    let host_key = generate_ed25519()?;
    let key_path = scratch.join("client_key");
    write_keypair(&key_path, &client_key)?;

    let image = ensure_image(Image::Sshd, &mut |l| eprintln!("[image] {l}"))?;
    let run_id = std::env::var("MNGR_TEST_RUN_ID").unwrap_or_else(|_| "dev".into());
    let docker = Docker::new(Arc::new(LocalExecutor::new()));
    let name = format!("docker-ssh-bench-{:08x}", rand::random::<u32>());
    let host_key_b64 =
        base64::engine::general_purpose::STANDARD.encode(private_key_openssh(&host_key)?.expose());
    let opts = RunOptions::new(&image, &name)
        .port(PortMapping::new(22).host_ip([127, 0, 0, 1].into()))
        .label("com.imbue.mngr.test-run", &run_id)
        .env(
            "SSH_AUTHORIZED_KEYS",
            public_key_line(client_key.public_key()),
        )
        .env("SSH_HOST_ED25519_KEY", &host_key_b64);
    // The host key travels in the environment here (a throwaway bench key): keep it out
    // of logs and errors anyway.
    let run_cmd = docker.cli().run(&opts).secret(host_key_b64.clone());
    let id = docker.checked(&run_cmd).await?.stdout_trimmed();
    cleanup.container = Some(id.clone());
    let info = docker
        .inspect_container(&id)
        .await?
        .ok_or("container vanished")?;
    let port = info.host_port(22).ok_or("port 22 not published")?;

    let offered = wait_for_sshd("127.0.0.1", port, Duration::from_secs(30)).await?;
    if offered.key_data() != host_key.public_key().key_data() {
        return Err("sshd serves an unexpected host key".into());
    }
    let known_hosts = KnownHosts::new(scratch.join("known_hosts"));
    known_hosts.add("127.0.0.1", port, host_key.public_key())?;

    let target = SshTarget::from_known_hosts(
        "127.0.0.1",
        port,
        "root",
        Arc::new(client_key),
        &known_hosts,
    )?;
    let pool = SshPool::new(target, SshConfig::default());
    pool.connect().await?;

    let kh = known_hosts.path().to_string_lossy().into_owned();
    let ssh = OpenSsh {
        base: [
            "-F",
            "/dev/null",
            "-i",
            &key_path.to_string_lossy(),
            "-p",
            &port.to_string(),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            &format!("UserKnownHostsFile={kh}"),
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect(),
    };

    // The machine may be shared: samples of the three clients are interleaved so that
    // they all see the same background load, and ratios stay meaningful.
    let sock = scratch.join("cm.sock");
    let sock_s = sock.to_string_lossy().into_owned();
    let cm_opts: Vec<String> = ["-o", "ControlMaster=no", "-S", sock_s.as_str()]
        .into_iter()
        .map(str::to_owned)
        .collect();
    let master = ssh
        .command(&["-M", "-S", &sock_s, "-N", "-o", "ControlPersist=no"], "")
        .kill_on_drop(true)
        .spawn()?;
    for _ in 0..100 {
        if sock.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ssh = Arc::new(ssh);
    let cm_args: Vec<&str> = cm_opts.iter().map(String::as_str).collect();

    // --- latency -------------------------------------------------------------------
    let trivial = Command::argv(["true"]);
    for _ in 0..10 {
        pool.run_checked(&trivial).await?;
        ssh.run(&cm_args, "true").await?;
    }
    ssh.run(&[], "true").await?;
    let spawn_every = (settings.sequential / settings.spawn).max(1);
    let (mut pool_lat, mut cm_lat, mut spawn_lat) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..settings.sequential {
        let t = Instant::now();
        pool.run_checked(&trivial).await?;
        pool_lat.push(t.elapsed());
        let t = Instant::now();
        ssh.run(&cm_args, "true").await?;
        cm_lat.push(t.elapsed());
        if i % spawn_every == 0 {
            let t = Instant::now();
            ssh.run(&[], "true").await?;
            spawn_lat.push(t.elapsed());
        }
    }

    // --- 8-way concurrent throughput, in alternating rounds ------------------------
    let n = settings.concurrent;
    let rounds = 4;
    let (mut pool_time, mut cm_time) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let per_round = n / rounds;
        let t = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..8 {
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move {
                for _ in (w..per_round).step_by(8) {
                    pool.run_checked(&Command::argv(["true"])).await?;
                }
                Ok::<_, docker_ssh::ExecError>(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        pool_time += t.elapsed();

        let t = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..8 {
            let ssh = ssh.clone();
            let cm_opts = cm_opts.clone();
            tasks.push(tokio::spawn(async move {
                let args: Vec<&str> = cm_opts.iter().map(String::as_str).collect();
                for _ in (w..per_round).step_by(8) {
                    ssh.run(&args, "true").await?;
                }
                Ok::<_, BoxError>(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        cm_time += t.elapsed();
    }
    let done = (n / rounds * rounds) as f64;
    let pool_tput = done / pool_time.as_secs_f64();
    let cm_tput = done / cm_time.as_secs_f64();
    drop(master);

    // --- upload --------------------------------------------------------------------
    let tree = scratch.join("tree");
    make_tree(&tree, settings.upload_mib)?;
    let mib = settings.upload_mib as f64;
    let clean = Command::script("rm -rf /tmp/up-pool /tmp/up-ssh");
    let mut pool_up = Vec::new();
    let mut ssh_up = Vec::new();
    for _ in 0..settings.upload_runs {
        pool.run_checked(&clean).await?;
        let t = Instant::now();
        upload_dir(&pool, &tree, "/tmp/up-pool", &ExcludeList::none()).await?;
        pool_up.push(t.elapsed());

        pool.run_checked(&clean).await?;
        let t = Instant::now();
        tar_pipe_ssh(&ssh, &tree).await?;
        ssh_up.push(t.elapsed());
    }
    pool.run_checked(&clean).await?;
    let pool_mibs = mib / median(pool_up).as_secs_f64();
    let ssh_mibs = mib / median(ssh_up).as_secs_f64();

    // --- report --------------------------------------------------------------------
    let (p, s, c) = (median(pool_lat), median(spawn_lat), median(cm_lat));
    let vs_cm = c.as_secs_f64() / p.as_secs_f64();
    let vs_spawn = s.as_secs_f64() / p.as_secs_f64();
    let up_ratio = pool_mibs / ssh_mibs;
    let ssh_version = std::process::Command::new("ssh").arg("-V").output()?;
    println!(
        "docker-ssh bench: sshd in container {} on 127.0.0.1:{port}; client {}",
        &id[..12],
        String::from_utf8_lossy(&ssh_version.stderr).trim()
    );
    println!(
        "{:<34} {:>18} {:>18} {:>20}",
        "", "docker-ssh pool", "ssh per command", "ssh ControlMaster"
    );
    println!(
        "{:<34} {:>18} {:>18} {:>20}",
        format!(
            "median latency `true` (n={}/{})",
            settings.sequential, settings.spawn
        ),
        ms(p),
        ms(s),
        ms(c)
    );
    println!(
        "{:<34} {:>18} {:>18} {:>20}",
        format!("8-way throughput ({n} cmds)"),
        format!("{pool_tput:.0} cmd/s"),
        "-",
        format!("{cm_tput:.0} cmd/s")
    );
    println!(
        "{:<34} {:>18} {:>18} {:>20}",
        format!(
            "upload {} MiB tree (median of {})",
            settings.upload_mib, settings.upload_runs
        ),
        format!("{pool_mibs:.0} MiB/s"),
        format!("tar|ssh {ssh_mibs:.0} MiB/s"),
        ""
    );
    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!(
        "targets: per command {vs_cm:.1}x faster than ControlMaster (>=3x: {}), \
         {vs_spawn:.0}x faster than ssh per command (>=30x: {}); \
         upload {up_ratio:.2}x OpenSSH (>=1x: {}); 8-way {:.1}x ControlMaster",
        verdict(vs_cm >= 3.0),
        verdict(vs_spawn >= 30.0),
        verdict(up_ratio >= 1.0),
        pool_tput / cm_tput
    );
    pool.close().await;
    drop(cleanup);
    Ok(())
}

/// `tar -C tree -c . | ssh … 'mkdir -p /tmp/up-ssh && tar -x -C /tmp/up-ssh'`.
async fn tar_pipe_ssh(ssh: &OpenSsh, tree: &Path) -> Result<(), BoxError> {
    let mut tar = tokio::process::Command::new("tar")
        .arg("-C")
        .arg(tree)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()?;
    let tar_out: Stdio = tar.stdout.take().ok_or("tar has no stdout")?.try_into()?;
    let mut cmd = ssh.command(
        &[],
        "mkdir -p /tmp/up-ssh && tar -x -f - -C /tmp/up-ssh --no-same-owner",
    );
    cmd.stdin(tar_out);
    let out = cmd.output().await?;
    let tar_status = tar.wait().await?;
    if !out.status.success() || !tar_status.success() {
        return Err(format!("tar | ssh failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

/// A tree of `mib` MiB of incompressible data: 2 MiB files in a few directories, plus
/// some small files.
fn make_tree(root: &Path, mib: usize) -> Result<(), BoxError> {
    use rand::RngExt;
    let mut rng = rand::rng();
    for i in 0..mib / 2 {
        let dir = root.join(format!("dir{}", i % 8));
        std::fs::create_dir_all(&dir)?;
        let mut data = vec![0u8; 2 << 20];
        rng.fill(&mut data[..]);
        std::fs::write(dir.join(format!("blob{i}.bin")), &data)?;
    }
    for i in 0..200 {
        std::fs::write(root.join(format!("small{i}.txt")), format!("file {i}\n"))?;
    }
    Ok(())
}
