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
        // `--save ""` keeps a master from writing, not a replica that receives a full sync:
        // each server writes its own file, in the cluster's directory or the temporary one,
        // never where the tests run.
        let dir = self.cluster_dir.clone().unwrap_or_else(std::env::temp_dir);
        command
            .arg("--dir")
            .arg(&dir)
            .args(["--dbfilename", &format!("vania-ws-test-{}.rdb", self.port)]);
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

/// A Redis Cluster of three masters (and, with [`start_with_replicas`](Self::start_with_replicas),
/// a replica of each) of the test's own, on free ports, each with its cluster bus on its port +
/// 10000, as `redis-cli --cluster create` sets them up.
#[derive(Debug)]
pub struct RedisCluster {
    /// The servers started as masters (`seed(i)`, `stop(i)`, `cli(i)` count these), then the
    /// replicas. A failover swaps the roles, not the places.
    masters: Vec<RedisServer>,
    replicas: Vec<RedisServer>,
    dir: std::path::PathBuf,
}

impl RedisCluster {
    /// Starts three masters, joins them into a cluster that covers every slot, and waits
    /// until each of them reports `cluster_state:ok`.
    pub fn start() -> Self {
        Self::start_with(0)
    }

    /// Like [`start`](Self::start), with one replica for each master, for failovers.
    pub fn start_with_replicas() -> Self {
        Self::start_with(1)
    }

    fn start_with(replicas_per_master: usize) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "vania-ws-cluster-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("a directory for the cluster's files");
        let start = || {
            let mut server = RedisServer {
                port: free_port_with_bus(),
                child: None,
                cluster_dir: Some(dir.clone()),
            };
            server.restart();
            server
        };
        let masters: Vec<RedisServer> = (0..3).map(|_| start()).collect();
        let replicas: Vec<RedisServer> = (0..3 * replicas_per_master).map(|_| start()).collect();
        // `redis-cli --cluster create` makes the first three the masters and the rest their
        // replicas.
        let addresses: Vec<String> = masters
            .iter()
            .chain(&replicas)
            .map(|m| format!("127.0.0.1:{}", m.port))
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", &replicas_per_master.to_string()])
            .arg("--cluster-yes")
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
        let cluster = Self {
            masters,
            replicas,
            dir,
        };
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
        self.cli_on(self.masters[i].port, args)
    }

    fn cli_on(&self, port: u16, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Which of the servers started as masters holds `key`'s hash slot.
    pub fn master_of(&self, key: &str) -> usize {
        let (port, _) = self.owner_of(key);
        self.masters
            .iter()
            .position(|m| m.port == port)
            .expect("one of the servers started as masters")
    }

    /// The servers running now (not stopped).
    fn running(&self) -> impl Iterator<Item = &RedisServer> {
        self.masters
            .iter()
            .chain(&self.replicas)
            .filter(|server| server.child.is_some())
    }

    /// The port and node id of the master that holds `key`'s hash slot now, as the first
    /// server running sees it.
    fn owner_of(&self, key: &str) -> (u16, String) {
        let asked = self.running().next().expect("a server running").port;
        let slot: u16 = self
            .cli_on(asked, &["cluster", "keyslot", key])
            .trim()
            .parse()
            .expect("a slot number");
        let nodes = self.cli_on(asked, &["cluster", "nodes"]);
        for fields in node_lines(&nodes) {
            // id address flags master ping pong epoch state slots…
            if fields.len() < 9 || !fields[2].contains("master") {
                continue;
            }
            let covers = fields[8..].iter().any(|range| {
                let (start, end) = range.split_once('-').unwrap_or((range, range));
                matches!((start.parse::<u16>(), end.parse::<u16>()), (Ok(s), Ok(e)) if s <= slot && slot <= e)
            });
            if covers {
                return (port_of(fields[1]), fields[0].to_owned());
            }
        }
        panic!("no master holds slot {slot}:\n{nodes}");
    }

    /// Promotes the replica of the master that holds `key`'s slot with a manual failover
    /// (`CLUSTER FAILOVER` on the replica, as an operator does for maintenance), and waits
    /// until the replica is that slot's master and the cluster is ok again. Needs
    /// [`start_with_replicas`](Self::start_with_replicas).
    pub fn failover(&self, key: &str) {
        let replica = self.replica_of_owner(key);
        // A manual failover waits for the replica to catch up with its master, and gives up
        // after 5 s if it cannot: first wait for the replica's link to be up (a master just
        // demoted, or a cluster just made, is still syncing), then ask again if need be.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut asked: Option<Instant> = None;
        while self.owner_of(key).0 != replica {
            assert!(
                Instant::now() < deadline,
                "the replica on {replica} did not take over within 30 s: {}",
                self.cli_on(replica, &["info", "replication"])
            );
            let linked = self
                .cli_on(replica, &["info", "replication"])
                .contains("master_link_status:up");
            if linked && asked.is_none_or(|at| at.elapsed() > Duration::from_secs(6)) {
                let reply = self.cli_on(replica, &["cluster", "failover"]);
                // The replica may have taken over already, before the server asked above
                // heard of it (gossip): then it is no longer a replica to ask.
                let promoted = reply.contains("send CLUSTER FAILOVER to a replica");
                assert!(
                    reply.trim() == "OK" || promoted,
                    "CLUSTER FAILOVER on {replica}: {reply}"
                );
                asked = Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.wait_until_ok();
    }

    /// Kills the master that holds `key`'s slot, as a crash would, and waits until its
    /// replica has taken over by itself (after the cluster's node timeout, 2 s here) and the
    /// servers still running say the cluster is ok. Needs
    /// [`start_with_replicas`](Self::start_with_replicas).
    pub fn crash(&mut self, key: &str) {
        let replica = self.replica_of_owner(key);
        let (port, id) = self.owner_of(key);
        // The masters elect only a replica they know as one of the failed master's, with
        // its data in sync: on a cluster just made, wait for both.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(self
            .cli_on(replica, &["info", "replication"])
            .contains("master_link_status:up")
            && self.running().all(|server| {
                let nodes = self.cli_on(server.port, &["cluster", "nodes"]);
                node_lines(&nodes).any(|fields| {
                    fields.len() >= 4
                        && port_of(fields[1]) == replica
                        && fields[2].contains("slave")
                        && fields[3] == id
                })
            }))
        {
            assert!(
                Instant::now() < deadline,
                "the replica on {replica} was not in sync and known to every server within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.masters
            .iter_mut()
            .chain(&mut self.replicas)
            .find(|server| server.port == port)
            .expect("the master is one of the cluster's servers")
            .stop();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.owner_of(key).0 != replica {
            assert!(
                Instant::now() < deadline,
                "the replica on {replica} did not take over within 30 s: {}{}",
                self.cli_on(replica, &["cluster", "nodes"]),
                self.cli_on(replica, &["cluster", "info"])
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.wait_until_ok();
    }

    /// The port of the replica of the master that holds `key`'s slot, once that replica
    /// knows itself as one (the cluster's others may learn of it later, by gossip).
    fn replica_of_owner(&self, key: &str) -> u16 {
        let (old_port, old_id) = self.owner_of(key);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = self.running().find(|server| {
                let nodes = self.cli_on(server.port, &["cluster", "nodes"]);
                node_lines(&nodes).any(|fields| {
                    fields.len() >= 4
                        && fields[2].contains("myself")
                        && fields[2].contains("slave")
                        && fields[3] == old_id
                })
            });
            if let Some(server) = found {
                return server.port;
            }
            assert!(
                Instant::now() < deadline,
                "no replica of the master on {old_port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every server's process id, replicas included (see [`RedisServer::pid`]).
    pub fn pids(&self) -> Vec<u32> {
        self.masters
            .iter()
            .chain(&self.replicas)
            .filter_map(RedisServer::pid)
            .collect()
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
        for server in self.running() {
            loop {
                if self
                    .cli_on(server.port, &["cluster", "info"])
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
        for server in self.masters.iter_mut().chain(&mut self.replicas) {
            server.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The lines of `CLUSTER NODES`, split into fields.
fn node_lines(nodes: &str) -> impl Iterator<Item = Vec<&str>> {
    nodes.lines().map(|line| line.split_whitespace().collect())
}

/// The port of a `CLUSTER NODES` address (`127.0.0.1:7000@17000`).
fn port_of(address: &str) -> u16 {
    address
        .split(['@', ':'])
        .nth(1)
        .and_then(|port| port.parse().ok())
        .expect("a port in the address")
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
