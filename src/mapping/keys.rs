//! The per-request cache of what each raw attribute key is ([`KeyCache`]).

use super::properties::{KeyKind, PropertyTable};

/// Remembers what each raw attribute key is, for one request: the same keys recur in every
/// event of a batch, and a look-up is cheaper than folding the key each time. A fixed table
/// of slots, each holding the last key that hashed to it (FxHash, randomly seeded per
/// request): keys that collide, by chance or crafted, only take each other's place, so the
/// worst case is classifying every key, never more work or memory than that.
#[derive(Debug)]
pub struct KeyCache {
    pub(super) seed: u64,
    pub(super) slots: std::cell::RefCell<Vec<Option<KnownKey>>>,
}

/// A key in [`KeyCache`], and what it is.
pub(super) type KnownKey = (Box<str>, KeyKind);

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache {
            seed: fastrand::u64(..),
            slots: std::cell::RefCell::new(vec![None; Self::SLOTS]),
        }
    }
}

impl KeyCache {
    /// Slots (a power of two): far more than the distinct keys of a real batch.
    pub(super) const SLOTS: usize = 1024;
    /// Longer keys are classified each time (and never kept).
    pub(super) const MAX_KEY: usize = 64;

    pub(super) fn classify(&self, table: &PropertyTable, key: &str) -> KeyKind {
        if key.len() > Self::MAX_KEY {
            return table.classify(key);
        }
        let slot = {
            use std::hash::Hasher;
            let mut h = rustc_hash::FxHasher::with_seed(self.seed as usize);
            h.write(key.as_bytes());
            (h.finish() >> 32) as usize & (Self::SLOTS - 1)
        };
        let mut slots = self.slots.borrow_mut();
        match slots.get_mut(slot) {
            Some(Some((k, kind))) if **k == *key => *kind,
            Some(entry) => {
                let kind = table.classify(key);
                *entry = Some((key.into(), kind));
                kind
            }
            None => table.classify(key),
        }
    }
}
