//! `moe2seg`'s commands beside `invoke` (in `lambda`): [`map`] (a Streams body →
//! Segment messages).

pub mod map;
