//! The emulator clock: moving it forward runs what Stripe would run on the way, in time
//! order: subscriptions whose `cancel_at` passes end (`customer.subscription.deleted`);
//! active ones renew at period end (next period, a new invoice created, finalized and paid,
//! or `past_due` with `invoice.payment_failed` when the charge is declined).

use crate::error::{EmulatorError, EmulatorResult};
use crate::object::Fields;
use crate::resources::subscriptions::{self, period_end};
use crate::server::{mutate, Shared};
use crate::state::{Ctx, State};
use serde_json::{json, Value};

/// Statuses that renew at period end.
const RENEWING: &[&str] = &["active", "trialing", "past_due"];
/// A guard against runaway loops (a daily price advanced by decades).
const MAX_STEPS: usize = 10_000;

#[derive(Clone, Copy)]
enum Due {
    Cancel,
    Renew,
}

/// The earliest subscription change due at or before `target`.
fn next_due(st: &State, target: i64) -> EmulatorResult<Option<(i64, String, Due)>> {
    let mut next: Option<(i64, String, Due)> = None;
    for sub in st.subscriptions.iter() {
        let status = sub.str_field("status")?;
        if !RENEWING.contains(&status) {
            continue;
        }
        let Some(end) = period_end(sub).as_i64() else {
            continue;
        };
        let due = match sub.opt_i64_field("cancel_at")? {
            Some(c) if c <= end => (c, Due::Cancel),
            _ => (end, Due::Renew),
        };
        if due.0 <= target && next.as_ref().is_none_or(|n| due.0 < n.0) {
            next = Some((due.0, sub.id()?.to_string(), due.1));
        }
    }
    Ok(next)
}

/// Moves the clock to `target` (unix seconds), running what falls due on the way. Returns
/// `{now, happened: [{at, subscription, action}]}`.
pub(crate) fn advance_to(shared: &Shared, target: i64) -> EmulatorResult<Value> {
    advance(shared, Some(target), 0)
}

/// Moves the clock forward by `seconds`.
pub(crate) fn advance_by(shared: &Shared, seconds: i64) -> EmulatorResult<Value> {
    if seconds < 0 {
        return Err(EmulatorError::invalid_param(
            "seconds",
            "The emulator clock can only move forward.",
        ));
    }
    advance(shared, None, seconds)
}

fn advance(shared: &Shared, to: Option<i64>, by: i64) -> EmulatorResult<Value> {
    // Automatic actions carry no request in their events.
    let ctx = Ctx {
        base_url: shared.base_url.clone(),
        ..Default::default()
    };
    mutate(shared, |st| {
        let target = to.unwrap_or_else(|| st.now() + by);
        if target < st.now() {
            return Err(EmulatorError::invalid_param(
                "to",
                "The emulator clock can only move forward.",
            ));
        }
        let mut happened = Vec::new();
        for _ in 0..MAX_STEPS {
            let Some((at, id, due)) = next_due(st, target)? else {
                break;
            };
            // Events of this step carry the time it happened.
            let at = at.max(st.now());
            st.clock_offset += at - st.now();
            let action = match due {
                Due::Cancel => {
                    subscriptions::end_scheduled(st, &ctx, &id)?;
                    "canceled"
                }
                Due::Renew => {
                    let sub = subscriptions::renew(st, &ctx, &id)?;
                    if sub["status"] == "past_due" {
                        "renewed_past_due"
                    } else {
                        "renewed"
                    }
                }
            };
            happened.push(json!({"at": at, "subscription": id, "action": action}));
        }
        st.clock_offset += target - st.now();
        Ok(json!({"now": st.now(), "happened": happened}))
    })
}
