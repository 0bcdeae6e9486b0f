//! Document variants shared by the snapshot tests and the tests against the real
//! cloud-init.

#![allow(dead_code)]

use cloud_init::{
    AuthorizedKey, CloudConfig, DockerSetup, FileMode, FileOwner, FileSpec, HostKey, PackageName,
    RemotePath, RunCommand, SshdLimits,
};

/// A throwaway Ed25519 key pair made for these tests only (never used anywhere else).
pub const TEST_HOST_PRIVATE_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACBaZB6mSNLsdF74zCX3OeGSh+aFqOoBzjeIFYRvV0j9+AAAAIgcdLxQHHS8
UAAAAAtzc2gtZWQyNTUxOQAAACBaZB6mSNLsdF74zCX3OeGSh+aFqOoBzjeIFYRvV0j9+A
AAAECz9Ef8kRvB4hq0y4kiEZZ38nD0s5fkv9nBifF3jGk/dVpkHqZI0ux0XvjMJfc54ZKH
5oWo6gHON4gVhG9XSP34AAAAAAECAwQF
-----END OPENSSH PRIVATE KEY-----
";
/// Its public half.
pub const TEST_HOST_PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFpkHqZI0ux0XvjMJfc54ZKH5oWo6gHON4gVhG9XSP34";

pub fn host_key() -> HostKey {
    HostKey::ed25519(TEST_HOST_PRIVATE_KEY, TEST_HOST_PUBLIC_KEY).expect("valid test key")
}

fn path(p: &str) -> RemotePath {
    RemotePath::parse(p).expect("valid path")
}

/// Every shape of document the crate renders, by name.
pub fn variants() -> Vec<(&'static str, CloudConfig)> {
    let default = CloudConfig::new(host_key());

    let mut full = CloudConfig::new(host_key());
    full.authorized_keys = vec![
        AuthorizedKey::parse(TEST_HOST_PUBLIC_KEY).expect("valid"),
        AuthorizedKey::parse("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 user@laptop")
            .expect("valid"),
    ];
    full.package_update = true;
    full.configure_locale = true;
    full.packages = vec![
        PackageName::parse("jq").expect("valid"),
        PackageName::parse("rsync=3.2.7-1").expect("valid"),
    ];
    full.sshd_limits = Some(SshdLimits::new(64, 50, 30, 120).expect("valid"));
    full.files = vec![
        FileSpec::new(path("/etc/motd"), "Managed by mngr.\n"),
        FileSpec {
            path: path("/opt/mngr/env"),
            content: "NAME=\"agent: one\"\n# a comment, then: yes/no\n\tTABBED=1\n".to_owned(),
            mode: FileMode::PRIVATE,
            owner: FileOwner::parse("root:root").expect("valid"),
            defer: true,
        },
        FileSpec {
            path: path("/opt/mngr/no-newline"),
            content: " starts with a space\nand has no final newline".to_owned(),
            mode: FileMode::new(0o640).expect("valid"),
            owner: FileOwner::root(),
            defer: false,
        },
    ];
    full.commands = vec![
        RunCommand::Shell("echo 'hello from runcmd' > /var/tmp/mngr-hello\n".to_owned()),
        RunCommand::Argv(vec!["touch".to_owned(), "/var/tmp/with space".to_owned()]),
        RunCommand::Shell("for i in 1 2; do\n  echo \"$i\"\ndone >/dev/null".to_owned()),
    ];
    full.ready_marker = path("/var/lib/mngr/ready");

    let mut minimal = CloudConfig::new(host_key());
    minimal.docker = DockerSetup::Unmanaged;
    minimal.sshd_limits = None;
    minimal.block_metadata = false;

    vec![("default", default), ("full", full), ("minimal", minimal)]
}
