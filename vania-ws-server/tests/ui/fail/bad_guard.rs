use vania_ws_server::{on, ws_controller, Client, Handshake, Rejection};

struct Missing;

#[ws_controller("/missing", guard = authorise)]
impl Missing {
    async fn authorize(&self, request: Handshake) -> Result<Handshake, Rejection> {
        Ok(request)
    }

    #[on("message")]
    async fn message(&self, _client: &Client) {}
}

struct NotAsync;

#[ws_controller("/not-async", guard = authorize)]
impl NotAsync {
    fn authorize(&self, request: Handshake) -> Result<Handshake, Rejection> {
        Ok(request)
    }
}

struct Handler;

#[ws_controller("/handler", guard = message)]
impl Handler {
    #[on("message")]
    async fn message(&self, _client: &Client) {}
}

struct WrongShape;

#[ws_controller("/wrong-shape", guard = authorize)]
impl WrongShape {
    async fn authorize(&self, _token: String) -> bool {
        true
    }
}

struct Unknown;

#[ws_controller("/unknown", guards = authorize)]
impl Unknown {}

struct Twice;

#[ws_controller("/twice", guard = first, guard = second)]
impl Twice {
    async fn first(&self, request: Handshake) -> Result<Handshake, Rejection> {
        Ok(request)
    }
}

fn main() {}
