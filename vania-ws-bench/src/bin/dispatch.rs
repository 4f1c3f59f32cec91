//! Dispatch cost of a `#[ws_controller]` handler against the same handler as a closure, on the
//! same path (`Session::handle_text` in memory: parse, decode a typed payload, run, encode the
//! emitted frame and the ack). Prints the ratio controller / closure; 1.0 means equal cost.
//!
//! `cargo run --release -p vania-ws-bench --bin dispatch`

#![allow(clippy::print_stdout)]

use serde::{Deserialize, Serialize};
use vania_ws::core::outbox::OutboxReceiver;
use vania_ws::core::{Hub, HubConfig, Session};
use vania_ws::{Client, Router, SendError, on, ws_controller};
use vania_ws_bench::{interleaved, report};

const FRAMES: usize = 50_000;
const ROUNDS: usize = 9;

#[derive(Deserialize, Serialize)]
struct Chat {
    room: String,
    text: String,
    seq: u64,
}

struct Bench;

#[ws_controller("/controller")]
impl Bench {
    #[on("chat")]
    async fn chat(&self, client: &Client, payload: Chat) -> Result<u64, SendError> {
        client.emit("chat", &payload)?;
        Ok(payload.seq)
    }
}

async fn closure(client: Client, payload: Chat) -> Result<u64, SendError> {
    client.emit("chat", &payload)?;
    Ok(payload.seq)
}

fn drain(queue: &mut OutboxReceiver) -> usize {
    let mut n = 0;
    while queue.try_recv().is_some() {
        n += 1;
    }
    n
}

fn main() {
    let table = Router::new()
        .controller(Bench)
        .websocket("/closure", |ev| {
            ev.on("chat", closure);
        })
        .build()
        .expect("valid routes");
    let hub = Hub::new(
        table.paths(),
        HubConfig::default().send_queue_bytes(usize::MAX),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let frame =
        r#"{"event":"chat","id":7,"payload":{"room":"lobby","text":"hello, world","seq":42}}"#;

    let (closure_session, mut closure_queue, controller_session, mut controller_queue) = runtime
        .block_on(async {
            let (a, qa) = Session::open(&hub, table.get("/closure").unwrap().clone())
                .await
                .unwrap();
            let (b, qb) = Session::open(&hub, table.get("/controller").unwrap().clone())
                .await
                .unwrap();
            (a, qa, b, qb)
        });
    drain(&mut closure_queue);
    drain(&mut controller_queue);

    let run = |session: &Session, queue: &mut OutboxReceiver| {
        runtime.block_on(async {
            for _ in 0..FRAMES {
                session.handle_text(frame).await;
                assert_eq!(drain(queue), 2, "the emitted frame and the ack");
            }
        });
    };
    // Warm up both paths.
    run(&closure_session, &mut closure_queue);
    run(&controller_session, &mut controller_queue);
    let (base, cand) = interleaved(
        ROUNDS,
        || run(&closure_session, &mut closure_queue),
        || run(&controller_session, &mut controller_queue),
    );
    println!(
        "{}",
        report(
            &format!(
                "dispatch, {FRAMES} frames x {ROUNDS} rounds (baseline closure, candidate controller)"
            ),
            FRAMES,
            base,
            cand
        )
    );
}
