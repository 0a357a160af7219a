//! Reports for a person (aligned lines) or a program (`--json`).

use serde::Serialize;
use shared::adopt::ImportReport;
use shared::reconcile::ReconcileReport;
use shared::support::Erasure;
use shared::webhook::replay::ReplayReport;

pub fn render<T: Serialize>(
    report: &T,
    json: bool,
    human: fn(&T) -> String,
) -> Result<String, String> {
    if json {
        serde_json::to_string_pretty(report).map_err(|e| e.to_string())
    } else {
        Ok(human(report))
    }
}

fn line(out: &mut String, label: &str, value: impl std::fmt::Display) {
    out.push_str(&format!("  {label:<14} {value}\n"));
}

pub fn replay(r: &ReplayReport) -> String {
    let mut out = String::from("replay\n");
    line(&mut out, "selected", r.selected);
    line(&mut out, "processed", r.processed);
    line(&mut out, "duplicate", r.duplicate);
    line(&mut out, "ignored", r.ignored);
    line(&mut out, "in progress", r.in_progress);
    line(&mut out, "failed", r.failed.len());
    for f in &r.failed {
        out.push_str(&format!("    {} {}: {}\n", f.event, f.event_type, f.error));
    }
    line(&mut out, "unavailable", r.unavailable.len());
    for id in &r.unavailable {
        out.push_str(&format!("    {id} (older than Stripe's 30 days)\n"));
    }
    out.trim_end().to_string()
}

pub fn import(r: &ImportReport) -> String {
    let mut out = String::from(if r.complete {
        "import complete\n"
    } else {
        "import stopped early: run it again to resume\n"
    });
    if let Some(why) = &r.stopped {
        line(&mut out, "stopped by", why);
    }
    line(&mut out, "scanned", r.scanned);
    line(&mut out, "by metadata", r.by_metadata);
    line(&mut out, "by mapping", r.by_mapping);
    line(&mut out, "linked", r.tally.linked);
    line(&mut out, "unchanged", r.tally.unchanged);
    line(&mut out, "updated", r.tally.updated);
    line(&mut out, "metadata set", r.tally.metadata_written);
    line(&mut out, "no proof", r.no_proof);
    if !r.complete {
        line(&mut out, "remaining", r.remaining);
    }
    line(&mut out, "conflicts", r.tally.conflicts.len());
    for c in &r.tally.conflicts {
        let kind = serde_json::to_value(c.kind).unwrap_or_default();
        let customers: Vec<&str> = c.customers.iter().map(|c| c.as_str()).collect();
        out.push_str(&format!(
            "    {}: users [{}] customers [{}]\n",
            kind.as_str().unwrap_or_default(),
            c.users.join(", "),
            customers.join(", ")
        ));
    }
    line(&mut out, "failed", r.tally.failed.len());
    for f in &r.tally.failed {
        out.push_str(&format!("    {}: {}\n", f.customer, f.error));
    }
    out.trim_end().to_string()
}

pub fn reconcile(r: &ReconcileReport) -> String {
    let mut out = String::from("reconcile\n");
    line(&mut out, "due", r.due);
    line(&mut out, "failed before", r.failed_before);
    line(&mut out, "re-synced", r.resynced);
    line(&mut out, "drifted", r.drifted);
    line(&mut out, "changes", r.changes);
    line(&mut out, "failed", r.failed);
    line(&mut out, "deferred", r.deferred);
    out.trim_end().to_string()
}

pub fn erase(e: &Erasure) -> String {
    let (label, t) = match e {
        Erasure::Erased(t) => ("erased", t),
        Erasure::AlreadyErased(t) => ("already erased", t),
    };
    let mut out = format!("erase: {label}\n");
    line(&mut out, "erasure id", &t.erasure_id);
    line(&mut out, "by", &t.actor);
    line(&mut out, "at", &t.erased_at);
    line(
        &mut out,
        "Stripe customer deleted",
        t.stripe_customer_deleted,
    );
    line(&mut out, "items deleted", t.items_deleted);
    out.trim_end().to_string()
}
