//! The store against moto's DynamoDB.

use std::sync::Arc;

use shared::ids::{CustomerId, UserId};
use shared::store::{StoreError, Table, UserRecord, UserStore};
use shared::testing::TestStack;

fn record(user: &str, customer: &str) -> UserRecord {
    UserRecord {
        user_id: UserId::parse(user).unwrap(),
        email: Some(format!("{user}@example.test")),
        customer_id: Some(CustomerId::parse(customer).unwrap()),
        premium: false,
        created_at: "2026-11-21T00:00:00Z".into(),
        updated_at: "2026-11-21T00:00:00Z".into(),
    }
}

#[tokio::test]
async fn a_user_round_trips() {
    let stack = TestStack::new().await;
    let table = stack.services().table;
    let id = UserId::parse("auth0|round-trip").unwrap();
    assert_eq!(table.get_user(&id).await.unwrap(), None);
    let user = record("auth0|round-trip", "cus_RoundTrip");
    table.insert_user(&user).await.unwrap();
    assert_eq!(table.get_user(&id).await.unwrap(), Some(user));
}

#[tokio::test]
async fn twenty_concurrent_inserts_of_one_new_user_have_exactly_one_winner() {
    let stack = TestStack::new().await;
    let table: Arc<Table> = Arc::new(stack.services().table);
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (table, barrier) = (table.clone(), barrier.clone());
            tokio::spawn(async move {
                let user = record("racer", &format!("cus_Racer{i}"));
                barrier.wait().await;
                (i, table.insert_user(&user).await)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (i, Ok(())) => winners.push(i),
            (_, Err(e)) => assert_eq!(e, StoreError::ConditionFailed),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let stored = table
        .get_user(&UserId::parse("racer").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.customer_id.unwrap().as_str(),
        format!("cus_Racer{}", winners[0])
    );
}

#[tokio::test]
async fn an_unreachable_dynamodb_is_unavailable() {
    let aws = shared::testing::aws_config("http://127.0.0.1:9").await;
    let table = Table::new(aws_sdk_dynamodb::Client::new(&aws), "portico");
    let err = table
        .get_user(&UserId::parse("anyone").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
}
