//! The operator's tools end to end: DynamoDB Local, the Stripe emulator (which delivers no
//! webhook here: every event it records is one Portico missed), and the domain operations the
//! CLI wires.

use portico_testkit::stripe_emulator::Fault;
use portico_testkit::Harness;
use shared::ids::CustomerId;
use shared::store::LedgerState;
use shared::webhook::replay::{replay, Selection};

fn quiet(_: usize, _: usize) {}

async fn rename(h: &Harness, customer: &CustomerId, name: &str) {
    h.stripe_api(
        "POST",
        &format!("/v1/customers/{customer}"),
        &[("name", name)],
    )
    .await;
}

#[tokio::test]
async fn replay_processes_missed_events_once_then_finds_duplicates_and_retries_failures() {
    let h = Harness::new().await;
    let mut customers = Vec::new();
    for n in 0..10 {
        customers.push(h.subscribed_customer(&format!("replay-{n}")).await);
    }
    // Whatever happened before the outage is outside the replay's window.
    h.emulator.advance_clock(5).unwrap();
    let since = h.emulator.now();
    for round in 0..5 {
        for customer in &customers {
            rename(&h, customer, &format!("Name {round}")).await;
        }
    }
    let missed: Vec<String> = h
        .emulator
        .events()
        .into_iter()
        .filter(|e| e.event["created"].as_i64() >= Some(since))
        .map(|e| e.event["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(missed.len(), 50);

    let ctx = h.services.sync_context();
    let window = Selection::Since {
        since,
        types: vec![],
    };
    let first = replay(ctx, &window, &quiet).await.unwrap();
    assert_eq!(
        (first.selected, first.processed, first.duplicate),
        (50, 50, 0),
        "{first:?}"
    );
    assert!(first.failed.is_empty() && first.unavailable.is_empty());
    for id in &missed {
        let entry = h.services.table.ledger_entry(id).await.unwrap().unwrap();
        assert_eq!(
            (entry.state, entry.attempts),
            (LedgerState::Done, 1),
            "{id}"
        );
    }
    for (n, customer) in customers.iter().enumerate() {
        let audit = h.services.table.audit_entries(customer).await.unwrap();
        let names: Vec<_> = audit.iter().filter(|e| e.change.field == "name").collect();
        assert_eq!(names.len(), 1, "customer {n}: the rename audited once");
        assert_eq!(names[0].change.to, "Name 4");
    }

    let again = replay(ctx, &window, &quiet).await.unwrap();
    assert_eq!(
        (again.selected, again.processed, again.duplicate),
        (50, 0, 50),
        "{again:?}"
    );

    // An event whose processing fails at Stripe is recorded as failed and listed by --failed.
    let broken = &customers[3];
    rename(&h, broken, "After the outage").await;
    let event = h.emulator.events().last().unwrap().event["id"]
        .as_str()
        .unwrap()
        .to_string();
    h.emulator
        .inject_fault(Fault::status(
            "GET",
            format!("/v1/customers/{broken}"),
            500,
            1_000,
        ))
        .unwrap();
    let one = replay(ctx, &Selection::Event(event.clone()), &quiet)
        .await
        .unwrap();
    assert_eq!(one.failed.len(), 1, "{one:?}");
    assert_eq!(one.failed[0].event, event);
    let failed = h.services.table.failed_events(10).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (failed[0].event_id.as_str(), failed[0].state),
        (event.as_str(), LedgerState::Failed)
    );
    assert!(
        failed[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("500") || e.contains("Stripe")),
        "{:?}",
        failed[0].last_error
    );

    let still = replay(ctx, &Selection::Failed, &quiet).await.unwrap();
    assert_eq!((still.selected, still.failed.len()), (1, 1), "{still:?}");

    h.emulator.clear_faults();
    let fixed = replay(ctx, &Selection::Failed, &quiet).await.unwrap();
    assert_eq!((fixed.selected, fixed.processed), (1, 1), "{fixed:?}");
    let entry = h
        .services
        .table
        .ledger_entry(&event)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((entry.state, entry.attempts), (LedgerState::Done, 3));
    let audit = h.services.table.audit_entries(broken).await.unwrap();
    assert!(audit
        .iter()
        .any(|e| e.change.to == "After the outage" && e.reference.as_deref() == Some(&*event)));
    let none = replay(ctx, &Selection::Failed, &quiet).await.unwrap();
    assert_eq!(none.selected, 0, "{none:?}");
}

#[tokio::test]
async fn replay_refuses_a_window_stripe_no_longer_keeps() {
    let h = Harness::new().await;
    let ctx = h.services.sync_context();
    let old = Selection::Since {
        since: h.services.clock.unix() - 31 * 86_400,
        types: vec![],
    };
    let refused = replay(ctx, &old, &quiet).await.unwrap_err();
    assert!(refused.to_string().contains("30 days"), "{refused}");
    let missing = replay(ctx, &Selection::Event("evt_missing".into()), &quiet)
        .await
        .unwrap();
    assert_eq!(missing.unavailable, vec!["evt_missing".to_string()]);
}

mod import {
    use super::*;
    use portico_testkit::stripe_emulator::NewCustomer;
    use shared::adopt::{import, ConflictKind, ImportOptions, Mapping};
    use shared::customer_link::USER_ID_METADATA;
    use shared::ids::UserId;
    use shared::store::{AuditSource, UserStore};

    fn customer(h: &Harness, n: usize, metadata: &[(&str, String)]) -> CustomerId {
        let mut new = NewCustomer::new(format!("import-{n}@example.test"));
        new.metadata = metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let created = h.emulator.create_customer(new).unwrap();
        CustomerId::parse(created["customer"]["id"].as_str().unwrap()).unwrap()
    }

    fn user(id: &str) -> UserId {
        UserId::parse(id).unwrap()
    }

    /// 300 customers: every kind of proof and conflict, customers without proof, deleted ones.
    struct Account {
        mapping: Mapping,
        /// (user, customer) pairs the import must link.
        proven: Vec<(String, CustomerId)>,
        /// (kind, customers) of every conflict it must report.
        conflicts: Vec<(ConflictKind, Vec<CustomerId>)>,
        /// A customer linked before the import, which it must leave alone.
        taken: CustomerId,
        /// A customer whose metadata names that customer's user: proven, but a conflict.
        claimant: CustomerId,
    }

    async fn account(h: &Harness) -> Account {
        let (mut pairs, mut proven, mut conflicts) = (Vec::new(), Vec::new(), Vec::new());
        let count = std::cell::Cell::new(0);
        let next = |metadata: &[(&str, String)]| {
            count.set(count.get() + 1);
            customer(h, count.get(), metadata)
        };
        // 150 named by Portico's key; five users named by a second customer too.
        let mut twins = Vec::new();
        for i in 0..150 {
            let u = format!("u-pk-{i}");
            let c = next(&[(USER_ID_METADATA, u.clone())]);
            if i < 5 {
                twins.push((u, c));
            } else {
                proven.push((u, c));
            }
        }
        for (u, first) in twins {
            let second = next(&[(USER_ID_METADATA, u)]);
            let mut both = vec![first, second];
            both.sort();
            conflicts.push((ConflictKind::CustomersNameOneUser, both));
        }
        // 30 named by a previous system's key.
        for i in 0..30 {
            let u = format!("u-legacy-{i}");
            proven.push((u.clone(), next(&[("legacy_uid", u)])));
        }
        // 60 known only to the mapping file.
        for i in 0..60 {
            let u = format!("u-map-{i}");
            let c = next(&[]);
            pairs.push((user(&u), c.clone()));
            proven.push((u, c));
        }
        // Metadata and mapping disagree.
        let clash = next(&[(USER_ID_METADATA, "u-clash-meta".into())]);
        pairs.push((user("u-clash-map"), clash.clone()));
        conflicts.push((ConflictKind::UsersNameOneCustomer, vec![clash]));
        // A user linked to another customer before the import.
        let taken = next(&[]);
        h.services
            .table
            .link_customer(
                &user("u-taken"),
                None,
                &taken,
                "2026-11-01T00:00:00.000000Z",
            )
            .await
            .unwrap();
        let claimant = next(&[(USER_ID_METADATA, "u-taken".into())]);
        conflicts.push((
            ConflictKind::UserHasOtherCustomer,
            vec![taken.clone(), claimant.clone()],
        ));
        // Deleted customers: three named by metadata (Stripe no longer lists them), one mapped.
        for i in 0..4 {
            let c = next(&[(USER_ID_METADATA, format!("u-gone-{i}"))]);
            h.stripe_api("DELETE", &format!("/v1/customers/{c}"), &[])
                .await;
            if i == 3 {
                pairs.push((user("u-map-deleted"), c.clone()));
                conflicts.push((ConflictKind::MappedCustomerDeleted, vec![c]));
            }
        }
        let missing = CustomerId::parse("cus_NeverExisted").unwrap();
        pairs.push((user("u-map-missing"), missing.clone()));
        conflicts.push((ConflictKind::MappedCustomerMissing, vec![missing]));
        // A metadata value that is no user id.
        let invalid = next(&[(USER_ID_METADATA, "x".repeat(300))]);
        conflicts.push((ConflictKind::InvalidUserId, vec![invalid]));
        // The rest have no proof at all (an email is none).
        while count.get() < 300 {
            next(&[]);
        }
        conflicts.sort();
        proven.sort_by(|a, b| a.1.cmp(&b.1));
        Account {
            mapping: Mapping::new(pairs),
            proven,
            conflicts,
            taken,
            claimant,
        }
    }

    fn kinds(report: &shared::adopt::ImportReport) -> Vec<(ConflictKind, Vec<CustomerId>)> {
        let mut found: Vec<_> = report
            .tally
            .conflicts
            .iter()
            .map(|c| (c.kind, c.customers.clone()))
            .collect();
        found.sort();
        found
    }

    #[tokio::test]
    async fn three_hundred_customers_are_linked_on_proof_resumed_after_a_fault_and_unchanged_again()
    {
        let h = Harness::new().await;
        let account = account(&h).await;
        let options = ImportOptions {
            metadata_key: "legacy_uid".into(),
            mapping: account.mapping.clone(),
            created_since: None,
        };
        let ctx = h.services.sync_context();

        // Stripe fails mid-run on the 118th proven customer, past its retries.
        let (_, stop_at) = &account.proven[117];
        h.emulator
            .inject_fault(Fault::status(
                "GET",
                format!("/v1/customers/{stop_at}"),
                500,
                1_000,
            ))
            .unwrap();
        let first = import(ctx, &options, &quiet).await.unwrap();
        assert!(!first.complete && first.stopped.is_some(), "{first:?}");
        // 236 proven: the 235 to link and the claimant of a user linked elsewhere.
        assert_eq!((first.by_metadata, first.by_mapping), (176, 60));
        let claimant_first = usize::from(account.claimant < *stop_at);
        assert_eq!(
            (first.tally.linked, first.remaining),
            (117, 236 - 117 - claimant_first),
            "{first:?}"
        );

        h.emulator.clear_faults();
        h.emulator.clear_requests();
        let resumed = import(ctx, &options, &quiet).await.unwrap();
        assert!(resumed.complete, "{resumed:?}");
        assert_eq!(resumed.scanned, 296, "deleted customers are not listed");
        // The mapped customers linked before the fault carry Portico's key now.
        assert_eq!(resumed.by_metadata + resumed.by_mapping, 236);
        assert_eq!(
            (
                resumed.tally.linked,
                resumed.tally.unchanged,
                resumed.tally.updated,
                resumed.tally.metadata_written,
                resumed.no_proof,
            ),
            (235, 0, 0, 90, 48),
            "{resumed:?}"
        );
        assert_eq!(kinds(&resumed), account.conflicts);
        assert!(
            resumed.tally.failed.is_empty(),
            "{:?}",
            resumed.tally.failed
        );
        // The resumed run synced only what the first had not: nothing before the fault again.
        let synced_again = h
            .stripe_calls()
            .into_iter()
            .filter(|c| c.starts_with("GET /v1/customers/cus_"))
            .filter_map(|c| c.strip_prefix("GET /v1/customers/").map(str::to_string))
            .filter(|id| account.proven.iter().any(|(_, c)| c.as_str() == id))
            .collect::<std::collections::BTreeSet<_>>();
        assert_eq!(synced_again.len(), 118);
        assert!(synced_again
            .iter()
            .all(|id| id.as_str() >= stop_at.as_str()));

        for (u, c) in &account.proven {
            let record = h.services.table.get_user(&user(u)).await.unwrap().unwrap();
            assert_eq!(record.customer_id.as_ref(), Some(c), "{u}");
            assert!(record.premium, "{u} is premium: the sync ran");
            let audit = h.services.table.audit_entries(c).await.unwrap();
            assert!(!audit.is_empty() && audit.iter().all(|e| e.source == AuditSource::Import));
            let stripe = h.stripe.retrieve_customer(c, &[]).await.unwrap();
            assert_eq!(stripe.metadata.get(USER_ID_METADATA), Some(u), "{u}");
        }
        let taken = h.services.table.get_user(&user("u-taken")).await.unwrap();
        assert_eq!(taken.unwrap().customer_id, Some(account.taken.clone()));
        for refused in [
            "u-pk-0",
            "u-clash-meta",
            "u-clash-map",
            "u-map-deleted",
            "u-gone-0",
        ] {
            let record = h.services.table.get_user(&user(refused)).await.unwrap();
            assert!(record.is_none(), "{refused} was linked");
        }

        let again = import(ctx, &options, &quiet).await.unwrap();
        assert!(again.complete);
        assert_eq!(
            (
                again.tally.linked,
                again.tally.unchanged,
                again.tally.updated,
                again.tally.metadata_written
            ),
            (0, 235, 0, 0),
            "{again:?}"
        );
        assert_eq!(kinds(&again), account.conflicts);
    }
}

mod reconcile {
    use super::*;
    use shared::clock::Clock;
    use shared::reconcile::{reconcile, ReconcileOptions};
    use shared::store::AuditSource;
    use shared::sync::{sync_customer, SyncTrigger};
    use std::time::Duration;

    #[tokio::test]
    async fn drift_no_webhook_reported_is_fixed_once_and_a_second_run_finds_nothing() {
        let mut h = Harness::new().await;
        h.services.clock = Clock::manual(Clock::system().now());
        let mut customers = Vec::new();
        for n in 0..30 {
            customers.push(h.subscribed_customer(&format!("drift-{n}")).await);
        }
        let ctx = h.services.sync_context();
        let webhook = SyncTrigger {
            source: AuditSource::Webhook,
            reference: None,
        };
        for customer in &customers {
            sync_customer(ctx, customer, &webhook, &()).await.unwrap();
        }
        let options = ReconcileOptions {
            stale_after: Duration::from_secs(6 * 3_600),
            batch: 100,
        };
        let fresh = reconcile(ctx, &options, &quiet).await.unwrap();
        assert_eq!(fresh.due, 0, "nothing is stale yet: {fresh:?}");

        // Webhook delivery paused, the changes made, the queued events dropped.
        h.emulator.pause_delivery();
        for customer in &customers[..20] {
            rename(&h, customer, "Edited in the Dashboard").await;
        }
        h.emulator.resume_delivery(true);
        h.services.clock.advance(Duration::from_secs(7 * 3_600));

        let first = reconcile(ctx, &options, &quiet).await.unwrap();
        assert_eq!(
            (
                first.due,
                first.resynced,
                first.drifted,
                first.changes,
                first.failed
            ),
            (30, 30, 20, 20, 0),
            "{first:?}"
        );
        for (n, customer) in customers.iter().enumerate() {
            let reconciled: Vec<_> = h
                .services
                .table
                .audit_entries(customer)
                .await
                .unwrap()
                .into_iter()
                .filter(|e| e.source == AuditSource::Reconcile)
                .collect();
            if n < 20 {
                assert_eq!(reconciled.len(), 1, "customer {n}");
                assert_eq!(reconciled[0].change.to, "Edited in the Dashboard");
            } else {
                assert!(reconciled.is_empty(), "customer {n} had no drift");
            }
        }
        let second = reconcile(ctx, &options, &quiet).await.unwrap();
        assert_eq!(second, Default::default(), "{second:?}");

        // A sync that fails is picked up by the next run although its state is fresh.
        let broken = &customers[25];
        h.emulator
            .inject_fault(Fault::status(
                "GET",
                format!("/v1/customers/{broken}"),
                500,
                1_000,
            ))
            .unwrap();
        rename(&h, broken, "Changed while Stripe failed").await;
        assert!(sync_customer(ctx, broken, &webhook, &()).await.is_err());
        let failing = reconcile(ctx, &options, &quiet).await.unwrap();
        assert_eq!(
            (failing.due, failing.failed_before, failing.failed),
            (1, 1, 1)
        );
        h.emulator.clear_faults();
        let repaired = reconcile(ctx, &options, &quiet).await.unwrap();
        assert_eq!(
            (repaired.due, repaired.failed_before, repaired.drifted),
            (1, 1, 1),
            "{repaired:?}"
        );
        let after = reconcile(ctx, &options, &quiet).await.unwrap();
        assert_eq!(after.due, 0, "the failure is cleared: {after:?}");
    }
}
