//! A fixed workload against a running `example-demo`, so that the server's instructions can be
//! counted under callgrind (`vania-ws-bench/callgrind-server.sh`): the same work each time,
//! finished when every frame has arrived, whatever the timing.
//!
//! - `serverload URL broadcast N M [W]`: N members join room `r` on `/ws`; one more client
//!   sends M `room-message`s of 100 B, at most W (default 8) not yet received by everyone.
//! - `serverload URL echo N M`: N clients each send M `message`s of 32 B, 16 in flight, and
//!   read the echoes.
//!
//! Running it twice, with two values of M, and dividing the difference in the server's
//! instructions by the difference in deliveries gives the instructions per delivery without
//! the cost of connecting and joining.

#![allow(clippy::print_stdout)]

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const ECHO_IN_FLIGHT: usize = 16;
const BROADCAST_IN_FLIGHT: usize = 8;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, mode, n, m, window) = match args.as_slice() {
        [url, mode, n, m] => (url, mode, n, m, None),
        [url, mode, n, m, window] => (url, mode, n, m, Some(window)),
        _ => return Err("usage: serverload URL broadcast|echo N M [W]".into()),
    };
    let n: usize = n.parse().map_err(|_| "N must be a number")?;
    let m: usize = m.parse().map_err(|_| "M must be a number")?;
    let window = match window {
        Some(w) => w.parse().map_err(|_| "W must be a number")?,
        None => BROADCAST_IN_FLIGHT,
    };
    if n == 0 || m == 0 || window == 0 {
        return Err("N, M and W must be at least 1".into());
    }
    let local = tokio::task::LocalSet::new();
    match mode.as_str() {
        "broadcast" => local.run_until(broadcast(url, n, m, window)).await,
        "echo" => local.run_until(echo(url, n, m)).await,
        other => Err(format!("unknown mode {other}")),
    }
}

async fn open(url: &str) -> Result<Ws, String> {
    let (mut ws, _) = connect_async(url)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    next_text(&mut ws).await?; // `connected`
    Ok(ws)
}

async fn next_text(ws: &mut Ws) -> Result<String, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("read: {e}")),
            None => return Err("the server closed the connection".into()),
        }
    }
}

async fn send(ws: &mut Ws, text: &str) -> Result<(), String> {
    ws.send(Message::text(text))
        .await
        .map_err(|e| format!("send: {e}"))
}

async fn broadcast(url: &str, n: usize, m: usize, window: usize) -> Result<(), String> {
    let (received_tx, mut received) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut members = Vec::with_capacity(n);
    for _ in 0..n {
        let mut ws = open(url).await?;
        send(&mut ws, r#"{"event":"join-room","room":"r","id":1}"#).await?;
        while !next_text(&mut ws).await?.contains(r#""event":"ack""#) {}
        let received_tx = received_tx.clone();
        members.push(tokio::task::spawn_local(async move {
            for _ in 0..m {
                while !next_text(&mut ws).await?.contains("room-message") {}
                let _ = received_tx.send(());
            }
            ws.close(None).await.map_err(|e| format!("close: {e}"))
        }));
    }
    drop(received_tx);
    let mut sender = open(url).await?;
    let frame = format!(
        r#"{{"event":"room-message","payload":{{"room":"r","message":"B{}"}}}}"#,
        "x".repeat(99)
    );
    let (mut sent, mut deliveries) = (0, 0);
    while deliveries < n * m {
        while sent < m && sent * n < deliveries + window * n {
            send(&mut sender, &frame).await?;
            sent += 1;
        }
        received.recv().await.ok_or("a member stopped early")?;
        deliveries += 1;
    }
    for member in members {
        member.await.map_err(|e| e.to_string())??;
    }
    sender
        .close(None)
        .await
        .map_err(|e| format!("close: {e}"))?;
    println!("{deliveries} deliveries");
    Ok(())
}

async fn echo(url: &str, n: usize, m: usize) -> Result<(), String> {
    let frame = format!(r#"{{"event":"message","payload":"{}"}}"#, "e".repeat(32));
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let mut ws = open(url).await?;
        let frame = frame.clone();
        clients.push(tokio::task::spawn_local(async move {
            let (mut sent, mut echoed) = (0, 0);
            while echoed < m {
                while sent < m && sent < echoed + ECHO_IN_FLIGHT {
                    send(&mut ws, &frame).await?;
                    sent += 1;
                }
                if next_text(&mut ws).await?.contains(r#""event":"message""#) {
                    echoed += 1;
                }
            }
            ws.close(None).await.map_err(|e| format!("close: {e}"))?;
            Ok::<_, String>(echoed)
        }));
    }
    let mut echoes = 0;
    for client in clients {
        echoes += client.await.map_err(|e| e.to_string())??;
    }
    println!("{echoes} echoes");
    Ok(())
}
