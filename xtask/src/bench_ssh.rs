//! Side-by-side benchmark of `docker-ssh` against the OpenSSH client, on loopback.
//!
//! Starts its own OpenSSH sshd container (the `local-vps-images` sshd image, port on
//! 127.0.0.1 only, labelled with the test run, removed at the end) and measures:
//! median latency of a trivial command over the pool vs `ssh` spawned per command vs
//! OpenSSH with ControlMaster; 8-way concurrent throughput; upload MiB/s of a directory
//! tree vs `tar c | ssh 'tar x'`.
//!
//! Latency is measured twice: as `root`, whose login shell is bash (what the toolkit does
//! on a VPS), and as a user whose login shell is `/bin/sh` (dash), where less of each
//! sample is the remote shell starting, so the clients' own costs show more clearly.
//! Samples of the three clients are interleaved so they all see the same background load.
//!
//! Run: `cargo xtask bench ssh [--quick] [--current-thread]` (`--quick`: fewer samples;
//! `--current-thread`: a single-threaded Tokio runtime instead of the multi-threaded
//! default). That builds the images it needs, then runs this binary of the `xtask`
//! package in release mode (`cargo run --release -p xtask --features bench --bin
//! bench_ssh -- …`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use docker_ssh::{
    Command, Docker, ExcludeList, ExecOptions, Executor, KnownHosts, LocalExecutor, PortMapping,
    PrivateKey, RunOptions, SshConfig, SshPool, SshTarget, generate_ed25519, private_key_openssh,
    public_key_line, upload_dir, wait_for_sshd, write_keypair,
};
use local_vps_images::{Image, ensure_image};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The user whose login shell is `/bin/sh`.
const SH_USER: &str = "bench";

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

/// The OpenSSH client as one user, with a throwaway known_hosts file and strict checking.
struct OpenSsh {
    base: Vec<String>,
    destination: String,
}

impl OpenSsh {
    fn new(user: &str, port: u16, key: &Path, known_hosts: &Path) -> Self {
        let base = [
            "-F".to_owned(),
            "/dev/null".to_owned(),
            "-i".to_owned(),
            key.to_string_lossy().into_owned(),
            "-p".to_owned(),
            port.to_string(),
            "-o".to_owned(),
            "IdentitiesOnly=yes".to_owned(),
            "-o".to_owned(),
            "BatchMode=yes".to_owned(),
            "-o".to_owned(),
            "StrictHostKeyChecking=yes".to_owned(),
            "-o".to_owned(),
            format!("UserKnownHostsFile={}", known_hosts.display()),
            "-o".to_owned(),
            "GlobalKnownHostsFile=/dev/null".to_owned(),
            "-o".to_owned(),
            "LogLevel=ERROR".to_owned(),
        ];
        Self {
            base: base.to_vec(),
            destination: format!("{user}@127.0.0.1"),
        }
    }

    fn command(&self, extra: &[String], remote: &str) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("ssh");
        c.args(&self.base)
            .args(extra)
            .arg(&self.destination)
            .arg(remote);
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }

    async fn run(&self, extra: &[String], remote: &str) -> Result<(), BoxError> {
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

/// An OpenSSH ControlMaster for one client; gone when dropped.
struct Master {
    _process: tokio::process::Child,
    /// Options that make `ssh` use the master.
    use_it: Vec<String>,
}

async fn start_master(ssh: &OpenSsh, socket: &Path) -> Result<Master, BoxError> {
    let socket_s = socket.to_string_lossy().into_owned();
    let opts: Vec<String> = ["-M", "-S", &socket_s, "-N", "-o", "ControlPersist=no"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    let process = ssh.command(&opts, "").kill_on_drop(true).spawn()?;
    for _ in 0..200 {
        if socket.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let use_it = ["-o", "ControlMaster=no", "-S", &socket_s]
        .into_iter()
        .map(str::to_owned)
        .collect();
    Ok(Master {
        _process: process,
        use_it,
    })
}

struct Latency {
    pool: Duration,
    spawn: Duration,
    master: Duration,
}

/// Median latency of `true` over the pool, `ssh` per command and ControlMaster,
/// interleaved.
async fn latency(
    pool: &SshPool,
    ssh: &OpenSsh,
    master: &Master,
    settings: &Settings,
) -> Result<Latency, BoxError> {
    let trivial = Command::argv(["true"]);
    for _ in 0..10 {
        pool.run_checked(&trivial).await?;
        ssh.run(&master.use_it, "true").await?;
    }
    ssh.run(&[], "true").await?;
    let spawn_every = (settings.sequential / settings.spawn).max(1);
    let (mut p, mut m, mut s) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..settings.sequential {
        let t = Instant::now();
        pool.run_checked(&trivial).await?;
        p.push(t.elapsed());
        let t = Instant::now();
        ssh.run(&master.use_it, "true").await?;
        m.push(t.elapsed());
        if i % spawn_every == 0 {
            let t = Instant::now();
            ssh.run(&[], "true").await?;
            s.push(t.elapsed());
        }
    }
    Ok(Latency {
        pool: median(p),
        spawn: median(s),
        master: median(m),
    })
}

/// Commands per second with 8 concurrent workers, pool vs ControlMaster, in alternating
/// rounds.
async fn throughput(
    pool: &SshPool,
    ssh: &Arc<OpenSsh>,
    master: &Master,
    n: usize,
) -> Result<(f64, f64), BoxError> {
    let rounds = 4;
    let per_round = n / rounds;
    let (mut pool_time, mut master_time) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
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
            let use_it = master.use_it.clone();
            tasks.push(tokio::spawn(async move {
                for _ in (w..per_round).step_by(8) {
                    ssh.run(&use_it, "true").await?;
                }
                Ok::<_, BoxError>(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        master_time += t.elapsed();
    }
    let done = (per_round * rounds) as f64;
    Ok((
        done / pool_time.as_secs_f64(),
        done / master_time.as_secs_f64(),
    ))
}

fn main() -> Result<(), BoxError> {
    let current_thread = std::env::args().any(|a| a == "--current-thread");
    let runtime = if current_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    };
    runtime.block_on(bench(if current_thread {
        "current-thread"
    } else {
        "multi-thread"
    }))
}

async fn bench(runtime: &str) -> Result<(), BoxError> {
    let quick = std::env::args().any(|a| a == "--quick");
    let settings = if quick {
        Settings {
            sequential: 60,
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
    let client_key = Arc::new(generate_ed25519()?);
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
    // A user whose login shell is /bin/sh, with the same authorized key.
    let add_user = format!(
        "useradd -m -s /bin/sh {SH_USER} && install -d -m 700 -o {SH_USER} /home/{SH_USER}/.ssh \
         && install -m 600 -o {SH_USER} /root/.ssh/authorized_keys /home/{SH_USER}/.ssh/"
    );
    let out = docker.exec(&ExecOptions::script(&id, add_user)).await?;
    if !out.success() {
        return Err(format!("adding the bench user failed: {}", out.stderr_text()).into());
    }

    let offered = wait_for_sshd("127.0.0.1", port, Duration::from_secs(30)).await?;
    if offered.key_data() != host_key.public_key().key_data() {
        return Err("sshd serves an unexpected host key".into());
    }
    let known_hosts = KnownHosts::new(scratch.join("known_hosts"));
    known_hosts.add("127.0.0.1", port, host_key.public_key())?;

    let make_pool = |user: &str, key: &Arc<PrivateKey>| -> Result<SshPool, BoxError> {
        let target =
            SshTarget::from_known_hosts("127.0.0.1", port, user, key.clone(), &known_hosts)?;
        Ok(SshPool::new(target, SshConfig::default()))
    };
    let root_pool = make_pool("root", &client_key)?;
    let sh_pool = make_pool(SH_USER, &client_key)?;
    root_pool.connect().await?;
    sh_pool.connect().await?;
    let root_ssh = Arc::new(OpenSsh::new("root", port, &key_path, known_hosts.path()));
    let sh_ssh = OpenSsh::new(SH_USER, port, &key_path, known_hosts.path());
    let root_master = start_master(&root_ssh, &scratch.join("cm-root.sock")).await?;
    let sh_master = start_master(&sh_ssh, &scratch.join("cm-sh.sock")).await?;

    let root_lat = latency(&root_pool, &root_ssh, &root_master, &settings).await?;
    let sh_lat = latency(&sh_pool, &sh_ssh, &sh_master, &settings).await?;
    let (pool_tput, master_tput) =
        throughput(&root_pool, &root_ssh, &root_master, settings.concurrent).await?;
    drop(sh_master);
    drop(root_master);

    // --- upload (as root) -----------------------------------------------------------
    let tree = scratch.join("tree");
    make_tree(&tree, settings.upload_mib)?;
    let mib = settings.upload_mib as f64;
    let clean = Command::script("rm -rf /tmp/up-pool /tmp/up-ssh");
    let mut pool_up = Vec::new();
    let mut ssh_up = Vec::new();
    for _ in 0..settings.upload_runs {
        root_pool.run_checked(&clean).await?;
        let t = Instant::now();
        upload_dir(&root_pool, &tree, "/tmp/up-pool", &ExcludeList::none()).await?;
        pool_up.push(t.elapsed());

        root_pool.run_checked(&clean).await?;
        let t = Instant::now();
        tar_pipe_ssh(&root_ssh, &tree).await?;
        ssh_up.push(t.elapsed());
    }
    root_pool.run_checked(&clean).await?;
    let pool_mibs = mib / median(pool_up).as_secs_f64();
    let ssh_mibs = mib / median(ssh_up).as_secs_f64();

    // --- report --------------------------------------------------------------------
    let ssh_version = std::process::Command::new("ssh").arg("-V").output()?;
    println!(
        "docker-ssh bench ({runtime} runtime): sshd (OpenSSH, in container {}) on 127.0.0.1:{port}; client {}",
        &id[..12],
        String::from_utf8_lossy(&ssh_version.stderr).trim()
    );
    println!(
        "{:<44} {:>16} {:>18} {:>18}",
        "", "docker-ssh pool", "ssh per command", "ssh ControlMaster"
    );
    for (label, l) in [
        ("median latency `true`, root (bash)", &root_lat),
        ("median latency `true`, user with /bin/sh", &sh_lat),
    ] {
        println!(
            "{:<44} {:>16} {:>18} {:>18}",
            label,
            ms(l.pool),
            ms(l.spawn),
            ms(l.master)
        );
    }
    println!(
        "{:<44} {:>16} {:>18} {:>18}",
        format!("8-way throughput, root ({} cmds)", settings.concurrent),
        format!("{pool_tput:.0} cmd/s"),
        "-",
        format!("{master_tput:.0} cmd/s")
    );
    println!(
        "{:<44} {:>16} {:>18} {:>18}",
        format!(
            "upload {} MiB tree (median of {})",
            settings.upload_mib, settings.upload_runs
        ),
        format!("{pool_mibs:.0} MiB/s"),
        format!("tar|ssh {ssh_mibs:.0} MiB/s"),
        ""
    );
    let ratio = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64();
    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    for (label, l) in [("root (bash)", &root_lat), ("/bin/sh user", &sh_lat)] {
        let vs_master = ratio(l.pool, l.master);
        let vs_spawn = ratio(l.pool, l.spawn);
        println!(
            "per command, {label}: {vs_master:.2}x faster than ControlMaster (target >=3x: {}), \
             {vs_spawn:.0}x faster than ssh per command (target >=30x: {})",
            verdict(vs_master >= 3.0),
            verdict(vs_spawn >= 30.0)
        );
    }
    let up_ratio = pool_mibs / ssh_mibs;
    println!(
        "upload: {up_ratio:.2}x OpenSSH (target >=1x: {}); 8-way throughput: {:.1}x ControlMaster",
        verdict(up_ratio >= 1.0),
        pool_tput / master_tput
    );
    root_pool.close().await;
    sh_pool.close().await;
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
