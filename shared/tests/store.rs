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

mod customer_state {
    use super::*;
    use shared::store::{CustomerState, CustomerStore, Transaction};
    use shared::sync::{premium, CustomerSnapshot};

    fn state(version: u64, email: &str) -> CustomerState {
        let mut snapshot = CustomerSnapshot::empty(CustomerId::parse("cus_State1").unwrap());
        snapshot.email = Some(email.into());
        CustomerState {
            premium: premium(&snapshot, 0, 0),
            snapshot,
            synced_version: version,
            synced_at: "2026-11-21T00:00:00Z".into(),
            user_id: None,
        }
    }

    async fn write(
        table: &Table,
        state: &CustomerState,
        replaces: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut tx = Transaction::new();
        tx.put_customer_state(table, state, replaces).unwrap();
        table.commit(tx).await
    }

    #[tokio::test]
    async fn tickets_are_unique_and_increasing_under_concurrency() {
        let stack = TestStack::new().await;
        let table = Arc::new(stack.services().table);
        let id = CustomerId::parse("cus_Tickets").unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (table, id) = (table.clone(), id.clone());
                tokio::spawn(async move { table.next_sync_ticket(&id).await.unwrap() })
            })
            .collect();
        let mut tickets = Vec::new();
        for t in tasks {
            tickets.push(t.await.unwrap());
        }
        tickets.sort();
        assert_eq!(tickets, (1..=20).collect::<Vec<u64>>());
    }

    #[tokio::test]
    async fn a_state_is_written_only_over_the_version_it_was_compared_with() {
        let stack = TestStack::new().await;
        let table = stack.services().table;
        write(&table, &state(5, "new@x.test"), None).await.unwrap();
        let err = write(&table, &state(6, "raced@x.test"), None)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            StoreError::TransactionConditionsFailed(vec![0]),
            "one existed after all"
        );
        let err = write(&table, &state(7, "stale@x.test"), Some(4))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            StoreError::TransactionConditionsFailed(vec![0]),
            "compared with an old version"
        );
        let id = CustomerId::parse("cus_State1").unwrap();
        let stored = table.get_customer_state(&id).await.unwrap().unwrap();
        assert_eq!(stored.snapshot.email.as_deref(), Some("new@x.test"));
        write(&table, &state(6, "newer@x.test"), Some(5))
            .await
            .unwrap();
        let stored = table.get_customer_state(&id).await.unwrap().unwrap();
        assert_eq!(
            (stored.synced_version, stored.snapshot.email.as_deref()),
            (6, Some("newer@x.test"))
        );
    }

    #[tokio::test]
    async fn a_failed_condition_writes_nothing_of_the_transaction() {
        let stack = TestStack::new().await;
        let table = stack.services().table;
        write(&table, &state(5, "kept@x.test"), None).await.unwrap();
        let mut tx = Transaction::new();
        let user = super::record("tx-user", "cus_State1");
        table.insert_user(&user).await.unwrap();
        // A fresh user item that would succeed, beside a stale state write that must fail.
        let other = super::record("tx-other", "cus_State1");
        tx.put(
            &table,
            shared::store::to_item(shared::store::key("USER#tx-other", "PROFILE"), &other).unwrap(),
            None,
        )
        .unwrap();
        tx.put_customer_state(&table, &state(3, "stale@x.test"), Some(2))
            .unwrap();
        assert_eq!(
            table.commit(tx).await.unwrap_err(),
            StoreError::TransactionConditionsFailed(vec![1])
        );
        assert_eq!(
            table
                .get_user(&UserId::parse("tx-other").unwrap())
                .await
                .unwrap(),
            None
        );
    }
}

mod retention {
    use std::time::Duration;

    use aws_sdk_dynamodb::types::AttributeValue;
    use serde_json::Value;
    use shared::ids::CustomerId;
    use shared::store::{key, AuditEntry, AuditSource, Retention, Transaction, TTL_ATTRIBUTE};
    use shared::sync::{Change, ChangeKind};
    use shared::testing::TestStack;

    #[tokio::test]
    async fn audit_entries_expire_after_the_audit_retention() {
        let stack = TestStack::new().await;
        let table = stack.services().table.with_retention(Retention {
            portal_sessions: Duration::from_secs(86_400),
            audit: Duration::from_secs(10 * 86_400),
        });
        let entry = AuditEntry {
            customer_id: CustomerId::parse("cus_Retained").unwrap(),
            source: AuditSource::Webhook,
            reference: None,
            at: "2026-11-21T00:00:00.000000Z".into(),
            change: Change {
                kind: ChangeKind::Link,
                field: "user".into(),
                from: Value::Null,
                to: Value::Null,
                message: "linked".into(),
            },
            cancellation: None,
        };
        let mut tx = Transaction::new();
        tx.put_audit_entry(&table, &entry, 7, 0).unwrap();
        table.commit(tx).await.unwrap();
        let item = table
            .get(key(
                "CUS#cus_Retained",
                "AUDIT#2026-11-21T00:00:00.000000Z#000000000007#000",
            ))
            .await
            .unwrap()
            .unwrap();
        // 2026-11-21T00:00:00Z is 1795219200; ten days later.
        assert_eq!(
            item.get(TTL_ATTRIBUTE),
            Some(&AttributeValue::N(
                (1_795_219_200 + 10 * 86_400).to_string()
            ))
        );
        assert_eq!(
            table.audit_entries(&entry.customer_id).await.unwrap(),
            vec![entry]
        );
    }
}
