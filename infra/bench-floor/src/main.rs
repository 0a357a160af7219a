//! The floor of `make bench`: what any Rust function on `lambda_runtime` costs before it does
//! any work of its own. Same runtime flavour and release profile as Portico's functions, so the
//! difference between the two is Portico's.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    run(service_fn(|_event: LambdaEvent<Value>| async {
        Ok::<_, Error>(json!({"statusCode": 200, "body": "hello"}))
    }))
    .await
}
