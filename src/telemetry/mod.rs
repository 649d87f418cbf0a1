//! What the process tells its operators: JSON logs ([`logging`]) and CloudWatch EMF metrics
//! ([`metrics`]).

pub mod logging;
pub mod metrics;
