//! The webhook function (`WebhookFunction`): API Gateway / Function URL events, converted by
//! lambda_http, answered by the webhook handler. The handler is built once, and the secret read
//! and the Segment connection warmed, during Init.

use std::convert::Infallible;

use lambda_http::{Error, Request, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let webhook = moengage_segment::app::init_function().await.webhook();
    let webhook = &webhook;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Infallible>(webhook.handle(req).await)
    }))
    .await
}
