//! `moe2seg`'s commands beside `invoke` ([`crate::lambda::invoke`]): [`map`] (a Streams body →
//! Segment messages).

pub mod map;
