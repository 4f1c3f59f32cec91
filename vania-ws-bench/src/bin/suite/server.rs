//! A server under test as a process: started pinned to core 0 with `taskset`, its CPU time
//! (utime + stime of all its threads) and RSS read from `/proc/<pid>`, stopped by its pid.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::conn::Conn;
use crate::dialect::Dialect;

/// How a target is started (see `peers.rs`).
#[derive(Clone, Debug)]
pub(crate) struct Launch {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    /// Working directory: the suite's cache, so no stray `.env` of the caller is read.
    pub(crate) cwd: PathBuf,
    pub(crate) log: PathBuf,
}

/// A running server.
pub(crate) struct Server {
    pub(crate) name: &'static str,
    pub(crate) port: u16,
    pub(crate) dialect: Dialect,
    child: Child,
    ticks_per_sec: f64,
}

impl Server {
    /// Starts `launch` on `core` and waits until it completes a real upgrade (and its
    /// dialect's greeting) on `port`.
    pub(crate) async fn start(
        name: &'static str,
        dialect: Dialect,
        launch: &Launch,
        port: u16,
        core: Option<usize>,
        ticks_per_sec: f64,
    ) -> io::Result<Server> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&launch.log)?;
        let mut command = match core {
            Some(core) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(core.to_string()).arg(&launch.program);
                c
            }
            None => Command::new(&launch.program),
        };
        command
            .args(&launch.args)
            .current_dir(&launch.cwd)
            .env_remove("RUST_LOG")
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .env("APP_HOST", "127.0.0.1")
            .env("APP_PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = command.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{name}: cannot start {:?}: {e}", launch.program),
            )
        })?;
        let mut server = Server {
            name,
            port,
            dialect,
            child,
            ticks_per_sec,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "{} exited at start ({status}); see its log",
                    self.name
                )));
            }
            match probe(self.port, self.dialect).await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(io::Error::other(format!(
                        "{} not ready after 30 s: {e}",
                        self.name
                    )));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds used so far (user + system, every thread).
    pub(crate) fn cpu_secs(&self) -> io::Result<f64> {
        cpu_secs_of(&format!("/proc/{}/stat", self.pid()), self.ticks_per_sec)
    }

    /// Resident set size in bytes.
    pub(crate) fn rss_bytes(&self) -> io::Result<u64> {
        rss_of(self.pid())
    }

    /// Whether the process is still running (a crash fails the round that saw it).
    pub(crate) fn check_alive(&mut self) -> io::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => Err(io::Error::other(format!(
                "{} exited during the run ({status})",
                self.name
            ))),
        }
    }

    /// Stops the server (SIGKILL to its own pid: it holds no state worth a drain).
    pub(crate) fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only reached when `stop` was not called (an error path): never leave it running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A full upgrade plus the dialect's greeting, then a close.
async fn probe(port: u16, dialect: Dialect) -> io::Result<()> {
    let mut conn = Conn::open(port, dialect.probe_path()).await?;
    dialect.greet(&mut conn, None).await
}

/// The resident set size of process `pid`, in bytes.
pub(crate) fn rss_of(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| io::Error::other("no VmRSS"))
}

/// utime + stime from a `/proc/.../stat` file, in seconds.
pub(crate) fn cpu_secs_of(path: &str, ticks_per_sec: f64) -> io::Result<f64> {
    let (user, system) = vania_ws_bench::cpu_ticks(path)?;
    Ok((user + system) as f64 / ticks_per_sec)
}

/// The load generator's own CPU seconds.
pub(crate) fn self_cpu_secs(ticks_per_sec: f64) -> f64 {
    cpu_secs_of("/proc/self/stat", ticks_per_sec).unwrap_or(0.0)
}

/// CPU seconds the whole machine has been busy (every core, every process), from the first
/// line of `/proc/stat`: user, nice, system, irq, softirq and steal.
pub(crate) fn machine_cpu_secs(ticks_per_sec: f64) -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| fields.get(i))
        .sum::<f64>()
        / ticks_per_sec
}

/// A free port on 127.0.0.1 (bound, then released for the server to take).
pub(crate) fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
