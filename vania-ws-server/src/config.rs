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
    /// The `.env` file exists but cannot be read.
    #[error("cannot read `.env`: {0}")]
    DotEnv(#[from] dotenvy::Error),
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
    /// `WS_MAX_ROOMS_PER_CLIENT`: rooms one client may be in. Default 100.
    pub max_rooms_per_client: usize,
    /// `WS_SHUTDOWN_TIMEOUT_MS`: the drain deadline on shutdown. Default 10 s.
    pub shutdown_timeout: Duration,
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
            max_rooms_per_client: 100,
            shutdown_timeout: Duration::from_secs(10),
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
        Self::from_vars(&vars)
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
        if let Some(v) = get("WS_SEND_QUEUE_BYTES") {
            config.send_queue_bytes = parse("WS_SEND_QUEUE_BYTES", v, "a number of bytes")?;
        }
        if let Some(v) = get("WS_MAX_ROOMS_PER_CLIENT") {
            config.max_rooms_per_client = parse("WS_MAX_ROOMS_PER_CLIENT", v, "a number")?;
        }
        if let Some(v) = get("WS_SHUTDOWN_TIMEOUT_MS") {
            config.shutdown_timeout = millis("WS_SHUTDOWN_TIMEOUT_MS", v)?;
        }
        Ok(config)
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
