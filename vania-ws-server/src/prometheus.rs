//! Prometheus metrics: the engine's live counters and handler durations, in the Prometheus
//! text format (version 0.0.4), encoded by `prometheus-client` at each scrape.
//!
//! Nothing is copied into a metrics registry as it happens: the connection path keeps bumping
//! the core's relaxed atomics ([`Metrics`](vania_ws_core::metrics::Metrics)) and each route
//! event's [`DurationHistogram`](vania_ws_core::metrics::DurationHistogram), and a scrape reads
//! them through a collector. A scrape costs the hot path nothing.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::Arc;
use vania_ws_core::error::ErrorCode;

use crate::engine::{Engine, Shared};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The `Content-Type` of [`Engine::render_metrics`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

impl Engine {
    /// Every metric of this process in the Prometheus text format, as `GET /metrics` serves
    /// it ([`axum_metrics`](Engine::axum_metrics), `WS_METRICS_ADDR`):
    ///
    /// | metric | type |
    /// |---|---|
    /// | `vania_ws_connections` | gauge: open connections |
    /// | `vania_ws_rooms` | gauge: rooms with a member here, over every route |
    /// | `vania_ws_messages_in_total` | counter: frames received |
    /// | `vania_ws_messages_out_total` | counter: frames written |
    /// | `vania_ws_errors_total{code}` | counter: `error` frames sent, by code |
    /// | `vania_ws_handshake_rejections_total{status}` | counter: refused upgrades, by HTTP status |
    /// | `vania_ws_slow_consumers_total` | counter: clients dropped for an overflowing queue |
    /// | `vania_ws_rate_limited_total` | counter: events refused by the rate limit |
    /// | `vania_ws_ping_timeouts_total` | counter: clients dropped for missing pongs |
    /// | `vania_ws_handshakes_shed_total` | counter: pending handshakes dropped for new ones |
    /// | `vania_ws_publish_errors_total` | counter: frames the adapter could not carry to other nodes |
    /// | `vania_ws_handler_duration_seconds{route,event}` | histogram: handler runs, from the call to the outcome |
    pub fn render_metrics(&self) -> String {
        render(&self.shared)
    }
}

pub(crate) fn render(shared: &Arc<Shared>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(shared.clone())));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
        .expect("writing to a String cannot fail");
    text
}

struct Scrape(Arc<Shared>);

impl fmt::Debug for Scrape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scrape")
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let metrics = self.0.hub.metrics_snapshot();
        gauge(
            &mut encoder,
            "vania_ws_connections",
            "Open WebSocket connections.",
            metrics.connections,
        )?;
        gauge(
            &mut encoder,
            "vania_ws_rooms",
            "Rooms with at least one member on this node, over every route.",
            metrics.rooms as u64,
        )?;
        counter(
            &mut encoder,
            "vania_ws_messages_in",
            "Frames received from clients.",
            metrics.messages_in,
        )?;
        counter(
            &mut encoder,
            "vania_ws_messages_out",
            "Frames written to clients.",
            metrics.messages_out,
        )?;
        {
            let mut family = encoder.encode_descriptor(
                "vania_ws_errors",
                "Error frames sent to clients, by protocol error code.",
                None,
                MetricType::Counter,
            )?;
            // Every code, zeros included, so that a rate starts from a known 0.
            for &code in ErrorCode::ALL {
                let count = metrics.errors.get(code.as_str()).copied().unwrap_or(0);
                ConstCounter::new(count)
                    .encode(family.encode_family(&[("code", code.as_str())])?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "vania_ws_handshake_rejections",
                "WebSocket upgrades refused, by HTTP status.",
                None,
                MetricType::Counter,
            )?;
            for (status, count) in &metrics.handshakes_refused_by_status {
                ConstCounter::new(*count)
                    .encode(family.encode_family(&[("status", u64::from(*status))])?)?;
            }
        }
        counter(
            &mut encoder,
            "vania_ws_slow_consumers",
            "Clients closed because their send queue overflowed.",
            metrics.slow_consumers,
        )?;
        counter(
            &mut encoder,
            "vania_ws_rate_limited",
            "Events refused by the per-connection rate limit.",
            metrics.rate_limited,
        )?;
        counter(
            &mut encoder,
            "vania_ws_ping_timeouts",
            "Clients dropped for not answering pings.",
            metrics.pings_timed_out,
        )?;
        counter(
            &mut encoder,
            "vania_ws_handshakes_shed",
            "Connections dropped in their handshake to make room for new ones (WS_MAX_PENDING_HANDSHAKES).",
            metrics.handshakes_shed,
        )?;
        counter(
            &mut encoder,
            "vania_ws_publish_errors",
            "Frames the scale-out adapter could not carry to the other nodes (delivered on this one).",
            metrics.publish_errors,
        )?;
        let mut family = encoder.encode_descriptor(
            "vania_ws_handler_duration_seconds",
            "How long event handlers run, from the call to the outcome (the reply is queued after it).",
            None,
            MetricType::Histogram,
        )?;
        for route in self.0.routes.routes() {
            for (event, histogram) in route.handler_durations() {
                let runs = histogram.snapshot();
                family
                    .encode_family(&[("route", route.path()), ("event", event)])?
                    .encode_histogram::<NoLabelSet>(
                        runs.sum_seconds,
                        runs.count,
                        &runs.buckets,
                        None,
                    )?;
            }
        }
        Ok(())
    }
}

fn gauge(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> fmt::Result {
    let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

fn counter(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> fmt::Result {
    let counter = ConstCounter::new(value);
    counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)
}

/// The standalone server's metrics listener (`WS_METRICS_ADDR`): plain HTTP/1.1 through
/// hyper, `GET /metrics` and nothing else, until `stop`.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    crate::server::accept_until(listener, stop.clone(), |stream, _peer| {
        let shared = shared.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<_>| {
                let response = respond(&shared, request.method(), request.uri().path());
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                () = stop.cancelled() => {}
            }
        });
    })
    .await;
}

fn respond(shared: &Arc<Shared>, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (method, path) {
        (&Method::GET, "/metrics") => (StatusCode::OK, CONTENT_TYPE, render(shared)),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "GET only".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "metrics are at /metrics".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Server;
    use std::time::Duration;
    use vania_ws_core::{Client, Router};

    /// The value of the sample `series` (name and labels, exactly as printed).
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(|value| value.parse().expect("a sample's value is a number"))
    }

    #[test]
    fn every_counter_is_exported_under_its_own_name() {
        let router = Router::new().websocket("/ws", |ev| {
            ev.on("echo", |_client: Client, n: u64| async move { n });
        });
        let engine = Server::builder(router).build().unwrap();
        let metrics = engine.shared.hub.metrics();
        // A different count for each, so that no two can be swapped unnoticed.
        let times = |n: usize, record: &dyn Fn()| (0..n).for_each(|_| record());
        times(2, &|| metrics.record_message_in());
        metrics.record_messages_out(3);
        times(4, &|| metrics.record_error(ErrorCode::HandlerError));
        times(5, &|| metrics.record_slow_consumer());
        times(6, &|| metrics.record_rate_limited());
        times(7, &|| metrics.record_ping_timeout());
        times(8, &|| metrics.record_handshake_refused(404));
        times(9, &|| metrics.record_handshake_refused(401));
        times(10, &|| metrics.record_handshake_shed());
        times(11, &|| metrics.record_publish_error());
        let route = engine.shared.routes.get("/ws").unwrap().clone();
        let (_, echo) = route.handler_durations()[0];
        echo.observe(Duration::from_millis(3));
        echo.observe(Duration::from_millis(30));

        let text = engine.render_metrics();
        let expect = [
            ("vania_ws_connections", 0.0),
            ("vania_ws_rooms", 0.0),
            ("vania_ws_messages_in_total", 2.0),
            ("vania_ws_messages_out_total", 3.0),
            ("vania_ws_errors_total{code=\"handler_error\"}", 4.0),
            ("vania_ws_errors_total{code=\"invalid_json\"}", 0.0),
            ("vania_ws_slow_consumers_total", 5.0),
            ("vania_ws_rate_limited_total", 6.0),
            ("vania_ws_ping_timeouts_total", 7.0),
            ("vania_ws_handshake_rejections_total{status=\"404\"}", 8.0),
            ("vania_ws_handshake_rejections_total{status=\"401\"}", 9.0),
            ("vania_ws_handshakes_shed_total", 10.0),
            ("vania_ws_publish_errors_total", 11.0),
            (
                "vania_ws_handler_duration_seconds_count{route=\"/ws\",event=\"echo\"}",
                2.0,
            ),
            (
                "vania_ws_handler_duration_seconds_bucket{route=\"/ws\",event=\"echo\",le=\"0.005\"}",
                1.0,
            ),
            (
                "vania_ws_handler_duration_seconds_bucket{route=\"/ws\",event=\"echo\",le=\"0.05\"}",
                2.0,
            ),
            (
                "vania_ws_handler_duration_seconds_bucket{route=\"/ws\",event=\"echo\",le=\"+Inf\"}",
                2.0,
            ),
            (
                "vania_ws_handler_duration_seconds_sum{route=\"/ws\",event=\"echo\"}",
                0.033,
            ),
        ];
        for (series, value) in expect {
            let got = sample(&text, series).unwrap_or_else(|| panic!("no `{series}` in:\n{text}"));
            assert!(
                (got - value).abs() < 1e-9,
                "`{series}` is {got}, not {value}"
            );
        }
        assert!(text.contains("# TYPE vania_ws_handler_duration_seconds histogram"));
        assert!(text.contains("# TYPE vania_ws_connections gauge"));
        assert!(text.contains("# TYPE vania_ws_errors_total counter"));
    }
}
