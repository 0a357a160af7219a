//! The secrets cache against moto's Secrets Manager.

use std::time::Duration;

use shared::secrets::{SecretsError, SecretsProvider};
use shared::testing::{secret_json, TestStack, STRIPE_TEST_KEY, WEBHOOK_TEST_SECRET};

async fn put_value(stack: &TestStack, value: &str) {
    aws_sdk_secretsmanager::Client::new(&stack.aws)
        .put_secret_value()
        .secret_id(&stack.secret_id)
        .secret_string(value)
        .send()
        .await
        .unwrap();
}

fn provider(stack: &TestStack, ttl: Duration) -> SecretsProvider {
    SecretsProvider::new(
        aws_sdk_secretsmanager::Client::new(&stack.aws),
        &stack.secret_id,
        ttl,
    )
}

#[tokio::test]
async fn reads_the_secret_from_secrets_manager() {
    let stack = TestStack::new().await;
    let secrets = provider(&stack, Duration::from_secs(300))
        .get()
        .await
        .unwrap();
    assert_eq!(secrets.stripe_secret_key.expose(), STRIPE_TEST_KEY);
    assert_eq!(
        secrets.webhook_signing_secrets[0].expose(),
        WEBHOOK_TEST_SECRET
    );
}

#[tokio::test]
async fn within_the_ttl_the_cached_copy_is_used_and_refresh_forces_a_read() {
    let stack = TestStack::new().await;
    let provider = provider(&stack, Duration::from_secs(3600));
    provider.get().await.unwrap();
    put_value(
        &stack,
        &secret_json(
            "sk_test_FAKE_rotated",
            &["whsec_FAKE_new", WEBHOOK_TEST_SECRET],
        ),
    )
    .await;

    let cached = provider.get().await.unwrap();
    assert_eq!(
        cached.stripe_secret_key.expose(),
        STRIPE_TEST_KEY,
        "served from the cache"
    );

    let fresh = provider.refresh().await.unwrap();
    assert_eq!(fresh.stripe_secret_key.expose(), "sk_test_FAKE_rotated");
    assert_eq!(fresh.webhook_signing_secrets.len(), 2);
    // The refreshed copy is what later calls see.
    assert_eq!(
        provider.get().await.unwrap().stripe_secret_key.expose(),
        "sk_test_FAKE_rotated"
    );
}

#[tokio::test]
async fn forced_refreshes_are_rate_limited() {
    let stack = TestStack::new().await;
    let provider = provider_with_interval(&stack, Duration::from_secs(3600));
    provider.get().await.unwrap();
    put_value(
        &stack,
        &secret_json("sk_test_FAKE_rotated", &[WEBHOOK_TEST_SECRET]),
    )
    .await;
    // A flood of bad signatures right after a read costs no further read.
    for _ in 0..3 {
        assert_eq!(
            provider.refresh().await.unwrap().stripe_secret_key.expose(),
            STRIPE_TEST_KEY
        );
    }
    let unlimited = provider_with_interval(&stack, Duration::ZERO);
    unlimited.get().await.unwrap();
    assert_eq!(
        unlimited
            .refresh()
            .await
            .unwrap()
            .stripe_secret_key
            .expose(),
        "sk_test_FAKE_rotated"
    );
}

fn provider_with_interval(stack: &TestStack, interval: Duration) -> SecretsProvider {
    provider(stack, Duration::from_secs(3600)).with_refresh_min_interval(interval)
}

#[tokio::test]
async fn an_expired_copy_is_refetched() {
    let stack = TestStack::new().await;
    let provider = provider(&stack, Duration::ZERO);
    provider.get().await.unwrap();
    put_value(
        &stack,
        &secret_json("sk_test_FAKE_after_ttl", &[WEBHOOK_TEST_SECRET]),
    )
    .await;
    assert_eq!(
        provider.get().await.unwrap().stripe_secret_key.expose(),
        "sk_test_FAKE_after_ttl"
    );
}

#[tokio::test]
async fn a_malformed_secret_is_an_error_that_names_the_field() {
    let stack = TestStack::new().await;
    put_value(&stack, r#"{"stripe_secret_key": "sk_test_FAKE_only"}"#).await;
    let err = provider(&stack, Duration::ZERO).get().await.unwrap_err();
    assert!(
        matches!(
            err,
            SecretsError::MissingField {
                field: "webhook_signing_secrets"
            }
        ),
        "{err}"
    );
    assert!(!format!("{err} {err:?}").contains("FAKE"));

    put_value(&stack, "{not json").await;
    let err = provider(&stack, Duration::ZERO).get().await.unwrap_err();
    assert!(matches!(err, SecretsError::NotJson { .. }), "{err}");
}

#[tokio::test]
async fn a_missing_secret_is_unavailable_not_a_panic() {
    let stack = TestStack::new().await;
    let provider = SecretsProvider::new(
        aws_sdk_secretsmanager::Client::new(&stack.aws),
        "portico/does-not-exist",
        Duration::ZERO,
    );
    let err = provider.get().await.unwrap_err();
    assert!(matches!(err, SecretsError::Unavailable { .. }), "{err}");
}

#[tokio::test]
async fn the_values_never_show_in_debug_or_display() {
    let stack = TestStack::new().await;
    let secrets = provider(&stack, Duration::from_secs(60))
        .get()
        .await
        .unwrap();
    let printed = format!(
        "{secrets:?} {} {}",
        secrets.stripe_secret_key, secrets.webhook_signing_secrets[0]
    );
    assert!(
        !printed.contains(STRIPE_TEST_KEY) && !printed.contains(WEBHOOK_TEST_SECRET),
        "{printed}"
    );
}
