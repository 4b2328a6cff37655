//! A throwaway PostgreSQL cluster for tests: `initdb` into a temporary folder, `pg_ctl start`
//! on a free port of 127.0.0.1 (trust authentication, no fsync), stopped and removed when
//! dropped. The server binaries are found in `QNAS_PG_BIN`, Debian's `/usr/lib/postgresql/*/bin`
//! or `PATH`; when there are none the test is skipped with a note, unless
//! `QNAS_REQUIRE_POSTGRES` is set (CI), which makes it fail. PostgreSQL refuses to run as root:
//! as root the cluster runs as the unprivileged user `nobody` (through `runuser`).
#![allow(dead_code, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running cluster.
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    run_as: Option<String>,
    /// `postgres://qnas@127.0.0.1:PORT/postgres`.
    pub url: String,
}

/// The folder of `initdb`, `pg_ctl` and `postgres`.
fn server_bin() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("QNAS_PG_BIN") {
        return Some(PathBuf::from(d));
    }
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    debian.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(b) = debian.pop() {
        return Some(b);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Cluster {
    /// Starts a cluster for test `name`, or `None` (with a note) when PostgreSQL is not
    /// installed and not required.
    pub fn start(name: &str) -> Option<Cluster> {
        let required = std::env::var_os("QNAS_REQUIRE_POSTGRES").is_some();
        let Some(bin) = server_bin() else {
            assert!(
                !required,
                "QNAS_REQUIRE_POSTGRES is set but no PostgreSQL server (initdb, pg_ctl) was found"
            );
            eprintln!("note: {name}: PostgreSQL (initdb, pg_ctl) not found; skipped");
            return None;
        };
        let dir = std::env::temp_dir().join(format!("qnas-pg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let run_as = is_root().then(|| "nobody".to_string());
        if let Some(user) = &run_as {
            let ok = Command::new("chown")
                .args(["-R", user])
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown {} to {user}", dir.display());
        }
        let mut cluster = Cluster {
            bin,
            dir,
            run_as,
            url: String::new(),
        };
        let data = cluster.dir.join("data");
        cluster.run(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                "qnas",
                "--auth=trust",
                "--no-sync",
                "--no-locale",
                "-E",
                "UTF8",
            ],
        );
        let port = free_port();
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50",
            cluster.dir.display()
        );
        cluster.run(
            "pg_ctl",
            &[
                "-D",
                &data.display().to_string(),
                "-o",
                &opts,
                "-l",
                &cluster.dir.join("log").display().to_string(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        cluster.url = format!("postgres://qnas@127.0.0.1:{port}/postgres");
        Some(cluster)
    }

    /// Runs server program `prog` (as the unprivileged user when root); fails the test with
    /// its output unless it succeeds.
    fn run(&self, prog: &str, args: &[&str]) {
        let exe = self.bin.join(prog);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", exe.display()));
        assert!(
            out.status.success(),
            "{} {}: {}{}\n{}",
            exe.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
        );
    }

    /// The cluster's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.url.is_empty() {
            let data = self.dir.join("data").display().to_string();
            let exe = self.bin.join("pg_ctl");
            let mut cmd = match &self.run_as {
                Some(user) => {
                    let mut c = Command::new("runuser");
                    c.args(["-u", user, "--"]).arg(&exe);
                    c
                }
                None => Command::new(&exe),
            };
            let _ = cmd
                .args(["-D", &data, "-m", "immediate", "-w", "stop"])
                .current_dir(&self.dir)
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
