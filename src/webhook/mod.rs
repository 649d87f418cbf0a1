//! One MoEngage Streams request in, one HTTP answer out: [`handler`] (authorize → [`body`] →
//! decode and map → forward → [`answer`]), inbound [`auth`] (Basic, token, OAuth bearer;
//! constant time) and the [`oauth`] token route.

pub mod answer;
pub mod auth;
pub mod body;
pub mod handler;
pub mod oauth;

pub use handler::Webhook;
