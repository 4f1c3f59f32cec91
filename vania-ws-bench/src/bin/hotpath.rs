//! The two hot paths, in memory, for an instruction-count guard (instruction counts under
//! `valgrind --tool=callgrind` are stable on a noisy machine, unlike times):
//! - `echo N`: N times, one echo frame of the demo's `/ws` route through `Session::handle_text`
//!   (parse the envelope, dispatch to the `message` handler, encode its `emit`), and the
//!   queued frame taken off the client's queue;
//! - `echo-1k N`: the same with a 1 KiB text, as in the suite's large echo;
//! - `fanout S`: S times, one `to_room` to a room of 1,000 members (`Hub::send_event`: encode
//!   once, queue to each member), in bursts of [`BURST`] (the suite's 8 in flight), each queue
//!   drained after every burst as its connection drains it: batches taken under one lock,
//!   then the bytes released.
//!
//! The suite's `--hotpath` mode runs each path twice with different counts and divides the
//! difference in instructions by the difference in operations, so the setup cancels out.
//! Without arguments it prints nanoseconds per operation instead.
//!
//! `cargo run --release -p vania-ws-bench --bin hotpath [echo N | echo-1k N | fanout S]`

// It reports on stdout, as the other benchmark binaries do.
#![allow(clippy::print_stdout)]

use std::task::{Context, Poll};
use std::time::Instant;

use vania_ws::core::adapter::Target;
use vania_ws::core::outbox::OutboxReceiver;
use vania_ws::core::{Hub, HubConfig, Session};

/// Members of the fan-out room.
const MEMBERS: usize = 1_000;
/// The echo request: a 32-byte text, as in the suite's small echo.
const ECHO: &str = r#"{"event":"message","payload":"eabcdefghijklmnopqrstuvwxyzabcde"}"#;
/// The fan-out payload: 100 bytes, as in the suite's broadcast.
const TEXT: &str = "Babcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstu";

/// Broadcasts sent before the members' queues are drained.
const BURST: usize = 8;
/// What a connection takes per batch (`vania-ws-server`'s `BATCH_FRAMES` and `FEED_BYTES`).
const BATCH_ITEMS: usize = 32;
const BATCH_BYTES: usize = 64 * 1024;

fn drain(queue: &mut OutboxReceiver) -> usize {
    let mut n = 0;
    while queue.try_recv().is_some() {
        n += 1;
    }
    n
}

/// Drains a queue as a connection does: batches under one lock, then the bytes released.
fn drain_batches(queue: &mut OutboxReceiver, cx: &mut Context<'_>) -> usize {
    let (mut n, mut bytes) = (0, 0);
    // `Ready(true)`: the queue is drained.
    while let Poll::Ready(false) = queue.poll_take(cx, BATCH_ITEMS, BATCH_BYTES, |item| {
        n += 1;
        bytes += item.len();
    }) {}
    queue.written(bytes);
    n
}

/// `n` echo frames of a 32-byte text.
fn echo(n: usize) {
    echo_text(n, ECHO);
}

/// `n` echo frames of a 1 KiB text.
fn echo_1k(n: usize) {
    let text: String = (0..1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    echo_text(n, &format!(r#"{{"event":"message","payload":"{text}"}}"#));
}

/// `n` echo frames of `request` through the demo's own route table.
fn echo_text(n: usize, request: &str) {
    let table = example_demo::router().build().expect("the demo's routes");
    let hub = Hub::new(
        table.paths(),
        HubConfig::default().send_queue_bytes(usize::MAX),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let route = table.get("/ws").expect("the demo serves /ws").clone();
        let (session, mut queue) = Session::open(&hub, route).await.unwrap();
        drain(&mut queue); // `connected`
        for _ in 0..n {
            session.handle_text(request).await;
            assert_eq!(drain(&mut queue), 1, "the emitted frame (no id, so no ack)");
        }
    });
}

/// `sends` broadcasts to a room of [`MEMBERS`], in bursts of [`BURST`].
fn fanout(sends: usize) {
    assert!(
        sends.is_multiple_of(BURST),
        "fanout S: S is a multiple of {BURST}"
    );
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let hub = Hub::new(["/ws"], HubConfig::default().send_queue_bytes(usize::MAX));
    let mut members: Vec<_> = (0..MEMBERS)
        .map(|_| {
            let (client, mut queue) = hub.register("/ws").expect("the route exists");
            client.join("bench").expect("a valid room");
            drain(&mut queue); // `connected`
            (client, queue)
        })
        .collect();
    for _ in 0..sends / BURST {
        for _ in 0..BURST {
            let room = Target::Room {
                route: "/ws",
                room: "bench",
            };
            hub.send_event(room, "room-message", TEXT).expect("encodes");
        }
        let delivered: usize = members
            .iter_mut()
            .map(|(_, q)| drain_batches(q, &mut cx))
            .sum();
        assert_eq!(delivered, BURST * MEMBERS);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count = |i: usize| -> usize {
        args.get(i)
            .and_then(|v| v.parse().ok())
            .expect("usage: hotpath [echo N | echo-1k N | fanout S]")
    };
    match args.first().map(String::as_str) {
        Some("echo") => echo(count(1)),
        Some("echo-1k") => echo_1k(count(1)),
        Some("fanout") => fanout(count(1)),
        Some(other) => {
            panic!("unknown path {other:?}; usage: hotpath [echo N | echo-1k N | fanout S]")
        }
        None => {
            // Native timing, for orientation: the difference of two runs, as under callgrind.
            let time = |f: &dyn Fn(usize), n: usize| {
                let start = Instant::now();
                f(n);
                start.elapsed().as_secs_f64()
            };
            let per_echo = (time(&echo, 200_000) - time(&echo, 20_000)) / 180_000.0;
            let per_echo_1k = (time(&echo_1k, 100_000) - time(&echo_1k, 10_000)) / 90_000.0;
            let per_delivery =
                (time(&fanout, 2_000) - time(&fanout, 200)) / (1_800 * MEMBERS) as f64;
            println!(
                "echo (parse, dispatch, encode): {:.0} ns/op",
                per_echo * 1e9
            );
            println!(
                "echo of 1 KiB (parse, dispatch, encode): {:.0} ns/op",
                per_echo_1k * 1e9
            );
            println!(
                "fan-out, per delivery: {:.1} ns/delivery",
                per_delivery * 1e9
            );
        }
    }
}
