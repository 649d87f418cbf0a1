//! What the functions run on: the clients built once from the environment during Init
//! ([`app`]), and `moe2seg invoke` ([`invoke`]: an event file → the handlers the functions run).

pub mod app;
pub mod invoke;
