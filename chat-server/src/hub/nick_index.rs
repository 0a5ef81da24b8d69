//! Which online member holds each uniqueness key of a nickname.
//!
//! Every nickname has three keys ([`NickKeys`]), and each must be unique among the people
//! online. The keys live once, in the members; this index stores only, per key, its kind and
//! the member holding it (16 bytes), and looks the key's text up in that member when it
//! compares or rehashes. A map from owned keys would keep a second copy of every key and
//! 40-byte entries: about 200 bytes more per connection.

use std::hash::{BuildHasher, RandomState};

use chat_core::names::NickKeys;
use hashbrown::HashTable;

use super::conn::ConnId;

/// The text of the key of `kind` in `keys` (kinds as in [`NickKeys::tagged`]).
fn key_of(keys: &NickKeys, kind: u8) -> &str {
    keys.tagged()[usize::from(kind)].1
}

/// Uniqueness keys of online nicknames, each mapped to its holder.
#[derive(Debug, Default)]
pub(crate) struct NickIndex {
    table: HashTable<(u8, ConnId)>,
    hasher: RandomState,
}

impl NickIndex {
    /// Who holds the key `key` of kind `kind`. `keys_of` gives a member's keys.
    pub(crate) fn get<'a>(
        &self,
        kind: u8,
        key: &str,
        keys_of: impl Fn(ConnId) -> Option<&'a NickKeys>,
    ) -> Option<ConnId> {
        let hash = self.hasher.hash_one((kind, key));
        self.table
            .find(hash, |&(k, c)| {
                k == kind && keys_of(c).is_some_and(|keys| key_of(keys, k) == key)
            })
            .map(|&(_, c)| c)
    }

    /// Records `conn` as the holder of its `keys`, replacing any other holder. `keys_of` gives
    /// the other members' keys (the index rehashes with them when it grows).
    pub(crate) fn insert<'a>(
        &mut self,
        conn: ConnId,
        keys: &NickKeys,
        keys_of: impl Fn(ConnId) -> Option<&'a NickKeys>,
    ) {
        let Self { table, hasher } = self;
        let text = |kind: u8, c: ConnId| -> Option<&str> {
            if c == conn {
                Some(key_of(keys, kind))
            } else {
                keys_of(c).map(|k| key_of(k, kind))
            }
        };
        for (kind, key) in keys.tagged() {
            let hash = hasher.hash_one((kind, key));
            let found = table.find_entry(hash, |&(k, c)| k == kind && text(k, c) == Some(key));
            match found {
                Ok(mut held) => held.get_mut().1 = conn,
                Err(_) => {
                    // Every entry's member is online, so its key is there to rehash with.
                    table.insert_unique(hash, (kind, conn), |&(k, c)| {
                        hasher.hash_one((k, text(k, c).unwrap_or_default()))
                    });
                }
            }
        }
    }

    /// Forgets `conn`'s keys (those it still holds). Call it while `keys` are still known.
    pub(crate) fn remove(&mut self, conn: ConnId, keys: &NickKeys) {
        for (kind, key) in keys.tagged() {
            let hash = self.hasher.hash_one((kind, key));
            if let Ok(held) = self.table.find_entry(hash, |&e| e == (kind, conn)) {
                held.remove();
            }
        }
    }

    /// How many keys are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chat_core::names::nick_keys;

    use super::*;

    #[test]
    fn finds_each_key_and_forgets_them_on_removal() {
        let mut members: HashMap<ConnId, NickKeys> = HashMap::new();
        let mut index = NickIndex::default();
        // Enough members for the table to grow (and rehash) several times.
        for conn in 0..1000 {
            let keys = nick_keys(&format!("User{conn}"));
            index.insert(conn, &keys, |c| members.get(&c));
            members.insert(conn, keys);
        }
        assert_eq!(index.len(), 3000);
        for conn in [0, 500, 999] {
            let keys = nick_keys(&format!("uSER{conn}"));
            for (kind, key) in keys.tagged() {
                assert_eq!(index.get(kind, key, |c| members.get(&c)), Some(conn));
            }
        }
        assert_eq!(index.get(0, "nobody", |c| members.get(&c)), None);
        let gone = members.remove(&500).expect("member");
        index.remove(500, &gone);
        assert_eq!(index.len(), 2997);
        assert_eq!(index.get(0, "user500", |c| members.get(&c)), None);
        assert_eq!(index.get(0, "user501", |c| members.get(&c)), Some(501));
    }

    #[test]
    fn a_new_holder_replaces_the_old_one_which_then_removes_nothing() {
        let mut members: HashMap<ConnId, NickKeys> = HashMap::new();
        let mut index = NickIndex::default();
        let keys = nick_keys("alice");
        index.insert(1, &keys, |c| members.get(&c));
        members.insert(1, keys.clone());
        index.insert(2, &keys, |c| members.get(&c));
        members.insert(2, keys.clone());
        assert_eq!(index.get(0, "alice", |c| members.get(&c)), Some(2));
        index.remove(1, &keys);
        assert_eq!(index.get(0, "alice", |c| members.get(&c)), Some(2));
        assert_eq!(index.len(), 3);
    }
}
