//! The backfill function (`BackfillFunction`): a child of the backfill state machine's
//! Distributed Map, given a batch of S3 export objects; answers a summary, or fails with
//! `BackfillIncomplete` for the state machine to retry. The handler is built once, and the
//! secret read and the Segment connection warmed, during Init.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use moengage_segment::backfill::lambda::BatchEvent;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let backfill = moengage_segment::app::init_function()
        .await
        .backfill()
        .await;
    let backfill = &backfill;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<BatchEvent>| async move {
            let deadline = Some(event.context.deadline);
            backfill.handle(event.payload, deadline).await
        },
    ))
    .await
}
