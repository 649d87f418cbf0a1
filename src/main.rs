//! The Lambda: builds clients once, reads the secret and warms the Segment connection during
//! Init, then serves API Gateway / Function URL events.

use lambda_http::{Error, Request, service_fn, tracing};
use moengage_segment::app::{self, Options};
use moengage_segment::config::Env;
use moengage_segment::metrics::MetricsSink;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let env = Env::from_env()?;
    let function_name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
    let app = app::build(
        &env,
        Options {
            dry_run_without_settings: false,
            force_dry_run: false,
            metrics: MetricsSink::Stdout { function_name },
            dry_run_output: || Box::new(std::io::stderr()),
        },
    )
    .await?;
    app.warm_up().await;
    let app = &app;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, std::convert::Infallible>(app.handle(req).await)
    }))
    .await
}
