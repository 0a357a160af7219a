//! `portal-config-cli apply`, run as a process against the local AWS stack and the emulator, as `make dev` and
//! a deploy run it: the first apply creates, the second changes nothing.

use std::path::Path;
use std::process::{Command, Stdio};

use portico_testkit::Harness;
use serde_json::{json, Value};
use shared::portal::Workflow;

/// The CLI as `make portal-config` runs it, against this harness's table, secret and emulator.
fn command(h: &Harness, file: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_portal-config-cli"));
    command
        .args(["apply", "--file"])
        .arg(file)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env(
            "AWS_ENDPOINT_URL_DYNAMODB",
            shared::testing::dynamodb::endpoint(),
        )
        .env(
            "AWS_ENDPOINT_URL_SECRETS_MANAGER",
            shared::testing::moto::endpoint(),
        )
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("TABLE_NAME", &h.stack.table_name)
        .env("SECRET_ID", &h.stack.secret_id)
        .env("STRIPE_API_BASE", h.emulator.base_url());
    command
}

fn apply(h: &Harness, file: &Path) -> Value {
    let output = command(h, file).output().expect("run portal-config-cli");
    assert!(
        output.status.success(),
        "apply failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("a JSON report")
}

fn outcomes(report: &Value, part: &str) -> Vec<String> {
    report[part]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.get("outcome").unwrap_or(v).as_str().unwrap().to_string())
        .collect()
}

// Multi-threaded: the in-process emulator must keep serving while this thread waits for the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_the_file_twice_changes_nothing_the_second_time() {
    let h = Harness::new().await;
    let file = shared::testing::workspace_root().join("portal-config.json");
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();

    let first = apply(&h, &file);
    assert!(
        outcomes(&first, "configurations")
            .iter()
            .all(|o| o == "created"),
        "{first}"
    );
    assert!(
        outcomes(&first, "workflows").iter().all(|o| o == "updated"),
        "{first}"
    );
    // What the file says is what Stripe and the table now hold.
    let cancellation = first["configurations"]["cancellation"]["id"]
        .as_str()
        .unwrap();
    let stripe = h.emulator.object(cancellation).unwrap();
    assert_eq!(stripe["metadata"]["portico_key"], "cancellation");
    assert_eq!(
        stripe["business_profile"]["headline"],
        spec["configurations"]["cancellation"]["business_profile"]["headline"]
    );
    assert_eq!(stripe["features"]["subscription_update"]["enabled"], false);
    let mapped = h.services.table.workflow_mapping().await.unwrap().records;
    assert_eq!(mapped.len(), Workflow::ALL.len());
    let cancel = mapped
        .iter()
        .find(|r| r.workflow == Workflow::CancellationProcess)
        .unwrap();
    assert_eq!(
        cancel
            .settings
            .configuration_id
            .as_ref()
            .map(|c| c.as_str()),
        Some(cancellation)
    );

    h.emulator.clear_requests();
    let second = apply(&h, &file);
    assert!(
        outcomes(&second, "configurations")
            .iter()
            .chain(&outcomes(&second, "workflows"))
            .all(|o| o == "unchanged"),
        "{second}"
    );
    assert_eq!(
        second["configurations"]["cancellation"]["id"],
        first["configurations"]["cancellation"]["id"]
    );
    let writes: Vec<String> = h
        .stripe_calls()
        .into_iter()
        .filter(|c| !c.starts_with("GET"))
        .collect();
    assert!(
        writes.is_empty(),
        "second apply wrote to Stripe: {writes:?}"
    );
    assert_eq!(
        h.services.table.workflow_mapping().await.unwrap().records,
        mapped
    );

    // A changed file updates just what changed.
    let mut changed = spec.clone();
    changed["configurations"]["cancellation"]["features"]["invoice_history"] =
        json!({"enabled": false});
    let path = h.stack.dir.join("portal-config.json");
    std::fs::write(&path, changed.to_string()).unwrap();
    let third = apply(&h, &path);
    assert_eq!(
        third["configurations"]["cancellation"]["outcome"],
        "updated"
    );
    assert_eq!(third["configurations"]["default"]["outcome"], "unchanged");
    assert_eq!(
        h.emulator.object(cancellation).unwrap()["features"]["invoice_history"]["enabled"],
        false
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_applies_at_once_create_each_configuration_once() {
    let h = Harness::new().await;
    let file = shared::testing::workspace_root().join("portal-config.json");
    // Both list the configurations before either creates one (the emulator parks both lists
    // until both have arrived), so both find nothing and both create: the content-derived
    // idempotency key makes Stripe answer the second with the first one's configuration.
    let lists = h.emulator.hold("GET", "/v1/billing_portal/configurations");
    let runs: Vec<_> = (0..2)
        .map(|_| {
            command(&h, &file)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        lists.wait_for_arrivals(2),
    )
    .await
    .expect("both applies list the configurations");
    lists.release();
    let reports: Vec<Value> = runs
        .into_iter()
        .map(|run| {
            let output = run.wait_with_output().expect("wait");
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            serde_json::from_slice(&output.stdout).expect("a JSON report")
        })
        .collect();
    let ids = |report: &Value| {
        ["default", "cancellation"].map(|key| report["configurations"][key]["id"].clone())
    };
    assert_eq!(ids(&reports[0]), ids(&reports[1]));
    let all = h
        .stripe
        .list_portal_configurations(&Default::default())
        .await
        .unwrap()
        .data;
    for key in ["default", "cancellation"] {
        let tagged = all
            .iter()
            .filter(|c| c.metadata.get("portico_key").map(String::as_str) == Some(key))
            .count();
        assert_eq!(tagged, 1, "configurations tagged {key}");
    }
    assert_eq!(
        h.services
            .table
            .workflow_mapping()
            .await
            .unwrap()
            .records
            .len(),
        Workflow::ALL.len()
    );
}

#[test]
fn a_bad_file_is_refused_before_anything_is_applied() {
    let dir = std::env::temp_dir().join(shared::testing::unique_name("portal-config-bad"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.json");
    std::fs::write(
        &path,
        r#"{"configurations": {"a": {"features": {"subscription_cancel": {"enabled": true, "mode": "later"}}}}}"#,
    )
    .unwrap();
    // No AWS or Stripe settings at all: it must fail on the file, not on a connection.
    let output = Command::new(env!("CARGO_BIN_EXE_portal-config-cli"))
        .args(["apply", "--file"])
        .arg(&path)
        .env_clear()
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("configurations.a.features.subscription_cancel.mode"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
