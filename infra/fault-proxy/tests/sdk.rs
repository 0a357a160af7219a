//! The real AWS SDK for Rust, pointed at the proxy, parses each injected fault as it would
//! the real service's: typed errors, cancellation reasons, request ids, timeouts, dispatch
//! failures.

mod support;

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{retry::RetryConfig, timeout::TimeoutConfig};
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::get_item::GetItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::RequestId;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use fault_proxy::{Fault, FaultProxy, Rule};
use support::Upstream;

const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(500);

fn client(endpoint: &str) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        )
        .build();
    Client::from_conf(config)
}

fn put(pk: &str) -> TransactWriteItem {
    TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name("portico")
                .item("pk", AttributeValue::S(pk.into()))
                .item("sk", AttributeValue::S("STATE".into()))
                .build()
                .unwrap(),
        )
        .build()
}

async fn get(client: &Client, pk: &str) -> Result<(), SdkError<GetItemError>> {
    client
        .get_item()
        .table_name("portico")
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S("STATE".into()))
        .send()
        .await
        .map(|_| ())
}

#[tokio::test]
async fn a_transaction_conflict_is_a_cancelled_transaction_naming_the_item() {
    let (upstream, url) = Upstream::start().await;
    let proxy = FaultProxy::start(&url).await.unwrap();
    let client = client(&proxy.endpoint());
    proxy.inject(
        Rule::new(Fault::TransactionConflict)
            .operation("TransactWriteItems")
            .key_contains("CUS#cus_2")
            .times(1),
    );
    let transact = || {
        client
            .transact_write_items()
            .transact_items(put("USER#u1"))
            .transact_items(put("CUS#cus_2"))
            .transact_items(put("AUDIT#cus_2"))
            .send()
    };
    let err = transact().await.unwrap_err();
    let request_id = err.request_id().map(str::to_string);
    let TransactWriteItemsError::TransactionCanceledException(cancelled) = err.into_service_error()
    else {
        panic!("not a cancelled transaction");
    };
    let codes: Vec<&str> = cancelled
        .cancellation_reasons()
        .iter()
        .map(|r| r.code().unwrap_or(""))
        .collect();
    assert_eq!(codes, ["None", "TransactionConflict", "None"]);
    assert_eq!(
        cancelled.cancellation_reasons()[1].message(),
        Some("Transaction is ongoing for the item")
    );
    assert!(cancelled
        .message()
        .is_some_and(|m| m.contains("[None, TransactionConflict, None]")));
    assert_eq!(request_id.map(|id| id.len()), Some(52));
    assert!(
        upstream.targets().is_empty(),
        "the faulted request was not forwarded"
    );

    transact().await.expect("the rule was used up");
    assert_eq!(upstream.targets(), ["DynamoDB_20120810.TransactWriteItems"]);
    assert_eq!(proxy.injected()["transaction_conflict"], 1);
}

#[tokio::test]
async fn throttling_throughput_and_500s_are_their_typed_errors() {
    let (_, url) = Upstream::start().await;
    let proxy = FaultProxy::start(&url).await.unwrap();
    let client = client(&proxy.endpoint());
    for fault in [
        Fault::Throttling,
        Fault::ProvisionedThroughputExceeded,
        Fault::InternalServerError,
    ] {
        proxy.inject(Rule::new(fault).operation("GetItem").times(1));
    }
    let service_error = |e: SdkError<GetItemError>| e.into_service_error();
    let first = service_error(get(&client, "CUS#a").await.unwrap_err());
    assert!(
        matches!(first, GetItemError::ThrottlingException(_)),
        "{first:?}"
    );
    let second = service_error(get(&client, "CUS#a").await.unwrap_err());
    assert!(
        matches!(
            second,
            GetItemError::ProvisionedThroughputExceededException(_)
        ),
        "{second:?}"
    );
    let third = service_error(get(&client, "CUS#a").await.unwrap_err());
    assert!(
        matches!(third, GetItemError::InternalServerError(_)),
        "{third:?}"
    );
    get(&client, "CUS#a").await.expect("the rules were used up");

    proxy.inject(
        Rule::new(Fault::TransactionConflict)
            .operation("PutItem")
            .times(1),
    );
    let err = client
        .put_item()
        .table_name("portico")
        .item("pk", AttributeValue::S("CUS#a".into()))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, PutItemError::TransactionConflictException(_)),
        "a single-item write meeting a transaction: {err:?}"
    );
}

#[tokio::test]
async fn a_hang_ends_at_the_clients_timeout_and_a_drop_is_a_dispatch_failure() {
    let (_, url) = Upstream::start().await;
    let proxy = FaultProxy::start(&url).await.unwrap();
    let client = client(&proxy.endpoint());

    proxy.inject(Rule::new(Fault::Hang).times(1));
    let started = Instant::now();
    let err = get(&client, "CUS#a").await.unwrap_err();
    assert!(matches!(err, SdkError::TimeoutError(_)), "{err:?}");
    assert!(started.elapsed() >= ATTEMPT_TIMEOUT);
    assert!(started.elapsed() < ATTEMPT_TIMEOUT * 4);

    proxy.inject(Rule::new(Fault::DropConnection).times(1));
    let err = get(&client, "CUS#a").await.unwrap_err();
    assert!(matches!(err, SdkError::DispatchFailure(_)), "{err:?}");

    get(&client, "CUS#a").await.expect("the client recovers");
    let injected = proxy.injected();
    assert_eq!((injected["hang"], injected["drop_connection"]), (1, 1));
    assert_eq!(proxy.take_counts()["DynamoDB_20120810.GetItem"], 3);
}
