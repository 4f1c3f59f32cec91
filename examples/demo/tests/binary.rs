//! The `example-demo` binary as a user runs it: settings from the environment and `.env`,
//! and a graceful stop on SIGTERM.

use futures_util::{SinkExt, StreamExt};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const TIMEOUT: Duration = Duration::from_secs(20);

struct Demo {
    child: Child,
    addr: String,
    log: Vec<String>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Demo {
    /// Reads the log until a line containing `needle`, and returns it.
    fn line_containing(&mut self, needle: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(TIMEOUT)
                .unwrap_or_else(|_| panic!("no line with {needle:?}; log so far: {:#?}", self.log));
            self.log.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh, empty working directory (so no stray `.env` is read).
fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vania-ws-demo-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts the binary and reads its log until the "listening" line.
fn start(dir: &Path, env: &[(&str, &str)]) -> Demo {
    let mut command = Command::new(env!("CARGO_BIN_EXE_example-demo"));
    command
        .current_dir(dir)
        .env_remove("APP_HOST")
        .env_remove("APP_PORT")
        .env_remove("APP_WEBSOCKET")
        .env_remove("ADMIN_TOKEN")
        .env_remove("REDIS_URL")
        .env_remove("REDIS_PREFIX")
        .env_remove("REDIS_REQUIRED")
        .env_remove("REDIS_CLUSTER")
        .env_remove("REDIS_PRESENCE_TTL_MS")
        // Colour is off because stdout is a pipe, not because of `NO_COLOR`.
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("the demo binary starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut demo = Demo {
        child,
        addr: String::new(),
        log: Vec::new(),
        lines: rx,
    };
    std::thread::spawn(move || {
        // Keep draining after the test stops listening, so the demo never writes to a
        // closed pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = demo.line_containing("listening on ");
    let rest = line.split("listening on ").nth(1).unwrap();
    demo.addr = rest
        .trim_start_matches("ws://")
        .split([',', ' '])
        .next()
        .unwrap()
        .to_owned();
    demo
}

/// Connects to `url` and checks that the first frame is `connected`.
async fn connect_and_greet(url: String) {
    let (mut ws, _) = connect_async(url).await.expect("the handshake is accepted");
    let first = ws.next().await.unwrap().unwrap();
    assert!(
        first.to_text().unwrap().contains("\"connected\""),
        "{first:?}"
    );
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the demo did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn serves_the_routes_and_drains_on_sigterm() {
    let dir = workdir("sigterm");
    let mut demo = start(&dir, &[("APP_PORT", "0")]);
    assert!(demo.addr.starts_with("127.0.0.1:"), "{}", demo.addr);
    let (mut ws, _) = connect_async(format!("ws://{}/ws", demo.addr))
        .await
        .unwrap();
    let connected = ws.next().await.unwrap().unwrap();
    assert!(connected.to_text().unwrap().contains("\"connected\""));
    ws.send(Message::text(
        r#"{"event":"message","payload":"hi","id":1}"#,
    ))
    .await
    .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().to_text().unwrap(),
        r#"{"event":"message","payload":"hi"}"#
    );
    assert_eq!(
        ws.next().await.unwrap().unwrap().to_text().unwrap(),
        r#"{"event":"ack","id":1,"payload":"hi"}"#
    );

    sigterm(&demo.child);
    let close = tokio::time::timeout(TIMEOUT, ws.next()).await.unwrap();
    match close {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected close 1001, got {other:?}"),
    }
    // Reading on answers the close; then the stream ends.
    while let Some(Ok(_)) = ws.next().await {}
    let status = wait_exit(&mut demo.child);
    assert!(status.success(), "exit status {status}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn app_websocket_false_serves_nothing_and_says_why() {
    let dir = workdir("disabled");
    let demo = start(&dir, &[("APP_PORT", "0"), ("APP_WEBSOCKET", "false")]);
    assert!(
        demo.log
            .iter()
            .any(|line| line.contains("APP_WEBSOCKET is false")),
        "{:#?}",
        demo.log
    );
    match connect_async(format!("ws://{}/ws", demo.addr)).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 404),
        other => panic!("expected 404, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn reads_dot_env_and_the_environment_overrides_it() {
    let dir = workdir("dotenv");
    std::fs::write(dir.join(".env"), "APP_PORT=0\nAPP_WEBSOCKET=false\n").unwrap();
    // From .env alone: port 0 and websockets off.
    let demo = start(&dir, &[]);
    assert!(
        demo.log
            .iter()
            .any(|line| line.contains("APP_WEBSOCKET is false"))
    );
    drop(demo);
    // The environment wins over .env.
    let demo = start(&dir, &[("APP_WEBSOCKET", "true")]);
    connect_and_greet(format!("ws://{}/clients", demo.addr)).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn invalid_settings_fail_with_a_clear_message() {
    let dir = workdir("invalid");
    let output = Command::new(env!("CARGO_BIN_EXE_example-demo"))
        .current_dir(&dir)
        .env("APP_PORT", "eighty")
        // Colour is off because stdout is a pipe, not because of `NO_COLOR`.
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(all.contains("`APP_PORT` must be a port number"), "{all}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_a_thousand_clients_in_fifty_rooms() {
    use serde_json::json;
    use vania_ws::testing::TestClient;

    const CLIENTS: usize = 1_000;
    const ROOMS: usize = 50;
    const PER_SENDER: usize = 5;
    let dir = workdir("drain");
    let mut demo = start(
        &dir,
        &[("APP_PORT", "0"), ("WS_SHUTDOWN_TIMEOUT_MS", "15000")],
    );
    let url = format!("ws://{}/ws", demo.addr);
    let mut clients = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let mut client = TestClient::connect(&url).await;
        client.join(&format!("room-{}", i % ROOMS)).await;
        clients.push(client);
    }
    // The first member of each room sends to it; every ack means the frames are queued for
    // all twenty members before the signal.
    for (i, sender) in clients.iter_mut().enumerate().take(ROOMS) {
        for n in 0..PER_SENDER {
            let room = format!("room-{i}");
            sender
                .ack("room-message", json!({"room": room, "message": n}))
                .await;
        }
    }
    let started = std::time::Instant::now();
    sigterm(&demo.child);
    let readers: Vec<_> = clients
        .into_iter()
        .map(|client| tokio::spawn(client.closed()))
        .collect();
    for (i, reader) in readers.into_iter().enumerate() {
        let closed = reader.await.unwrap();
        assert_eq!(closed.code, Some(1001), "client {i}");
        let messages: Vec<_> = closed
            .frames
            .iter()
            .filter(|frame| frame["event"] == "room-message")
            .map(|frame| frame["payload"].clone())
            .collect();
        let expected: Vec<_> = (0..PER_SENDER).map(|n| json!(n)).collect();
        assert_eq!(
            messages, expected,
            "client {i} got everything queued before the signal"
        );
    }
    let status = wait_exit(&mut demo.child);
    assert!(status.success(), "exit status {status}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "drained within the deadline"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn admin_token_from_the_environment_guards_admins() {
    let dir = workdir("admin-token");
    let demo = start(&dir, &[("APP_PORT", "0"), ("ADMIN_TOKEN", "tok")]);
    match connect_async(format!("ws://{}/admins", demo.addr)).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
    connect_and_greet(format!("ws://{}/admins?token=tok", demo.addr)).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat_under_churn_and_malformed_floods() {
    use serde_json::json;
    use vania_ws::testing::TestClient;

    let dir = workdir("memory");
    let demo = start(&dir, &[("APP_PORT", "0"), ("WS_RATE_LIMIT_PER_SEC", "0")]);
    let url = format!("ws://{}/ws", demo.addr);
    let round = |url: String| async move {
        // 1,000 connect / join / disconnect cycles, 4 at a time.
        let mut tasks = Vec::new();
        for t in 0..4 {
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..250 {
                    let mut client = TestClient::connect(&url).await;
                    client.join(&format!("room-{t}-{i}")).await;
                    client.close().await;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        // 1,000 malformed frames on one connection.
        let mut client = TestClient::connect(&url).await;
        for i in 0..1_000 {
            match i % 4 {
                0 => client.send_text("{{{").await,
                1 => client.send_text("[1,2,3]").await,
                2 => {
                    client
                        .send(json!({"event": "direct", "payload": [i]}))
                        .await
                }
                _ => client.send(json!({"event": "e".repeat(5_000)})).await,
            }
        }
        for _ in 0..1_000 {
            assert_eq!(client.recv().await["event"], "error");
        }
        client.close().await;
    };
    round(url.clone()).await;
    let warm = rss_kib(demo.child.id());
    for _ in 0..3 {
        round(url.clone()).await;
    }
    let after = rss_kib(demo.child.id());
    let growth = after.saturating_sub(warm);
    eprintln!("server RSS: {warm} KiB after one round, {after} KiB after four");
    assert!(
        growth < 8 * 1024,
        "server memory grew by {growth} KiB over 3,000 cycles and 3,000 bad frames"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_large_messages_leaves_no_large_buffers_behind() {
    use serde_json::json;
    use vania_ws::testing::TestClient;

    const CLIENTS: usize = 300;
    let dir = workdir("large-burst");
    let demo = start(
        &dir,
        &[
            ("APP_PORT", "0"),
            ("WS_MAX_MESSAGE_BYTES", "2097152"),
            ("WS_SEND_QUEUE_BYTES", "4194304"),
        ],
    );
    let url = format!("ws://{}/ws", demo.addr);
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        clients.push(TestClient::connect(&url).await);
    }
    let before = rss_kib(demo.child.id());
    let big = "x".repeat(1024 * 1024);
    let mut sender = TestClient::connect(&url).await;
    sender.ack("user-typing", json!(big)).await;
    for client in &mut clients {
        let typing = client.recv_event("user-typing").await;
        assert_eq!(
            typing["payload"].as_str().map(str::len),
            Some(big.len()),
            "intact"
        );
    }
    let after = rss_kib(demo.child.id());
    eprintln!("server RSS: {before} KiB before, {after} KiB after a 1 MiB broadcast to {CLIENTS}");
    // Without fragmentation every connection would keep a 1 MiB write buffer (300 MiB here).
    assert!(
        after.saturating_sub(before) < 64 * 1024,
        "{} KiB kept after a 1 MiB broadcast to {CLIENTS} clients",
        after.saturating_sub(before)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_start_up_log_says_how_to_try_it_without_colour_codes_in_a_pipe() {
    let dir = workdir("try-it");
    let mut demo = start(&dir, &[("APP_PORT", "0")]);
    let addr = demo.addr.clone();
    let client = demo.line_containing("try it:");
    assert!(
        client.contains(&format!("`websocat ws://{addr}/ws`")),
        "{client}"
    );
    assert!(
        client.contains(r#"{"event":"message","payload":"hi","id":1}"#),
        "{client}"
    );
    let console = demo.line_containing("new WebSocket(");
    assert!(console.contains(&format!("ws://{addr}/ws")), "{console}");
    // The snippet works as printed: the demo answers it.
    connect_and_greet(format!("ws://{addr}/ws")).await;
    for line in &demo.log {
        assert!(
            !line.contains('\u{1b}'),
            "a colour code in a piped log: {line:?}"
        );
    }
}

/// Two demo processes that share one Redis, with clients spread over both, behave as one
/// server for every row of PROTOCOL.md section 6.
#[tokio::test]
async fn two_demo_processes_sharing_redis_url_behave_as_one_server() {
    use serde_json::{Value, json};
    use vania_ws::testing::TestClient;
    let redis = vania_ws_test_redis::RedisServer::start();
    let env = [
        ("APP_PORT", "0".to_owned()),
        ("REDIS_URL", redis.url()),
        ("REDIS_REQUIRED", "true".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (one_dir, two_dir) = (workdir("redis-one"), workdir("redis-two"));
    let one = start(&one_dir, &env);
    let two = start(&two_dir, &env);
    for demo in [&one, &two] {
        assert!(
            demo.log
                .iter()
                .any(|line| line.contains("Redis adapter connected")),
            "the demo logs its Redis connection: {:#?}",
            demo.log
        );
    }
    let url = |demo: &Demo, path: &str| format!("ws://{}{path}", demo.addr);

    let mut a = TestClient::connect(&url(&one, "/ws")).await;
    let mut b = TestClient::connect(&url(&two, "/ws")).await;
    let mut c = TestClient::connect(&url(&two, "/clients")).await;

    // emit: the sender only.
    assert_eq!(a.ack("message", json!("echo")).await, json!("echo"));
    assert_eq!(a.recv_event("message").await, json!("echo"));

    // to: a client of the other process.
    let to = b.id().to_owned();
    assert_eq!(
        a.ack("direct", json!({ "to": to, "message": 1 })).await,
        Value::Null
    );
    assert_eq!(
        b.recv_event("direct").await,
        json!({ "from": a.id(), "message": 1 })
    );

    // to_room: members on both processes, the sender included.
    a.join("r").await;
    b.join("r").await;
    let message = json!({ "room": "r", "message": "to r" });
    assert_eq!(b.ack("room-message", message).await, Value::Null);
    assert_eq!(a.recv_event("room-message").await, json!("to r"));
    assert_eq!(b.recv_event("room-message").await, json!("to r"));

    // broadcast: every client of both processes and every route, not the sender.
    assert_eq!(a.ack("user-typing", json!("…")).await, Value::Null);
    let typing = json!({ "session_id": a.id(), "payload": "…" });
    assert_eq!(b.recv_event("user-typing").await, typing);
    assert_eq!(c.recv_event("user-typing").await, typing);

    // Nothing else reached anyone: each client's next frame is a marker sent after it all.
    for client in [&mut b, &mut c] {
        let to = client.id().to_owned();
        assert_eq!(
            a.ack("direct", json!({ "to": to, "message": "end" })).await,
            Value::Null
        );
        let next = client.recv().await;
        assert_eq!(next["payload"]["message"], "end", "{next}");
    }
    a.assert_nothing_received().await;
    drop(two);
}

/// A demo process killed outright (no clean stop) leaves the cluster-wide presence within the
/// presence expiry, and the other process keeps serving.
#[tokio::test]
async fn a_killed_processs_members_leave_the_presence_within_the_expiry() {
    use serde_json::json;
    use vania_ws::testing::TestClient;
    let redis = vania_ws_test_redis::RedisServer::start();
    let ttl_ms = 1500;
    let env = [
        ("APP_PORT", "0".to_owned()),
        ("REDIS_URL", redis.url()),
        ("REDIS_REQUIRED", "true".to_owned()),
        ("REDIS_PRESENCE_TTL_MS", ttl_ms.to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (one_dir, two_dir) = (workdir("presence-one"), workdir("presence-two"));
    let one = start(&one_dir, &env);
    let mut two = start(&two_dir, &env);
    let url = |demo: &Demo| format!("ws://{}/ws", demo.addr);
    let mut a = TestClient::connect(&url(&one)).await;
    let mut b = TestClient::connect(&url(&two)).await;
    a.join("r").await;
    b.join("r").await;
    let both = {
        let mut ids = vec![a.id().to_owned(), b.id().to_owned()];
        ids.sort();
        json!(ids)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while a.ack("members", json!("r")).await != both {
        assert!(
            std::time::Instant::now() < deadline,
            "b never showed up in the presence"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let killed = std::time::Instant::now();
    two.child.kill().unwrap();
    two.child.wait().unwrap();
    while a.ack("members", json!("r")).await != json!([a.id()]) {
        assert!(
            killed.elapsed() < Duration::from_millis(ttl_ms + 1000),
            "the killed process's member is still present after {:?}",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "a killed node's member left the presence {:?} after the kill (expiry {ttl_ms} ms)",
        killed.elapsed()
    );
    // The surviving process still serves.
    assert_eq!(
        a.ack("message", json!("still here")).await,
        json!("still here")
    );
}
