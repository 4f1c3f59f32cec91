//! A `redis-server` of the test's own, on a free port, that the test can stop and start again
//! (the machine's shared Redis is never touched), and a three-master Redis Cluster of the
//! same kind.
//!
//! A missing `redis-server` binary fails the test with a message that says how to install it:
//! the Redis tests never skip.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped) `redis-server` on one port.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// Where a cluster node keeps its cluster configuration; `None` for a plain server.
    cluster_dir: Option<std::path::PathBuf>,
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self {
            port,
            child: None,
            cluster_dir: None,
        };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server process's id (`None` while stopped): a benchmark pins it to a core and
    /// reads its CPU time.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A URL where no Redis listens.
    pub fn unreachable_url() -> String {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        format!("redis://127.0.0.1:{port}")
    }

    /// Kills the server (as a crash would: no clean shutdown) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, and waits until it answers a PING.
    pub fn restart(&mut self) {
        self.stop();
        let mut command = Command::new("redis-server");
        command.args(["--port", &self.port.to_string()]).args([
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        if let Some(dir) = &self.cluster_dir {
            command
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
                .arg("--cluster-config-file")
                .arg(dir.join(format!("nodes-{}.conf", self.port)));
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot run `redis-server` ({err}): the Redis tests need it on PATH \
                     (Debian: `apt-get install redis-server`; .ci/run installs it)"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers_ping() {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn answers_ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis Cluster of three masters (no replicas) of the test's own, on free ports, each with
/// its cluster bus on its port + 10000, as `redis-cli --cluster create` sets them up.
#[derive(Debug)]
pub struct RedisCluster {
    masters: Vec<RedisServer>,
    dir: std::path::PathBuf,
}

impl RedisCluster {
    /// Starts three masters, joins them into a cluster that covers every slot, and waits
    /// until each of them reports `cluster_state:ok`.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "vania-ws-cluster-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("a directory for the cluster's files");
        let mut masters = Vec::new();
        for _ in 0..3 {
            let mut server = RedisServer {
                port: free_port_with_bus(),
                child: None,
                cluster_dir: Some(dir.clone()),
            };
            server.restart();
            masters.push(server);
        }
        let addresses: Vec<String> = masters
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.port))
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap_or_else(|err| {
                panic!("cannot run `redis-cli` ({err}): it comes with redis-server (Debian: redis-tools)")
            });
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = Self { masters, dir };
        cluster.wait_until_ok();
        cluster
    }

    /// The URL of master `i` (0, 1 or 2): any one is enough for a cluster client to find the
    /// others.
    pub fn seed(&self, i: usize) -> String {
        self.masters[i].url()
    }

    /// The URLs of every master, separated by commas (as `REDIS_URL` takes them).
    pub fn urls(&self) -> String {
        self.masters
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Runs `redis-cli` against master `i`, and returns what it printed.
    pub fn cli(&self, i: usize, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-p", &self.masters[i].port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Which master holds `key`'s hash slot.
    pub fn master_of(&self, key: &str) -> usize {
        let slot: u16 = self
            .cli(0, &["cluster", "keyslot", key])
            .trim()
            .parse()
            .expect("a slot number");
        let nodes = self.cli(0, &["cluster", "nodes"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // id address flags master ping pong epoch state slots…
            if fields.len() < 9 || !fields[2].contains("master") {
                continue;
            }
            let covers = fields[8..].iter().any(|range| {
                let (start, end) = range.split_once('-').unwrap_or((range, range));
                matches!((start.parse::<u16>(), end.parse::<u16>()), (Ok(s), Ok(e)) if s <= slot && slot <= e)
            });
            if covers {
                let port: u16 = fields[1]
                    .split(['@', ':'])
                    .nth(1)
                    .and_then(|port| port.parse().ok())
                    .expect("a port in the address");
                return self
                    .masters
                    .iter()
                    .position(|m| m.port == port)
                    .expect("one of the cluster's masters");
            }
        }
        panic!("no master holds slot {slot}:\n{nodes}");
    }

    /// The masters' process ids (see [`RedisServer::pid`]).
    pub fn pids(&self) -> Vec<u32> {
        self.masters.iter().filter_map(RedisServer::pid).collect()
    }

    /// Kills master `i`, as a crash would.
    pub fn stop(&mut self, i: usize) {
        self.masters[i].stop();
    }

    /// Starts master `i` again (it rejoins with its saved cluster configuration) and waits
    /// until the cluster is whole again.
    pub fn restart(&mut self, i: usize) {
        self.masters[i].restart();
        self.wait_until_ok();
    }

    fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for i in 0..self.masters.len() {
            loop {
                if self
                    .cli(i, &["cluster", "info"])
                    .contains("cluster_state:ok")
                {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the Redis Cluster did not become ok within 30 s"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for master in &mut self.masters {
            master.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A port that is free, with its cluster bus port (+ 10000) free too.
fn free_port_with_bus() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("an address").port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}
