use vania_ws_server::{on, ws_controller, Client};

struct NotSerialize;

struct Admin;

#[ws_controller("/admins")]
impl Admin {
    #[on("plain")]
    async fn plain(&self, _client: &Client) -> NotSerialize {
        NotSerialize
    }

    #[on("result")]
    async fn result(&self, _client: &Client) -> Result<NotSerialize, String> {
        Ok(NotSerialize)
    }

    #[on("error-not-display")]
    async fn error_not_display(&self, _client: &Client) -> Result<(), NotSerialize> {
        Ok(())
    }
}

fn main() {}
