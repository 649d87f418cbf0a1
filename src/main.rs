//! The Lambda: builds clients once, reads the secret and warms the Segment connection during
//! Init, then serves API Gateway / Function URL events (through [`lambda_adapter::run`], which
//! answers 400 to an event lambda_http cannot convert).

use lambda_http::{Error, Request, service_fn, tracing};
use moengage_segment::app::{self, Options};
use moengage_segment::config::Env;
use moengage_segment::lambda_adapter;
use moengage_segment::metrics::MetricsSink;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let function_name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
    let opts = Options {
        dry_run_without_settings: false,
        force_dry_run: false,
        metrics: MetricsSink::Stdout { function_name },
        dry_run_output: || Box::new(std::io::sink()),
    };
    let built = match Env::from_env() {
        Ok(env) => app::build(&env, opts).await,
        Err(e) => Err(e.into()),
    };
    // A misconfigured function keeps running and answers 500 with the reason (fail closed),
    // rather than crashing at every cold start with nothing useful in the response.
    let app = built.unwrap_or_else(|e| {
        tracing::error!(error = %e, "startup configuration invalid; every request will get 500");
        app::unconfigured(e.to_string())
    });
    app.warm_up().await;
    let app = &app;
    lambda_adapter::run(service_fn(move |req: Request| async move {
        Ok::<_, std::convert::Infallible>(app.handle(req).await)
    }))
    .await
}
