//! The Lambda: builds clients once, reads the secret and warms the Segment connection during
//! Init, then serves both of the stack's functions through [`lambda_adapter::run`]: API
//! Gateway / Function URL events (the webhook; an event lambda_http cannot convert is
//! answered 400) and SQS events from the parked queue (redelivery).

use lambda_http::{Context, Error, Request, service_fn};
use moengage_segment::app::{self, DryRunWhen, Options};
use moengage_segment::config::Env;
use moengage_segment::lambda_adapter;
use moengage_segment::metrics::MetricsSink;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    moengage_segment::logging::init_stdout();
    let function_name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
    let opts = Options {
        dry_run: DryRunWhen::Never,
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
    lambda_adapter::run(
        service_fn(move |req: Request| async move {
            Ok::<_, std::convert::Infallible>(app.handle(req).await)
        }),
        move |event, ctx: Context| app.redeliver(event, Some(ctx.deadline)),
    )
    .await
}
