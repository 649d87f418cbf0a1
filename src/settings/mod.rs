//! The process's settings: the environment ([`config`]) and the customer's secret, read from
//! Secrets Manager or the environment and cached ([`secret`]).

pub mod config;
pub mod secret;
