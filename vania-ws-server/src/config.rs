//! Server settings: from code (builder methods) or from the environment and a `.env` file,
//! in Vania's names. The environment overrides `.env`.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// Why the settings could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key holds a value of the wrong kind.
    #[error("`{key}` must be {expected}, got `{value}`")]
    Invalid {
        /// The key, e.g. `APP_PORT`.
        key: &'static str,
        /// What it must hold.
        expected: &'static str,
        /// What it held.
        value: String,
    },
    /// Two settings that cannot work together, or a value that cannot work at all.
    #[error("`{key}` {reason}")]
    Inconsistent {
        /// The key at fault, e.g. `WS_MAX_MESSAGE_BYTES`.
        key: &'static str,
        /// Why, naming the other setting where there is one.
        reason: String,
    },
    /// The `.env` file exists but cannot be read.
    #[error("cannot read `.env`: {0}")]
    DotEnv(#[from] dotenvy::Error),
    /// The Redis settings (`REDIS_URL`, `REDIS_PREFIX`, `REDIS_REQUIRED`) are invalid.
    #[cfg(feature = "redis")]
    #[error("invalid Redis settings: {0}")]
    Redis(#[from] vania_ws_redis::ConfigError),
}

/// Every variable of `.env` in the working directory (if there is one) and of the process
/// environment, which wins: for an app's own settings (`ADMIN_TOKEN`, say) read the same way
/// as the server's.
pub fn load_env() -> Result<HashMap<String, String>, ConfigError> {
    layered_vars(Path::new(".env"), std::env::vars())
}

fn layered_vars(
    path: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<HashMap<String, String>, ConfigError> {
    let mut vars: HashMap<String, String> = HashMap::new();
    match dotenvy::from_path_iter(path) {
        Ok(iter) => {
            for pair in iter {
                let (key, value) = pair?;
                vars.insert(key, value);
            }
        }
        Err(err) if err.not_found() => {}
        Err(err) => return Err(err.into()),
    }
    vars.extend(env);
    Ok(vars)
}

/// Everything the server can be told. Start from [`ServerConfig::default`] or
/// [`ServerConfig::from_env`] and adjust with the builder methods.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// `APP_HOST`: the address to listen on. Default `127.0.0.1`.
    pub host: String,
    /// `APP_PORT`: the port to listen on; `0` picks a free one. Default `8000`.
    pub port: u16,
    /// `APP_WEBSOCKET`: whether WebSocket routes are served at all. Default `true`; when
    /// `false`, every path answers 404 and a log line says why.
    pub websocket: bool,
    /// `WS_MAX_MESSAGE_BYTES`: the largest incoming message. Default 65,536.
    pub max_message_bytes: usize,
    /// `WS_HANDSHAKE_TIMEOUT_MS`: how long a TCP connection may take to finish the upgrade.
    /// Default 10 s.
    pub handshake_timeout: Duration,
    /// `WS_SEND_QUEUE_BYTES`: the per-client outgoing queue bound. Default 1 MiB.
    pub send_queue_bytes: usize,
    /// `WS_ACK_TIMEOUT_MS`: how long `Client::emit_with_ack` waits for the client's answer.
    /// Default 10 s.
    pub ack_timeout: Duration,
    /// `WS_MAX_ROOMS_PER_CLIENT`: rooms one client may be in. Default 100.
    pub max_rooms_per_client: usize,
    /// `WS_SHUTDOWN_TIMEOUT_MS`: the drain deadline on shutdown. Default 10 s.
    pub shutdown_timeout: Duration,
    /// `WS_MAX_CONNECTIONS`: open connections at most; more answer 503. Default 10,000.
    pub max_connections: usize,
    /// `WS_ALLOWED_ORIGINS`: browser origins allowed to connect (`scheme://host[:port]`,
    /// compared exactly; `*` for any). `None` (unset): same-host origins only. A handshake
    /// without `Origin` (not a browser) is always accepted.
    pub allowed_origins: Option<Vec<String>>,
    /// `WS_PING_INTERVAL_MS`: how often the server pings. Default 25 s.
    pub ping_interval: Duration,
    /// `WS_PONG_TIMEOUT_MS`: how long a ping may go unanswered before the client is dropped.
    /// Default 20 s.
    pub pong_timeout: Duration,
    /// `WS_RATE_LIMIT_PER_SEC`: events per second a connection may send, on average; `0`
    /// turns the limit off. Default 100.
    pub rate_limit_per_sec: u32,
    /// `WS_RATE_LIMIT_BURST`: events a connection may send at once. Default 200.
    pub rate_limit_burst: u32,
    /// `WS_CLOSE_TIMEOUT_MS`: how long a closing connection waits for the peer's close frame
    /// (or for a stalled write) before the TCP connection is dropped. Default 5 s.
    pub close_timeout: Duration,
    /// `WS_LISTEN_BACKLOG`: the listening socket's queue of connections not yet accepted.
    /// Default 4,096 (the kernel may cap it at `net.core.somaxconn`); a burst of connects
    /// past it waits for the client's SYN retry, a second or more.
    pub listen_backlog: u32,
    /// `WS_MAX_PENDING_HANDSHAKES`: connections still in their HTTP upgrade at once. Past it,
    /// the oldest pending one is dropped, so that silent sockets cannot keep real clients
    /// out. Default 1,024.
    pub max_pending_handshakes: usize,
    /// `WS_METRICS_ADDR`: where the standalone server serves `GET /metrics` (Prometheus text
    /// format), on a listener of its own, e.g. `127.0.0.1:9100`. `None` (unset): no metrics
    /// listener. An axum app serves [`Engine::axum_metrics`](crate::Engine) instead.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// `REDIS_URL` (with `REDIS_PREFIX` and `REDIS_REQUIRED`): scale out over this Redis,
    /// unless the builder was given an adapter. `None` (unset): this process only.
    #[cfg(feature = "redis")]
    pub redis: Option<vania_ws_redis::RedisConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 8000,
            websocket: true,
            max_message_bytes: 64 * 1024,
            handshake_timeout: Duration::from_secs(10),
            send_queue_bytes: 1 << 20,
            ack_timeout: Duration::from_secs(10),
            max_rooms_per_client: 100,
            shutdown_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            allowed_origins: None,
            ping_interval: Duration::from_secs(25),
            pong_timeout: Duration::from_secs(20),
            rate_limit_per_sec: 100,
            rate_limit_burst: 200,
            close_timeout: Duration::from_secs(5),
            listen_backlog: 4096,
            max_pending_handshakes: 1024,
            metrics_addr: None,
            #[cfg(feature = "redis")]
            redis: None,
        }
    }
}

impl ServerConfig {
    /// Reads the settings from `.env` in the working directory (if there is one) and from the
    /// process environment, which wins over `.env`. Unset keys keep their defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_file(Path::new(".env"))
    }

    /// Like [`from_env`](Self::from_env), with the `.env` file at `path`.
    pub fn from_env_file(path: &Path) -> Result<Self, ConfigError> {
        Self::from_layers(path, std::env::vars())
    }

    fn from_layers(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        Self::from_vars(&layered_vars(path, env)?)
    }

    /// Reads the settings from a map of keys to values.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        let get = |key: &str| vars.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        if let Some(host) = get("APP_HOST") {
            config.host = host.to_owned();
        }
        if let Some(port) = get("APP_PORT") {
            config.port = parse("APP_PORT", port, "a port number (0 to 65535)")?;
        }
        if let Some(flag) = get("APP_WEBSOCKET") {
            config.websocket = match flag.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => {
                    return Err(ConfigError::Invalid {
                        key: "APP_WEBSOCKET",
                        expected: "`true` or `false`",
                        value: flag.to_owned(),
                    });
                }
            };
        }
        if let Some(v) = get("WS_MAX_MESSAGE_BYTES") {
            config.max_message_bytes = parse("WS_MAX_MESSAGE_BYTES", v, "a number of bytes")?;
        }
        if let Some(v) = get("WS_HANDSHAKE_TIMEOUT_MS") {
            config.handshake_timeout = millis("WS_HANDSHAKE_TIMEOUT_MS", v)?;
        }
        if let Some(v) = get("WS_ACK_TIMEOUT_MS") {
            config.ack_timeout = millis("WS_ACK_TIMEOUT_MS", v)?;
        }
        if let Some(v) = get("WS_SEND_QUEUE_BYTES") {
            config.send_queue_bytes = parse("WS_SEND_QUEUE_BYTES", v, "a number of bytes")?;
        }
        if let Some(v) = get("WS_MAX_ROOMS_PER_CLIENT") {
            config.max_rooms_per_client = parse("WS_MAX_ROOMS_PER_CLIENT", v, "a number")?;
        }
        if let Some(v) = get("WS_SHUTDOWN_TIMEOUT_MS") {
            config.shutdown_timeout = millis("WS_SHUTDOWN_TIMEOUT_MS", v)?;
        }
        if let Some(v) = get("WS_MAX_CONNECTIONS") {
            config.max_connections = parse("WS_MAX_CONNECTIONS", v, "a number")?;
        }
        if let Some(v) = get("WS_ALLOWED_ORIGINS") {
            config.allowed_origins = Some(
                v.split(',')
                    .map(|origin| origin.trim().to_owned())
                    .filter(|origin| !origin.is_empty())
                    .collect(),
            );
        }
        if let Some(v) = get("WS_PING_INTERVAL_MS") {
            config.ping_interval = millis("WS_PING_INTERVAL_MS", v)?;
        }
        if let Some(v) = get("WS_PONG_TIMEOUT_MS") {
            config.pong_timeout = millis("WS_PONG_TIMEOUT_MS", v)?;
        }
        if let Some(v) = get("WS_RATE_LIMIT_PER_SEC") {
            config.rate_limit_per_sec = parse("WS_RATE_LIMIT_PER_SEC", v, "a number")?;
        }
        if let Some(v) = get("WS_RATE_LIMIT_BURST") {
            config.rate_limit_burst = parse("WS_RATE_LIMIT_BURST", v, "a number")?;
        }
        if let Some(v) = get("WS_CLOSE_TIMEOUT_MS") {
            config.close_timeout = millis("WS_CLOSE_TIMEOUT_MS", v)?;
        }
        if let Some(v) = get("WS_LISTEN_BACKLOG") {
            config.listen_backlog = parse("WS_LISTEN_BACKLOG", v, "a number")?;
        }
        if let Some(v) = get("WS_MAX_PENDING_HANDSHAKES") {
            config.max_pending_handshakes = parse("WS_MAX_PENDING_HANDSHAKES", v, "a number")?;
        }
        if let Some(v) = get("WS_METRICS_ADDR") {
            config.metrics_addr = Some(parse(
                "WS_METRICS_ADDR",
                v,
                "an IP address and port, such as `127.0.0.1:9100`",
            )?);
        }
        #[cfg(feature = "redis")]
        {
            config.redis = vania_ws_redis::RedisConfig::from_vars(vars)?;
        }
        #[cfg(not(feature = "redis"))]
        if get("REDIS_URL").is_some() {
            return Err(ConfigError::Inconsistent {
                key: "REDIS_URL",
                reason: "is set, but this build of vania-ws has no Redis support: enable the `redis` feature of `vania-ws` (on by default), or unset it".to_owned(),
            });
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks values that cannot work, alone or together: a zero limit or timeout, and a
    /// message limit above the send-queue bound (the echo of a largest message could never be
    /// queued). The error names the setting. `Server` checks this again when it is built.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let nonzero = [
            ("WS_PING_INTERVAL_MS", self.ping_interval.is_zero()),
            ("WS_PONG_TIMEOUT_MS", self.pong_timeout.is_zero()),
            ("WS_HANDSHAKE_TIMEOUT_MS", self.handshake_timeout.is_zero()),
            ("WS_ACK_TIMEOUT_MS", self.ack_timeout.is_zero()),
            ("WS_CLOSE_TIMEOUT_MS", self.close_timeout.is_zero()),
            ("WS_SHUTDOWN_TIMEOUT_MS", self.shutdown_timeout.is_zero()),
            ("WS_MAX_MESSAGE_BYTES", self.max_message_bytes == 0),
            ("WS_MAX_CONNECTIONS", self.max_connections == 0),
            ("WS_SEND_QUEUE_BYTES", self.send_queue_bytes == 0),
            ("WS_LISTEN_BACKLOG", self.listen_backlog == 0),
            (
                "WS_MAX_PENDING_HANDSHAKES",
                self.max_pending_handshakes == 0,
            ),
        ];
        if let Some((key, _)) = nonzero.iter().find(|(_, zero)| *zero) {
            return Err(ConfigError::Invalid {
                key,
                expected: "more than 0",
                value: "0".to_owned(),
            });
        }
        if self.max_message_bytes > self.send_queue_bytes {
            return Err(ConfigError::Inconsistent {
                key: "WS_MAX_MESSAGE_BYTES",
                reason: format!(
                    "({}) must not exceed `WS_SEND_QUEUE_BYTES` ({}): a reply as large as the largest message would overflow every client's send queue",
                    self.max_message_bytes, self.send_queue_bytes
                ),
            });
        }
        if self.rate_limit_per_sec > 0 && self.rate_limit_burst == 0 {
            return Err(ConfigError::Inconsistent {
                key: "WS_RATE_LIMIT_BURST",
                reason: format!(
                    "must be more than 0 while `WS_RATE_LIMIT_PER_SEC` is {} (set both to 0 to turn the limit off)",
                    self.rate_limit_per_sec
                ),
            });
        }
        Ok(())
    }

    /// Sets the address to listen on.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// Sets the port to listen on (`0` picks a free one).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Turns WebSocket serving on or off.
    pub fn websocket(mut self, enabled: bool) -> Self {
        self.websocket = enabled;
        self
    }

    /// Sets the largest incoming message, in bytes.
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// Sets how long `Client::emit_with_ack` waits for an answer.
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// Sets the handshake timeout.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets the per-client outgoing queue bound, in bytes.
    pub fn send_queue_bytes(mut self, bytes: usize) -> Self {
        self.send_queue_bytes = bytes;
        self
    }

    /// Sets how many rooms one client may be in.
    pub fn max_rooms_per_client(mut self, rooms: usize) -> Self {
        self.max_rooms_per_client = rooms;
        self
    }

    /// Sets the drain deadline on shutdown.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Sets how many connections may be open at once.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections;
        self
    }

    /// Sets the browser origins allowed to connect (`"*"` for any).
    pub fn allowed_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_origins = Some(origins.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the ping interval and how long a ping may go unanswered.
    pub fn heartbeat(mut self, interval: Duration, pong_timeout: Duration) -> Self {
        self.ping_interval = interval;
        self.pong_timeout = pong_timeout;
        self
    }

    /// Sets the per-connection rate limit (`0` events per second turns it off).
    pub fn rate_limit(mut self, per_sec: u32, burst: u32) -> Self {
        self.rate_limit_per_sec = per_sec;
        self.rate_limit_burst = burst;
        self
    }

    /// Sets how long a closing connection waits for its peer.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets the listening socket's backlog.
    pub fn listen_backlog(mut self, backlog: u32) -> Self {
        self.listen_backlog = backlog;
        self
    }

    /// Sets how many connections may be in their HTTP upgrade at once.
    pub fn max_pending_handshakes(mut self, pending: usize) -> Self {
        self.max_pending_handshakes = pending;
        self
    }

    /// Serves `GET /metrics` on `addr` beside the standalone server (`WS_METRICS_ADDR`).
    pub fn metrics_addr(mut self, addr: std::net::SocketAddr) -> Self {
        self.metrics_addr = Some(addr);
        self
    }
}

fn parse<T: std::str::FromStr>(
    key: &'static str,
    value: &str,
    expected: &'static str,
) -> Result<T, ConfigError> {
    value.parse().map_err(|_| ConfigError::Invalid {
        key,
        expected,
        value: value.to_owned(),
    })
}

fn millis(key: &'static str, value: &str) -> Result<Duration, ConfigError> {
    parse(key, value, "a number of milliseconds").map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_follow_vania() {
        let config = ServerConfig::from_vars(&HashMap::new()).unwrap();
        assert_eq!(config.host, "127.0.0.1");
        assert_eq!(config.port, 8000);
        assert!(config.websocket);
    }

    #[test]
    fn reads_vania_keys() {
        let config = ServerConfig::from_vars(&vars(&[
            ("APP_HOST", "0.0.0.0"),
            ("APP_PORT", "9001"),
            ("APP_WEBSOCKET", "false"),
        ]))
        .unwrap();
        assert_eq!((config.host.as_str(), config.port), ("0.0.0.0", 9001));
        assert!(!config.websocket);
    }

    #[test]
    fn reads_limit_keys() {
        let config = ServerConfig::from_vars(&vars(&[
            ("WS_MAX_MESSAGE_BYTES", "1024"),
            ("WS_MAX_CONNECTIONS", "7"),
            ("WS_HANDSHAKE_TIMEOUT_MS", "1500"),
            (
                "WS_ALLOWED_ORIGINS",
                "https://a.example, https://b.example:8443",
            ),
            ("WS_PING_INTERVAL_MS", "100"),
            ("WS_PONG_TIMEOUT_MS", "200"),
            ("WS_SEND_QUEUE_BYTES", "4096"),
            ("WS_MAX_ROOMS_PER_CLIENT", "3"),
            ("WS_RATE_LIMIT_PER_SEC", "5"),
            ("WS_RATE_LIMIT_BURST", "6"),
            ("WS_SHUTDOWN_TIMEOUT_MS", "250"),
            ("WS_LISTEN_BACKLOG", "64"),
            ("WS_MAX_PENDING_HANDSHAKES", "9"),
            ("WS_ACK_TIMEOUT_MS", "750"),
        ]))
        .unwrap();
        let expected = ServerConfig::default()
            .max_message_bytes(1024)
            .max_connections(7)
            .handshake_timeout(Duration::from_millis(1500))
            .allowed_origins(["https://a.example", "https://b.example:8443"])
            .heartbeat(Duration::from_millis(100), Duration::from_millis(200))
            .send_queue_bytes(4096)
            .max_rooms_per_client(3)
            .rate_limit(5, 6)
            .shutdown_timeout(Duration::from_millis(250))
            .listen_backlog(64)
            .max_pending_handshakes(9)
            .ack_timeout(Duration::from_millis(750));
        assert_eq!(config, expected);
    }

    #[test]
    fn zero_heartbeat_times_are_refused() {
        let err = ServerConfig::from_vars(&vars(&[("WS_PONG_TIMEOUT_MS", "0")])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`WS_PONG_TIMEOUT_MS` must be more than 0")
        );
        let built = ServerConfig::default().heartbeat(Duration::ZERO, Duration::from_secs(1));
        assert!(built.validate().is_err());
    }

    #[test]
    fn settings_are_checked_together() {
        let err = ServerConfig::from_vars(&vars(&[
            ("WS_MAX_MESSAGE_BYTES", "2000000"),
            ("WS_SEND_QUEUE_BYTES", "1000000"),
        ]))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "`WS_MAX_MESSAGE_BYTES` (2000000) must not exceed `WS_SEND_QUEUE_BYTES` (1000000): a reply as large as the largest message would overflow every client's send queue"
        );
        for key in [
            "WS_HANDSHAKE_TIMEOUT_MS",
            "WS_ACK_TIMEOUT_MS",
            "WS_CLOSE_TIMEOUT_MS",
            "WS_SHUTDOWN_TIMEOUT_MS",
            "WS_LISTEN_BACKLOG",
            "WS_MAX_PENDING_HANDSHAKES",
        ] {
            let err = ServerConfig::from_vars(&vars(&[(key, "0")])).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("`{key}` must be more than 0, got `0`")
            );
        }
        let err = ServerConfig::default()
            .rate_limit(10, 0)
            .validate()
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`WS_RATE_LIMIT_BURST` must be more than 0")
        );
        assert!(ServerConfig::default().rate_limit(0, 0).validate().is_ok());
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = ServerConfig::from_vars(&vars(&[("APP_PORT", "eighty")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`APP_PORT` must be a port number (0 to 65535), got `eighty`"
        );
        let err = ServerConfig::from_vars(&vars(&[("APP_WEBSOCKET", "maybe")])).unwrap_err();
        assert!(err.to_string().starts_with("`APP_WEBSOCKET`"));
    }

    #[test]
    fn the_environment_overrides_the_env_file() {
        let dir = std::env::temp_dir().join(format!("vania-ws-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(".env");
        std::fs::write(&file, "APP_HOST=10.1.2.3\nAPP_PORT=1234\n").unwrap();
        let env = [("APP_PORT".to_owned(), "4321".to_owned())];
        let config = ServerConfig::from_layers(&file, env).unwrap();
        assert_eq!((config.host.as_str(), config.port), ("10.1.2.3", 4321));
        let missing = ServerConfig::from_layers(&dir.join("absent.env"), []).unwrap();
        assert_eq!(missing, ServerConfig::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
