//! Import: an existing Stripe account's customers linked to their users, only on proof.
//!
//! A customer is linked to a user when (a) its metadata names the user (Portico's own key, or
//! the key a previous system wrote), or (b) the operator's mapping file (exported from their old
//! database) does. Never by email: emails are neither unique in Stripe nor proof of identity.
//! Everything that does not add up is reported, never resolved: a user already linked to another
//! customer, two customers proven for one user, one customer proven for two users, a mapping to
//! a customer that is missing or deleted, a metadata value that is no user id.
//!
//! A linked customer gets Portico's metadata key written when it lacks it (so later syncs, the
//! webhook's checkout proof and the portal find the user) and the same full sync as a portal
//! return, audited with source `import`. The run walks the proven customers in id order and
//! stores its cursor and tally in the table after each, so an interrupted run resumes where it
//! stopped with its report intact; a finished run leaves nothing, and running again reports every
//! link unchanged.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::customer_link::USER_ID_METADATA;
use crate::ids::{CustomerId, UserId};
use crate::store::{AuditSource, RunCursor, StoreError, UserStore};
use crate::stripe::{Customer, CustomerListParams, CustomerUpdateParams, Page, StripeClientError};
use crate::sync::{sync_customer, SyncContext, SyncError, SyncTrigger};

#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error("mapping file: {0}")]
    Mapping(String),
    #[error("listing Stripe's customers: {0}")]
    Stripe(#[from] StripeClientError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// User id → customer id pairs from the operator's old database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapping(Vec<(UserId, CustomerId)>);

impl Mapping {
    pub fn new(pairs: Vec<(UserId, CustomerId)>) -> Self {
        Self(pairs)
    }

    /// JSON (`{"user": "cus_…"}`, or `[{"user_id": …, "customer_id": …}]`) when the text starts
    /// with `{` or `[`, else CSV: `user_id,customer_id` a line, an optional header line, fields
    /// optionally in double quotes.
    pub fn parse(text: &str) -> Result<Self, AdoptError> {
        let trimmed = text.trim_start();
        let raw: Vec<(String, String)> = if trimmed.starts_with('{') || trimmed.starts_with('[') {
            parse_json(trimmed)?
        } else {
            parse_csv(text)?
        };
        let mut pairs = Vec::with_capacity(raw.len());
        for (n, (user, customer)) in raw.into_iter().enumerate() {
            let entry = n + 1;
            let user = UserId::parse(user)
                .map_err(|e| AdoptError::Mapping(format!("entry {entry}: {e}")))?;
            let customer = CustomerId::parse(customer)
                .map_err(|e| AdoptError::Mapping(format!("entry {entry}: {e}")))?;
            pairs.push((user, customer));
        }
        Ok(Self(pairs))
    }

    fn digest_input(&self) -> String {
        let mut pairs: Vec<String> = self
            .0
            .iter()
            .map(|(u, c)| format!("{u}\u{1f}{c}"))
            .collect();
        pairs.sort();
        pairs.join("\u{1e}")
    }
}

fn parse_json(text: &str) -> Result<Vec<(String, String)>, AdoptError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| AdoptError::Mapping(format!("JSON: {e}")))?;
    let text_of = |v: &Value, what: &str| {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| AdoptError::Mapping(format!("{what} must be a string")))
    };
    match value {
        Value::Object(map) => map
            .iter()
            .map(|(user, customer)| Ok((user.clone(), text_of(customer, user)?)))
            .collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(n, item)| {
                let field = |name: &str| text_of(&item[name], &format!("entry {}: {name}", n + 1));
                Ok((field("user_id")?, field("customer_id")?))
            })
            .collect(),
        _ => Err(AdoptError::Mapping(
            "JSON must be an object or an array".into(),
        )),
    }
}

/// One CSV line's fields; a field in double quotes may hold commas and `""`.
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("unterminated quote".into()),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(_) => return Err("text after a closing quote".into()),
            }
        } else {
            loop {
                match chars.next() {
                    Some(',') => break,
                    Some(c) => field.push(c),
                    None => {
                        fields.push(field.trim().to_string());
                        return Ok(fields);
                    }
                }
            }
            fields.push(field.trim().to_string());
        }
    }
}

fn parse_csv(text: &str) -> Result<Vec<(String, String)>, AdoptError> {
    let mut pairs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let fields =
            csv_fields(line).map_err(|e| AdoptError::Mapping(format!("line {}: {e}", n + 1)))?;
        let [user, customer] = <[String; 2]>::try_from(fields).map_err(|_| {
            AdoptError::Mapping(format!("line {}: expected user_id,customer_id", n + 1))
        })?;
        // A header names the columns instead of holding a customer id.
        if pairs.is_empty() && !customer.starts_with("cus_") && n == 0 {
            continue;
        }
        pairs.push((user, customer));
    }
    Ok(pairs)
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The metadata key that names the user; Portico's own key counts as proof as well.
    pub metadata_key: String,
    pub mapping: Mapping,
    /// Only customers created at or after this time (epoch seconds); mapped ones regardless.
    pub created_since: Option<i64>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            metadata_key: USER_ID_METADATA.into(),
            mapping: Mapping::default(),
            created_since: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    /// The user is linked in Portico to another customer already; theirs is kept.
    UserHasOtherCustomer,
    /// Two or more customers are proven for one user; none is linked.
    CustomersNameOneUser,
    /// One customer is proven for two or more users (metadata and mapping, or the mapping
    /// twice); it is not linked.
    UsersNameOneCustomer,
    /// The mapping names a customer Stripe does not know.
    MappedCustomerMissing,
    /// The mapping names a customer deleted in Stripe.
    MappedCustomerDeleted,
    /// A customer's metadata holds a value that is no user id Portico accepts.
    InvalidUserId,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Conflict {
    pub kind: ConflictKind,
    /// The users concerned (none for a metadata value that is no user id).
    pub users: Vec<String>,
    pub customers: Vec<CustomerId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportFailure {
    pub customer: CustomerId,
    pub error: String,
}

/// What the import did with the proven links, kept in the cursor between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Newly linked and synced.
    pub linked: usize,
    /// Linked before; the sync found nothing to change.
    pub unchanged: usize,
    /// Linked before; the sync found drift and recorded it.
    pub updated: usize,
    /// Customers given Portico's metadata key naming their user.
    pub metadata_written: usize,
    /// Conflicts found while linking (a user already linked elsewhere).
    pub conflicts: Vec<Conflict>,
    pub failed: Vec<ImportFailure>,
    /// The customer being linked when the run stopped: linked by this import even though the
    /// user's link exists when the next run retries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linking: Option<CustomerId>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// False when the run stopped early (see `stopped`); running again resumes.
    pub complete: bool,
    /// Why the run stopped early: Stripe or DynamoDB unavailable.
    pub stopped: Option<String>,
    /// Customers Stripe listed (deleted ones are not listed).
    pub scanned: usize,
    /// Proven links: by metadata, by the mapping (a link proven both ways counts once, as metadata).
    pub by_metadata: usize,
    pub by_mapping: usize,
    /// Listed customers with no proof of any user.
    pub no_proof: usize,
    /// Proven links left to do when the run stopped.
    pub remaining: usize,
    #[serde(flatten)]
    pub tally: Tally,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proof {
    Metadata,
    Mapping,
}

/// A customer with exactly one proven user.
#[derive(Debug, Clone)]
struct Candidate {
    customer: CustomerId,
    user: UserId,
    proof: Proof,
    /// Whether the customer lacks Portico's key naming the user.
    needs_metadata: bool,
}

/// The run's name: the options that decide what it links, so another import's cursor is
/// never resumed.
fn run_name(options: &ImportOptions) -> String {
    let input = format!(
        "{}\u{1d}{:?}\u{1d}{}",
        options.metadata_key,
        options.created_since,
        options.mapping.digest_input()
    );
    format!("import#{}", crate::ids::sha256_hex(input.as_bytes(), 12))
}

/// Imports as described in the module; `progress(done, total)` after each proven link.
pub async fn import(
    ctx: SyncContext<'_>,
    options: &ImportOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<ImportReport, AdoptError> {
    let listed = list_customers(ctx, options.created_since).await?;
    let mut report = ImportReport {
        scanned: listed.len(),
        ..Default::default()
    };
    let (candidates, mut conflicts) = prove(ctx, options, &listed, &mut report).await?;
    report.by_metadata = candidates
        .iter()
        .filter(|c| c.proof == Proof::Metadata)
        .count();
    report.by_mapping = candidates.len() - report.by_metadata;

    let run = run_name(options);
    let resumed = ctx.table.run_cursor(&run).await?;
    let (after, mut tally) = match &resumed {
        Some(cursor) => (
            Some(cursor.after.clone()),
            serde_json::from_str::<Tally>(&cursor.progress).map_err(|e| StoreError::Corrupt {
                key: format!("RUN#{run}"),
                reason: e.to_string(),
            })?,
        ),
        None => (None, Tally::default()),
    };
    let todo: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| after.as_deref().is_none_or(|a| c.customer.as_str() > a))
        .collect();
    if resumed.is_some() {
        tracing::info!(run = %run, left = todo.len(), "resuming an interrupted import");
    }
    let done_before = candidates.len() - todo.len();
    let trigger = SyncTrigger {
        source: AuditSource::Import,
        reference: Some(run.clone()),
    };
    let mut last_done = after.unwrap_or_default();
    for (n, candidate) in todo.iter().enumerate() {
        let stopped = link(ctx, candidate, &trigger, &mut tally).await.err();
        if stopped.is_none() {
            last_done = candidate.customer.to_string();
        }
        // Saved on a stop too: a metadata write that happened before it stays counted once,
        // and the candidate itself is retried.
        let cursor = RunCursor {
            after: last_done.clone(),
            progress: serde_json::to_string(&tally).map_err(|e| StoreError::Corrupt {
                key: format!("RUN#{run}"),
                reason: e.to_string(),
            })?,
            updated_at: ctx.clock.timestamp(),
        };
        ctx.table.save_run_cursor(&run, &cursor).await?;
        if let Some(stop) = stopped {
            tracing::warn!(run = %run, reason = %stop, "import stopped; run it again to resume");
            report.stopped = Some(stop);
            report.remaining = todo.len() - n;
            break;
        }
        progress(done_before + n + 1, candidates.len());
    }
    report.complete = report.stopped.is_none();
    if report.complete {
        ctx.table.delete_run_cursor(&run).await?;
    }
    conflicts.append(&mut tally.conflicts);
    conflicts.sort();
    tally.conflicts = conflicts;
    report.tally = tally;
    tracing::info!(
        scanned = report.scanned,
        linked = report.tally.linked,
        unchanged = report.tally.unchanged,
        updated = report.tally.updated,
        conflicts = report.tally.conflicts.len(),
        failed = report.tally.failed.len(),
        complete = report.complete,
        "import finished"
    );
    Ok(report)
}

async fn list_customers(
    ctx: SyncContext<'_>,
    created_since: Option<i64>,
) -> Result<Vec<Customer>, AdoptError> {
    let mut params = CustomerListParams {
        created_since,
        page: Page::full(None),
    };
    let mut customers: Vec<Customer> = Vec::new();
    loop {
        let page = ctx.stripe.list_customers(&params).await?;
        let last = page.data.last().map(|c| c.id.to_string());
        customers.extend(page.data);
        match last {
            Some(last) if page.has_more && params.page.starting_after.as_ref() != Some(&last) => {
                params.page.starting_after = Some(last);
            }
            _ => return Ok(customers),
        }
    }
}

/// The proven (customer, user) pairs, in customer id order, and the conflicts that rule others
/// out before anything is written.
async fn prove(
    ctx: SyncContext<'_>,
    options: &ImportOptions,
    listed: &[Customer],
    report: &mut ImportReport,
) -> Result<(Vec<Candidate>, Vec<Conflict>), AdoptError> {
    let mut conflicts = Vec::new();
    // customer → (users proven by metadata, users proven by the mapping)
    let mut proofs: BTreeMap<CustomerId, (BTreeSet<UserId>, BTreeSet<UserId>)> = BTreeMap::new();
    let mut portico_user: HashMap<CustomerId, Option<String>> = HashMap::new();
    for customer in listed {
        portico_user.insert(
            customer.id.clone(),
            customer.metadata.get(USER_ID_METADATA).cloned(),
        );
        let mut named = BTreeSet::new();
        let mut invalid = false;
        for key in [USER_ID_METADATA, options.metadata_key.as_str()] {
            match customer.metadata.get(key).filter(|v| !v.is_empty()) {
                None => {}
                Some(value) => match UserId::parse(value.clone()) {
                    Ok(user) => {
                        named.insert(user);
                    }
                    Err(_) => invalid = true,
                },
            }
        }
        if invalid {
            conflicts.push(Conflict {
                kind: ConflictKind::InvalidUserId,
                users: vec![],
                customers: vec![customer.id.clone()],
            });
            continue;
        }
        if !named.is_empty() {
            proofs.entry(customer.id.clone()).or_default().0 = named;
        }
    }
    let listed_ids: BTreeSet<&CustomerId> = listed.iter().map(|c| &c.id).collect();
    let mut unlisted_checked: HashMap<CustomerId, Option<ConflictKind>> = HashMap::new();
    for (user, customer) in &options.mapping.0 {
        if !listed_ids.contains(customer) {
            // Created before --created-since, deleted, or never there: ask Stripe.
            if !unlisted_checked.contains_key(customer) {
                let verdict = match ctx.stripe.retrieve_customer(customer, &[]).await {
                    Ok(found) => {
                        portico_user.insert(
                            found.id.clone(),
                            found.metadata.get(USER_ID_METADATA).cloned(),
                        );
                        if let Some(named) = found
                            .metadata
                            .get(USER_ID_METADATA)
                            .and_then(|u| UserId::parse(u.clone()).ok())
                        {
                            proofs.entry(found.id.clone()).or_default().0.insert(named);
                        }
                        None
                    }
                    Err(StripeClientError::Deleted { .. }) => {
                        Some(ConflictKind::MappedCustomerDeleted)
                    }
                    Err(e) if e.is_not_found() => Some(ConflictKind::MappedCustomerMissing),
                    Err(e) => return Err(e.into()),
                };
                unlisted_checked.insert(customer.clone(), verdict);
            }
            if let Some(Some(kind)) = unlisted_checked.get(customer) {
                conflicts.push(Conflict {
                    kind: *kind,
                    users: vec![user.to_string()],
                    customers: vec![customer.clone()],
                });
                continue;
            }
        }
        proofs
            .entry(customer.clone())
            .or_default()
            .1
            .insert(user.clone());
    }

    // One user per customer ...
    let mut by_user: BTreeMap<UserId, Vec<(CustomerId, Proof)>> = BTreeMap::new();
    for (customer, (metadata, mapping)) in &proofs {
        let users: BTreeSet<&UserId> = metadata.iter().chain(mapping.iter()).collect();
        if users.len() > 1 {
            conflicts.push(Conflict {
                kind: ConflictKind::UsersNameOneCustomer,
                users: users.iter().map(|u| u.to_string()).collect(),
                customers: vec![customer.clone()],
            });
            continue;
        }
        if let Some(user) = users.into_iter().next() {
            let proof = if metadata.contains(user) {
                Proof::Metadata
            } else {
                Proof::Mapping
            };
            by_user
                .entry(user.clone())
                .or_default()
                .push((customer.clone(), proof));
        }
    }
    // ... and one customer per user.
    let mut candidates = Vec::new();
    for (user, customers) in by_user {
        if customers.len() > 1 {
            conflicts.push(Conflict {
                kind: ConflictKind::CustomersNameOneUser,
                users: vec![user.to_string()],
                customers: customers.into_iter().map(|(c, _)| c).collect(),
            });
            continue;
        }
        if let Some((customer, proof)) = customers.into_iter().next() {
            let needs_metadata =
                portico_user.get(&customer).and_then(Option::as_deref) != Some(user.as_str());
            candidates.push(Candidate {
                customer,
                user,
                proof,
                needs_metadata,
            });
        }
    }
    candidates.sort_by(|a, b| a.customer.cmp(&b.customer));
    let proven: BTreeSet<&CustomerId> = proofs.keys().collect();
    report.no_proof = listed
        .iter()
        .filter(|c| !proven.contains(&c.id))
        .filter(|c| !conflicts.iter().any(|k| k.customers.contains(&c.id)))
        .count();
    Ok((candidates, conflicts))
}

/// Links and syncs one proven pair into `tally`. `Err` (a reason) when the run must stop
/// because Stripe or DynamoDB is unavailable; the pair is then retried by the next run (only a
/// metadata write it already made is counted).
async fn link(
    ctx: SyncContext<'_>,
    candidate: &Candidate,
    trigger: &SyncTrigger,
    tally: &mut Tally,
) -> Result<(), String> {
    let (customer, user) = (&candidate.customer, &candidate.user);
    let stored = ctx
        .table
        .get_user(user)
        .await
        .map_err(|e| format!("DynamoDB: {e}"))?;
    let linked = stored.and_then(|u| u.customer_id);
    if let Some(other) = linked.as_ref().filter(|l| *l != customer) {
        tally.conflicts.push(Conflict {
            kind: ConflictKind::UserHasOtherCustomer,
            users: vec![user.to_string()],
            customers: vec![other.clone(), customer.clone()],
        });
        return Ok(());
    }
    let failed = |tally: &mut Tally, error: String| {
        tally.failed.push(ImportFailure {
            customer: customer.clone(),
            error,
        });
    };
    if candidate.needs_metadata {
        let mut params = CustomerUpdateParams::default();
        params
            .metadata
            .insert(USER_ID_METADATA.into(), user.to_string());
        match ctx.stripe.update_customer(customer, &params).await {
            Ok(_) => tally.metadata_written += 1,
            Err(e) if stops_the_run(&e) => return Err(format!("Stripe: {e}")),
            Err(e) => {
                failed(tally, e.to_string());
                return Ok(());
            }
        }
    }
    let newly = linked.is_none() || tally.linking.as_ref() == Some(customer);
    if linked.is_none() {
        tally.linking = Some(customer.clone());
        let now = ctx.clock.timestamp();
        let kept = ctx
            .table
            .link_customer(user, None, customer, &now)
            .await
            .map_err(|e| format!("DynamoDB: {e}"))?;
        if kept != *customer {
            // Linked elsewhere between our read and our write (the user's first portal visit).
            tally.linking = None;
            tally.conflicts.push(Conflict {
                kind: ConflictKind::UserHasOtherCustomer,
                users: vec![user.to_string()],
                customers: vec![kept, customer.clone()],
            });
            return Ok(());
        }
    }
    let synced = sync_customer(ctx, customer, trigger, &()).await;
    if !matches!(&synced, Err(SyncError::Stripe(e)) if stops_the_run(e))
        && !matches!(&synced, Err(SyncError::Store(_)))
    {
        tally.linking = None;
    }
    match synced {
        Ok(_) if newly => tally.linked += 1,
        Ok(outcome) if outcome.changes.is_empty() => tally.unchanged += 1,
        Ok(_) => tally.updated += 1,
        Err(SyncError::Stripe(e)) if stops_the_run(&e) => return Err(format!("Stripe: {e}")),
        Err(SyncError::Store(e)) => return Err(format!("DynamoDB: {e}")),
        Err(e) => failed(tally, e.to_string()),
    }
    Ok(())
}

/// An outage, not this customer's problem: going on would fail every next customer too.
fn stops_the_run(error: &StripeClientError) -> bool {
    error.is_retryable() || matches!(error, StripeClientError::Budget(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_parse_from_csv_with_a_header_and_quotes_and_from_json() {
        let csv = "user_id,customer_id\r\nu-1,cus_A\n\"u,2\",\"cus_B\"\n\n";
        let parsed = Mapping::parse(csv).unwrap();
        assert_eq!(
            parsed.0,
            vec![
                (
                    UserId::parse("u-1").unwrap(),
                    CustomerId::parse("cus_A").unwrap()
                ),
                (
                    UserId::parse("u,2").unwrap(),
                    CustomerId::parse("cus_B").unwrap()
                ),
            ]
        );
        let object = Mapping::parse(r#"{"u-1": "cus_A", "u,2": "cus_B"}"#).unwrap();
        let array = Mapping::parse(
            r#"[{"user_id": "u-1", "customer_id": "cus_A"}, {"user_id": "u,2", "customer_id": "cus_B"}]"#,
        )
        .unwrap();
        // A JSON object has no order: compare it as a set.
        let sorted = |m: &Mapping| {
            let mut pairs = m.0.clone();
            pairs.sort();
            pairs
        };
        assert_eq!(sorted(&object), sorted(&parsed));
        assert_eq!(array, parsed);
        for bad in [
            "u-1,cus_A\nu-2,not-a-customer",
            "u-1,cus_A,extra",
            "\"u-1,cus_A",
            r#"{"u-1": 7}"#,
            r#"[{"user_id": "u-1"}]"#,
        ] {
            assert!(Mapping::parse(bad).is_err(), "{bad}");
        }
    }
}
