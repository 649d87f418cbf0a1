//! The redelivery function (`RedeliveryFunction`): SQS events of the parked queue, each
//! answered with a partial batch response (`ReportBatchItemFailures`). The handler is built
//! once, and the secret read and the Segment connection warmed, during Init.

use std::convert::Infallible;

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let redelivery = moengage_segment::app::init_function().await.redelivery();
    let redelivery = &redelivery;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = Some(event.context.deadline);
        Ok::<_, Infallible>(redelivery.redeliver(event.payload, deadline).await)
    }))
    .await
}
