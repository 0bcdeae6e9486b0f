//! The `mngr-vps` command line. Not written yet: it comes after `vps-docker-provider`.

fn main() {
    eprintln!("mngr-vps: the command line is not built yet; see the README for what works today");
    std::process::exit(2);
}
