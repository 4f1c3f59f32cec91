//! The room registry of one route: rooms are sets of clients, freed when they empty.

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use std::collections::HashMap;
use std::sync::Arc;

use crate::envelope::Frame;
use crate::outbox::{Outbox, Pushed};

/// The longest room name, in bytes.
pub const MAX_ROOM_NAME_BYTES: usize = 255;

/// Whether `name` is a valid room name: 1 to 255 bytes of UTF-8.
pub fn is_valid_room_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_ROOM_NAME_BYTES
}

/// The rooms of one route. Each room holds its members' queues, so fan-out is one pass.
///
/// Rooms live in a sharded concurrent map: joins, leaves and sends on different rooms do not
/// contend, and no lock is ever held across an `.await`.
#[derive(Debug, Default)]
pub(crate) struct RoomRegistry {
    rooms: DashMap<Arc<str>, HashMap<u64, Outbox>>,
}

impl RoomRegistry {
    /// Adds a member; returns the shared room name to keep in the client's own set. `opened`
    /// runs when the room is created, under the room's lock, so that it is ordered with the
    /// `closed` of [`leave`](Self::leave) for the same room.
    pub(crate) fn join(
        &self,
        room: &str,
        key: u64,
        outbox: &Outbox,
        opened: impl FnOnce(),
    ) -> Arc<str> {
        // A room in the map always has a member (leave removes it with its last one).
        if let Some(mut members) = self.rooms.get_mut(room) {
            members.insert(key, outbox.clone());
            return members.key().clone();
        }
        match self.rooms.entry(Arc::from(room)) {
            Entry::Occupied(mut entry) => {
                entry.get_mut().insert(key, outbox.clone());
                entry.key().clone()
            }
            Entry::Vacant(entry) => {
                opened();
                let name = entry.key().clone();
                entry.insert(HashMap::from([(key, outbox.clone())]));
                name
            }
        }
    }

    /// Removes a member, and the room when it empties: then `closed` runs, under the room's
    /// lock (see [`join`](Self::join)).
    pub(crate) fn leave(&self, room: &str, key: u64, closed: impl FnOnce()) {
        self.rooms.remove_if_mut(room, |_, members| {
            members.remove(&key);
            let empty = members.is_empty();
            if empty {
                closed();
            }
            empty
        });
    }

    /// Every room name, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .rooms
            .iter()
            .map(|room| room.key().to_string())
            .collect();
        names.sort_unstable();
        names
    }

    /// Queues `frame` for every member; returns how many queued it (a closing member drops it).
    pub(crate) fn deliver(&self, room: &str, frame: &Frame) -> usize {
        match self.rooms.get(room) {
            Some(members) => members
                .values()
                .filter(|outbox| outbox.push(frame.clone()) == Pushed::Queued)
                .count(),
            None => 0,
        }
    }

    /// Like [`deliver`](Self::deliver), skipping the members whose id is in `except`.
    pub(crate) fn deliver_except(&self, room: &str, except: &[&str], frame: &Frame) -> usize {
        match self.rooms.get(room) {
            Some(members) => members
                .values()
                .filter(|outbox| !outbox.client_id().is_some_and(|id| except.contains(&id)))
                .filter(|outbox| outbox.push(frame.clone()) == Pushed::Queued)
                .count(),
            None => 0,
        }
    }

    /// The ids of a room's members, sorted.
    pub(crate) fn member_ids(&self, room: &str) -> Vec<String> {
        let mut ids: Vec<String> = match self.rooms.get(room) {
            Some(members) => members
                .values()
                .filter_map(|outbox| outbox.client_id().map(str::to_owned))
                .collect(),
            None => Vec::new(),
        };
        ids.sort_unstable();
        ids
    }

    /// How many rooms exist.
    pub(crate) fn len(&self) -> usize {
        self.rooms.len()
    }

    /// How many members a room has.
    pub(crate) fn members(&self, room: &str) -> usize {
        self.rooms.get(room).map_or(0, |members| members.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_are_sets_and_are_freed_when_empty() {
        let reg = RoomRegistry::default();
        let (a, _ra) = Outbox::new(1024);
        let (b, _rb) = Outbox::new(1024);
        let events = std::cell::RefCell::new(Vec::new());
        let opened = || events.borrow_mut().push("opened");
        let closed = || events.borrow_mut().push("closed");
        let first = reg.join("r", 1, &a, opened);
        let again = reg.join("r", 1, &a, opened);
        assert!(Arc::ptr_eq(&first, &again));
        reg.join("r", 2, &b, opened);
        assert_eq!(reg.members("r"), 2);
        reg.leave("r", 3, closed);
        reg.leave("r", 2, closed);
        assert_eq!(reg.members("r"), 1);
        assert_eq!(*events.borrow(), ["opened"], "one room, opened once");
        reg.leave("r", 1, closed);
        assert_eq!(reg.len(), 0);
        assert_eq!(*events.borrow(), ["opened", "closed"]);
        reg.join("r", 1, &a, opened);
        assert_eq!(*events.borrow(), ["opened", "closed", "opened"]);
    }

    #[test]
    fn names_are_checked_by_bytes() {
        assert!(!is_valid_room_name(""));
        assert!(is_valid_room_name(&"é".repeat(127)));
        assert!(!is_valid_room_name(&"é".repeat(128)));
    }
}
