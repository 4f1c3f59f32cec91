//! `WS_METRICS_ADDR`, the standalone server's Prometheus listener: read from the settings,
//! checked at start-up. (What it exports is checked against the traffic in the hardening
//! suite, on both front ends.)

use std::collections::HashMap;
use vania_ws::{Router, Server, ServerConfig};

#[test]
fn the_metrics_address_is_read_from_the_settings_and_checked() {
    let vars = |value: &str| HashMap::from([("WS_METRICS_ADDR".to_owned(), value.to_owned())]);
    let config = ServerConfig::from_vars(&vars("127.0.0.1:9100")).unwrap();
    assert_eq!(config.metrics_addr, Some("127.0.0.1:9100".parse().unwrap()));
    assert_eq!(
        ServerConfig::from_vars(&HashMap::new())
            .unwrap()
            .metrics_addr,
        None
    );
    let err = ServerConfig::from_vars(&vars("localhost"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("WS_METRICS_ADDR"), "{err}");
}

#[tokio::test]
async fn a_metrics_address_in_use_fails_start_up_and_names_the_setting() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = ServerConfig::default()
        .port(0)
        .metrics_addr(taken.local_addr().unwrap());
    let err = Server::builder(Router::new().websocket("/ws", |_| {}))
        .config(config)
        .bind()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("WS_METRICS_ADDR"), "{err}");
}
