//! The webhook function (`WebhookFunction`): API Gateway / Function URL events, converted by
//! lambda_http, answered by the webhook handler. The handler is built once, and the secret read
//! and the Segment connection warmed, during Init.

use std::convert::Infallible;

use lambda_http::{Error, Request, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let app = moengage_segment::lambda::app::init_function().await;
    let app = &app;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Infallible>(app.handle(req).await)
    }))
    .await
}
