//! The emulator's world: one collection per resource, the event log and the emulator clock.
//! Objects are kept in their Stripe JSON shape, so responses, events and the state file
//! all serialise the same value.

use crate::error::{EmulatorError, EmulatorResult};
use crate::ids::new_id;
use crate::object::Fields;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Default API version of the emulated account (Stripe renders events in it).
pub const DEFAULT_API_VERSION: &str = "2026-07-29.dahlia";

/// Rows in insertion order; Stripe lists newest first, which is this order reversed.
///
/// Each object is shared (`Arc`): a request's all-or-nothing snapshot of the state copies
/// pointers, and a write copies only the objects it changes ([`Collection::get_mut`]), instead of
/// every object of every collection on every request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Collection {
    order: Vec<String>,
    rows: HashMap<String, Arc<Value>>,
}

impl Collection {
    /// Adds or replaces the object with `v`'s `id`; an object without one is an emulator bug.
    pub fn insert(&mut self, v: Value) -> EmulatorResult<()> {
        let id = v.id()?.to_string();
        self.put(id, v);
        Ok(())
    }

    fn put(&mut self, id: String, v: Value) {
        if self.rows.insert(id.clone(), Arc::new(v)).is_none() {
            self.order.push(id);
        }
    }

    pub fn get(&self, id: &str) -> Option<&Value> {
        self.rows.get(id).map(|v| &**v)
    }

    /// The object to change in place; copied first if a snapshot still shares it.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Value> {
        self.rows.get_mut(id).map(Arc::make_mut)
    }

    /// Oldest first (the order of creation).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Value> {
        self.order
            .iter()
            .filter_map(|id| self.rows.get(id).map(|v| &**v))
    }

    pub fn newest_first(&self) -> impl Iterator<Item = &Value> {
        self.iter().rev()
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// Who caused a change: the API request (for `event.request`) and where the emulator lives.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    pub request_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub base_url: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// Seconds added to real time; a later task moves it (test clocks).
    pub clock_offset: i64,
    pub api_version: String,
    pub customers: Collection,
    pub payment_methods: Collection,
    /// Stripe's test tokens (`pm_card_visa`, ...): retrievable, cloned on attach, never listed.
    pub pm_templates: Collection,
    pub subscriptions: Collection,
    pub invoices: Collection,
    pub prices: Collection,
    pub products: Collection,
    pub portal_configurations: Collection,
    pub portal_sessions: Collection,
    pub checkout_sessions: Collection,
    /// Per checkout session: its line items and subscription_data, for completing it later.
    pub checkout_extras: HashMap<String, Value>,
    pub events: Collection,
    /// Pending and invoiced invoice items (prorations), `ii_...`.
    #[serde(default)]
    pub invoice_items: Collection,
    /// One-time payments (`payment`-mode Checkout) and their refunds.
    #[serde(default)]
    pub payment_intents: Collection,
    #[serde(default)]
    pub charges: Collection,
    #[serde(default)]
    pub refunds: Collection,
    /// Coupons (ids chosen by their creator, no prefix) and the discounts made from them.
    #[serde(default)]
    pub coupons: Collection,
    #[serde(default)]
    pub discounts: Collection,
    /// Portal session id → when its URL was first visited (sessions expire unvisited).
    #[serde(default)]
    pub portal_visits: HashMap<String, i64>,
    /// Sequence of the last event; events are numbered 1, 2, ... in the order they happened.
    pub event_seq: u64,
}

/// One recorded event with its delivery order.
#[derive(Debug, Clone, PartialEq)]
pub struct EmulatorEvent {
    pub sequence: u64,
    pub event: Value,
}

impl State {
    pub fn new(api_version: &str) -> EmulatorResult<Self> {
        let mut s = State {
            api_version: api_version.to_string(),
            ..Default::default()
        };
        crate::seed::seed(&mut s)?;
        Ok(s)
    }

    pub fn now(&self) -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp() + self.clock_offset
    }

    /// The table holding ids with this prefix (for expansion and generic lookups).
    pub fn table_for(&self, id: &str) -> Option<&Collection> {
        if self.coupons.get(id).is_some() {
            return Some(&self.coupons);
        }
        let t = match id.split_once('_').map(|(p, _)| p)? {
            "cus" => &self.customers,
            "pm" => {
                if self.payment_methods.get(id).is_some() {
                    &self.payment_methods
                } else {
                    &self.pm_templates
                }
            }
            "sub" => &self.subscriptions,
            "in" => &self.invoices,
            "ii" => &self.invoice_items,
            "price" => &self.prices,
            "prod" => &self.products,
            "bpc" => &self.portal_configurations,
            "bps" => &self.portal_sessions,
            "cs" => &self.checkout_sessions,
            "pi" => &self.payment_intents,
            "ch" => &self.charges,
            "re" => &self.refunds,
            "di" => &self.discounts,
            "evt" => &self.events,
            _ => return None,
        };
        Some(t)
    }

    pub fn lookup(&self, id: &str) -> Option<&Value> {
        self.table_for(id)?.get(id)
    }

    /// A live (not deleted) customer or 404 naming `param`.
    pub fn customer(&self, id: &str, param: &str) -> EmulatorResult<&Value> {
        match self.customers.get(id) {
            Some(c) if c["deleted"] != json!(true) => Ok(c),
            _ => Err(EmulatorError::no_such("customer", id, param)),
        }
    }

    pub fn customer_mut(&mut self, id: &str, param: &str) -> EmulatorResult<&mut Value> {
        match self.customers.get_mut(id) {
            Some(c) if c["deleted"] != json!(true) => Ok(c),
            _ => Err(EmulatorError::no_such("customer", id, param)),
        }
    }

    /// Records an event with a snapshot of `object` as it is now.
    pub fn emit(&mut self, ctx: &Ctx, kind: &str, object: &Value, previous: Option<Value>) {
        self.event_seq += 1;
        let id = new_id("evt_");
        let mut data = Map::new();
        data.insert("object".into(), object.clone());
        if let Some(p) = previous {
            data.insert("previous_attributes".into(), p);
        }
        let event = json!({
            "id": id,
            "object": "event",
            "api_version": self.api_version,
            "created": self.now(),
            "data": data,
            "livemode": false,
            "pending_webhooks": 0,
            "request": {"id": ctx.request_id, "idempotency_key": ctx.idempotency_key},
            "type": kind,
        });
        self.events.put(id, event);
    }

    pub fn events_in_order(&self) -> Vec<EmulatorEvent> {
        self.events
            .iter()
            .enumerate()
            .map(|(i, e)| EmulatorEvent {
                sequence: i as u64 + 1,
                event: e.clone(),
            })
            .collect()
    }
}

/// Stripe's `previous_attributes`: the old values of what changed; nested hashes list only
/// their changed keys, and a key that did not exist before shows as `null`.
pub fn previous_attributes(old: &Value, new: &Value) -> Value {
    let mut out = Map::new();
    if let (Some(o), Some(n)) = (old.as_object(), new.as_object()) {
        for (k, nv) in n {
            let ov = o.get(k).unwrap_or(&Value::Null);
            if ov == nv {
                continue;
            }
            if ov.is_object() && nv.is_object() && k != "items" {
                out.insert(k.clone(), previous_attributes(ov, nv));
            } else {
                out.insert(k.clone(), ov.clone());
            }
        }
        for (k, ov) in o {
            if !n.contains_key(k) {
                out.insert(k.clone(), ov.clone());
            }
        }
    }
    Value::Object(out)
}

/// Adds `count` calendar intervals (day/week/month/year) to a unix timestamp, clamping the
/// day of month like Stripe's billing anchors (Jan 31 + 1 month = Feb 28/29).
pub fn add_interval(ts: i64, interval: &str, count: i64) -> i64 {
    use time::{Duration, OffsetDateTime};
    let Ok(t) = OffsetDateTime::from_unix_timestamp(ts) else {
        return ts;
    };
    let months = match interval {
        "day" => return ts + 86_400 * count,
        "week" => return ts + 7 * 86_400 * count,
        "year" => 12 * count,
        _ => count,
    };
    let total = t.year() as i64 * 12 + (t.month() as i64 - 1) + months;
    let (year, month0) = (total.div_euclid(12) as i32, total.rem_euclid(12) as u8);
    let Ok(month) = time::Month::try_from(month0 + 1) else {
        return ts;
    };
    let day = t.day().min(month.length(year));
    match time::Date::from_calendar_date(year, month, day) {
        Ok(d) => (d.with_time(t.time()).assume_utc()).unix_timestamp(),
        Err(_) => ts + Duration::days(30 * months).whole_seconds(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_math_clamps() {
        // 2025-01-31T12:00:00Z
        let jan31 = 1_738_324_800;
        let feb = add_interval(jan31, "month", 1);
        let t = time::OffsetDateTime::from_unix_timestamp(feb).unwrap();
        assert_eq!((t.month() as u8, t.day(), t.hour()), (2, 28, 12));
        let y = time::OffsetDateTime::from_unix_timestamp(add_interval(jan31, "year", 1)).unwrap();
        assert_eq!((y.year(), y.month() as u8, y.day()), (2026, 1, 31));
    }

    #[test]
    fn previous_attributes_nested() {
        let old = json!({"email":"a","metadata":{"x":"1"},"invoice_settings":{"default_payment_method":null,"footer":null}});
        let new = json!({"email":"b","metadata":{"x":"1","y":"2"},"invoice_settings":{"default_payment_method":"pm_1","footer":null}});
        assert_eq!(
            previous_attributes(&old, &new),
            json!({"email":"a","metadata":{"y":null},"invoice_settings":{"default_payment_method":null}})
        );
    }
}
