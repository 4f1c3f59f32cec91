use vania_ws_server::{State, on, ws_controller};

struct Shop;

#[derive(Clone)]
struct Prices;

#[ws_controller("/shop")]
impl Shop {
    /// Two payloads: every event would fail with `invalid_payload`.
    #[on("order")]
    async fn order(&self, _id: u64, _prices: State<Prices>, _name: String) {}

    /// One payload beside other extractors is fine.
    #[on("price")]
    async fn price(&self, _prices: State<Prices>, _id: u64) {}
}

fn main() {}
