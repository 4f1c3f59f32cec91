//! Room fan-out: one `to_room` to 1,000 members, encoded once and shared (candidate), against
//! encoding the same frame once per recipient (baseline: what a per-recipient serializer
//! costs). Prints the ratio candidate / baseline; below 1.0 means sharing is cheaper.
//!
//! `cargo run --release -p vania-ws-bench --bin fanout`

#![allow(clippy::print_stdout)]

use serde::Serialize;
use vania_ws::core::adapter::Target;
use vania_ws::core::outbox::OutboxReceiver;
use vania_ws::core::{Frame, Hub, HubConfig};
use vania_ws_bench::{interleaved, report};

const MEMBERS: usize = 1_000;
const SENDS: usize = 200;
const ROUNDS: usize = 9;

#[derive(Serialize)]
struct Chat<'a> {
    from: &'a str,
    text: &'a str,
    seq: u64,
}

fn main() {
    let hub = Hub::new(["/ws"], HubConfig::default().send_queue_bytes(usize::MAX));
    let mut members = Vec::with_capacity(MEMBERS);
    for _ in 0..MEMBERS {
        let (client, mut queue) = hub.register("/ws").expect("the route exists");
        client.join("lobby").expect("a valid room");
        queue.try_recv(); // the `connected` frame
        members.push((client, queue));
    }
    let text = "a chat message of a typical length, with some words in it";
    let payload = |seq| Chat {
        from: "ws:00000000-0000-0000-0000-000000000000",
        text,
        seq,
    };
    let drain = |members: &mut Vec<(vania_ws::Client, OutboxReceiver)>| {
        let mut n = 0;
        for (_, queue) in members.iter_mut() {
            while queue.try_recv().is_some() {
                n += 1;
            }
        }
        assert_eq!(n, MEMBERS * SENDS);
    };
    let per_recipient = |members: &mut Vec<(vania_ws::Client, OutboxReceiver)>| {
        for seq in 0..SENDS as u64 {
            for (client, _) in members.iter() {
                let frame = Frame::event("chat", &payload(seq)).expect("encodes");
                client.outbox().push(frame);
            }
        }
        drain(members);
    };
    let shared = |members: &mut Vec<(vania_ws::Client, OutboxReceiver)>| {
        for seq in 0..SENDS as u64 {
            hub.send_event(
                Target::Room {
                    route: "/ws",
                    room: "lobby",
                },
                "chat",
                &payload(seq),
            )
            .expect("encodes");
        }
        drain(members);
    };
    let members = std::cell::RefCell::new(members);
    per_recipient(&mut members.borrow_mut());
    shared(&mut members.borrow_mut());
    let (base, cand) = interleaved(
        ROUNDS,
        || per_recipient(&mut members.borrow_mut()),
        || shared(&mut members.borrow_mut()),
    );
    println!(
        "{}",
        report(
            &format!(
                "fan-out to {MEMBERS} members, {SENDS} sends x {ROUNDS} rounds, per delivery (baseline encode per recipient, candidate encode once)"
            ),
            MEMBERS * SENDS,
            base,
            cand
        )
    );
}
