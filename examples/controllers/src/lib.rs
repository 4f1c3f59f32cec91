//! Controllers with dependencies: a `/chat` controller that owns a message store built by the
//! app, reads moderation settings from shared state, replies with typed values and refuses
//! bad posts with errors; and a `/health` controller collected automatically.
//!
//! Run it with `cargo run -p example-controllers`, then on `ws://127.0.0.1:8000/chat` send
//! `{"event":"join-room","room":"rust"}` and
//! `{"event":"post","payload":{"room":"rust","text":"hello"},"id":1}`.

use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, PoisonError};
use vania_ws::{Client, Router, State, on, ws_controller};

/// A stored chat message.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Stored {
    /// Its position in the store.
    pub id: usize,
    /// The room it was posted to.
    pub room: String,
    /// Who posted it.
    pub from: String,
    /// The text.
    pub text: String,
}

/// Every message posted, kept in memory (a database pool in a real app).
#[derive(Debug, Default)]
pub struct MessageStore {
    messages: Mutex<Vec<Stored>>,
}

impl MessageStore {
    fn push(&self, room: &str, from: &str, text: &str) -> Stored {
        let mut messages = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
        let stored = Stored {
            id: messages.len() + 1,
            room: room.to_owned(),
            from: from.to_owned(),
            text: text.to_owned(),
        };
        messages.push(stored.clone());
        stored
    }

    fn in_room(&self, room: &str) -> Vec<Stored> {
        self.messages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|message| message.room == room)
            .cloned()
            .collect()
    }
}

/// Moderation settings, shared with every handler through `State<Moderation>`.
#[derive(Debug, Clone)]
pub struct Moderation {
    /// Words refused in posts (compared case-insensitively).
    pub banned_words: Vec<String>,
    /// The longest post, in characters.
    pub max_chars: usize,
}

/// `post`'s payload.
#[derive(Debug, Deserialize)]
pub struct Post {
    /// The room to post to (the sender must be in it).
    pub room: String,
    /// The text.
    pub text: String,
}

/// `post`'s reply.
#[derive(Debug, Serialize)]
pub struct Posted {
    /// The stored message's id.
    pub id: usize,
    /// The room it was posted to.
    pub room: String,
}

/// Why a post was refused; its text is the `handler_error` message.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// Nothing to post.
    #[error("a post needs some text")]
    Empty,
    /// Over `max_chars`.
    #[error("a post is at most {0} characters")]
    TooLong(usize),
    /// A banned word.
    #[error("`{0}` is not allowed here")]
    Banned(String),
    /// Posting to a room without joining it.
    #[error("join `{0}` before posting to it")]
    NotInRoom(String),
    /// The message could not be sent.
    #[error(transparent)]
    Send(#[from] vania_ws::SendError),
}

/// The `/chat` route. Built by the app with its store: it has no `Default`.
#[derive(Debug)]
pub struct ChatController {
    store: Arc<MessageStore>,
}

impl ChatController {
    /// A controller over `store`.
    pub fn new(store: Arc<MessageStore>) -> Self {
        Self { store }
    }
}

#[ws_controller("/chat")]
impl ChatController {
    /// Greets a new client.
    #[on("connect")]
    async fn connect(&self, client: &Client) -> Result<(), ChatError> {
        client.emit("welcome", &serde_json::json!({ "session_id": client.id() }))?;
        Ok(())
    }

    /// Posts to a room the sender is in, after moderation; replies with the stored id.
    #[on("post")]
    async fn post(
        &self,
        client: &Client,
        moderation: State<Moderation>,
        post: Post,
    ) -> Result<Posted, ChatError> {
        let text = post.text.trim();
        if text.is_empty() {
            return Err(ChatError::Empty);
        }
        if text.chars().count() > moderation.max_chars {
            return Err(ChatError::TooLong(moderation.max_chars));
        }
        let lower = text.to_lowercase();
        if let Some(word) = moderation
            .banned_words
            .iter()
            .find(|word| lower.contains(word.as_str()))
        {
            return Err(ChatError::Banned(word.clone()));
        }
        if !client.in_room(&post.room) {
            return Err(ChatError::NotInRoom(post.room));
        }
        let stored = self.store.push(&post.room, client.id(), text);
        client.to_room("message", &post.room, &stored)?;
        Ok(Posted {
            id: stored.id,
            room: post.room,
        })
    }

    /// The messages of a room, oldest first.
    #[on("history")]
    async fn history(&self, room: String) -> Vec<Stored> {
        self.store.in_room(&room)
    }
}

/// The `/health` route: a controller with `Default`, collected by `Router::controllers()`.
#[derive(Debug, Default)]
pub struct HealthController;

#[ws_controller("/health")]
impl HealthController {
    /// Answers `"pong"`.
    #[on("ping")]
    async fn ping(&self) -> &'static str {
        "pong"
    }
}

/// The app's router: the chat controller built with `store`, every other controller collected,
/// and the moderation settings as shared state.
pub fn router(store: Arc<MessageStore>, moderation: Moderation) -> Router {
    Router::new()
        .controller(ChatController::new(store))
        .controllers()
        .state(moderation)
}
