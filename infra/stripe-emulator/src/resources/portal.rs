//! Customer portal: configurations (create, retrieve, update, list) and sessions (create,
//! with Stripe's validation of `flow_data`).

use super::{arg, subscriptions::UPDATABLE, Handler};
use crate::error::{EmulatorError, EmulatorResult};
use crate::ids::{new_id, random_alnum};
use crate::list::paginate;
use crate::object::Fields;
use crate::params::{apply_metadata, Params};
use crate::server::V1Routes;
use crate::state::{previous_attributes, Ctx, State};
use serde_json::{json, Value};

const CANCEL_REASONS: &[&str] = &[
    "customer_service",
    "low_quality",
    "missing_features",
    "other",
    "switched_service",
    "too_complex",
    "too_expensive",
    "unused",
];

fn default_features() -> Value {
    json!({
        "customer_update": {"allowed_updates": [], "enabled": false},
        "invoice_history": {"enabled": false},
        "payment_method_update": {"enabled": false, "payment_method_configuration": null},
        "subscription_cancel": {
            "cancellation_reason": {"enabled": false, "options": []},
            "enabled": false,
            "mode": "at_period_end",
            "proration_behavior": "none",
        },
        "subscription_update": {
            "billing_cycle_anchor": null,
            "default_allowed_updates": [],
            "enabled": false,
            "products": [],
            "proration_behavior": "none",
            "schedule_at_period_end": {"conditions": []},
            "trial_update_behavior": "end_trial",
        },
    })
}

/// Applies `features[...]` params onto `f`. On create each given feature needs `enabled`.
fn apply_features(st: &State, f: &mut Value, p: &Params, creating: bool) -> EmulatorResult<()> {
    p.allow(&[
        "customer_update",
        "invoice_history",
        "payment_method_update",
        "subscription_cancel",
        "subscription_update",
    ])?;
    let enabled = |fp: &Params, target: &mut Value| -> EmulatorResult<()> {
        match fp.boolean("enabled")? {
            Some(e) => target["enabled"] = json!(e),
            None if creating => return Err(EmulatorError::missing(&fp.name("enabled"))),
            None => {}
        }
        Ok(())
    };
    if let Some(cu) = p.sub("customer_update")? {
        cu.allow(&["enabled", "allowed_updates"])?;
        enabled(&cu, &mut f["customer_update"])?;
        if let Some(list) = cu.strings("allowed_updates")? {
            for u in &list {
                if !["address", "email", "name", "phone", "shipping", "tax_id"]
                    .contains(&u.as_str())
                {
                    return Err(EmulatorError::invalid_param(
                        cu.name("allowed_updates"),
                        format!("Invalid allowed_updates value: {u}"),
                    ));
                }
            }
            f["customer_update"]["allowed_updates"] = json!(list);
        }
    }
    if let Some(ih) = p.sub("invoice_history")? {
        ih.allow(&["enabled"])?;
        enabled(&ih, &mut f["invoice_history"])?;
    }
    if let Some(pm) = p.sub("payment_method_update")? {
        pm.allow(&["enabled", "payment_method_configuration"])?;
        enabled(&pm, &mut f["payment_method_update"])?;
        if let Some(c) = pm.string("payment_method_configuration")? {
            f["payment_method_update"]["payment_method_configuration"] =
                if c.is_empty() { Value::Null } else { json!(c) };
        }
    }
    if let Some(sc) = p.sub("subscription_cancel")? {
        sc.allow(&[
            "enabled",
            "mode",
            "proration_behavior",
            "cancellation_reason",
        ])?;
        enabled(&sc, &mut f["subscription_cancel"])?;
        if let Some(m) = sc.one_of("mode", &["at_period_end", "immediately"])? {
            f["subscription_cancel"]["mode"] = json!(m);
        }
        if let Some(pb) = sc.one_of("proration_behavior", &["create_prorations", "none"])? {
            f["subscription_cancel"]["proration_behavior"] = json!(pb);
        }
        if f["subscription_cancel"]["proration_behavior"] == "create_prorations"
            && f["subscription_cancel"]["mode"] != "immediately"
        {
            return Err(EmulatorError::invalid_param(
                sc.name("proration_behavior"),
                "`proration_behavior` of `create_prorations` is only compatible with `mode=immediately`.",
            ));
        }
        if let Some(cr) = sc.sub("cancellation_reason")? {
            cr.allow(&["enabled", "options"])?;
            let e = cr
                .boolean("enabled")?
                .ok_or_else(|| EmulatorError::missing(&cr.name("enabled")))?;
            let options = cr
                .strings("options")?
                .ok_or_else(|| EmulatorError::missing(&cr.name("options")))?;
            if let Some(bad) = options
                .iter()
                .find(|o| !CANCEL_REASONS.contains(&o.as_str()))
            {
                return Err(EmulatorError::invalid_param(
                    cr.name("options"),
                    format!("Invalid cancellation reason option: {bad}"),
                ));
            }
            f["subscription_cancel"]["cancellation_reason"] =
                json!({"enabled": e, "options": options});
        }
    }
    if let Some(su) = p.sub("subscription_update")? {
        su.allow(&[
            "enabled",
            "default_allowed_updates",
            "products",
            "proration_behavior",
            "schedule_at_period_end",
            "billing_cycle_anchor",
            "trial_update_behavior",
        ])?;
        enabled(&su, &mut f["subscription_update"])?;
        if let Some(list) = su.strings("default_allowed_updates")? {
            if let Some(bad) = list
                .iter()
                .find(|u| !["price", "promotion_code", "quantity"].contains(&u.as_str()))
            {
                return Err(EmulatorError::invalid_param(
                    su.name("default_allowed_updates"),
                    format!("Invalid default_allowed_updates value: {bad}"),
                ));
            }
            f["subscription_update"]["default_allowed_updates"] = json!(list);
        }
        if let Some(products) = su.objects("products")? {
            if products.len() > 10 {
                return Err(EmulatorError::invalid_param(
                    su.name("products"),
                    "You can specify at most 10 products.",
                ));
            }
            let mut out = Vec::new();
            for pr in &products {
                pr.allow(&["product", "prices", "adjustable_quantity"])?;
                let product = pr.require("product")?;
                if st.products.get(product).is_none() {
                    return Err(EmulatorError::no_such(
                        "product",
                        product,
                        &pr.name("product"),
                    ));
                }
                let prices = pr
                    .strings("prices")?
                    .ok_or_else(|| EmulatorError::missing(&pr.name("prices")))?;
                for price in &prices {
                    match st.prices.get(price) {
                        None => {
                            return Err(EmulatorError::no_such("price", price, &pr.name("prices")))
                        }
                        Some(v) if v["product"] != product => {
                            return Err(EmulatorError::invalid_param(
                                pr.name("prices"),
                                format!("The price {price} does not belong to product {product}."),
                            ))
                        }
                        Some(_) => {}
                    }
                }
                let adjustable = match pr.sub("adjustable_quantity")? {
                    None => json!({"enabled": false, "maximum": null, "minimum": 1}),
                    Some(a) => {
                        a.allow(&["enabled", "maximum", "minimum"])?;
                        json!({
                            "enabled": a.boolean("enabled")?.ok_or_else(|| EmulatorError::missing(&a.name("enabled")))?,
                            "maximum": a.integer("maximum")?,
                            "minimum": a.integer("minimum")?.unwrap_or(1),
                        })
                    }
                };
                out.push(json!({"adjustable_quantity": adjustable, "prices": prices, "product": product}));
            }
            f["subscription_update"]["products"] = Value::Array(out);
        }
        if let Some(pb) = su.one_of(
            "proration_behavior",
            &["always_invoice", "create_prorations", "none"],
        )? {
            f["subscription_update"]["proration_behavior"] = json!(pb);
        }
        if let Some(b) = su.one_of("billing_cycle_anchor", &["now", "unchanged"])? {
            f["subscription_update"]["billing_cycle_anchor"] = json!(b);
        }
        if let Some(t) = su.one_of("trial_update_behavior", &["continue_trial", "end_trial"])? {
            f["subscription_update"]["trial_update_behavior"] = json!(t);
        }
        if let Some(s) = su.sub("schedule_at_period_end")? {
            s.allow(&["conditions"])?;
            let mut conds = Vec::new();
            for c in s.objects("conditions")?.unwrap_or_default() {
                c.allow(&["type"])?;
                let t = c
                    .one_of("type", &["decreasing_item_amount", "shortening_interval"])?
                    .ok_or_else(|| EmulatorError::missing(&c.name("type")))?;
                conds.push(json!({"type": t}));
            }
            f["subscription_update"]["schedule_at_period_end"] = json!({"conditions": conds});
        }
    }
    Ok(())
}

fn apply_common(cfg: &mut Value, p: &Params, base_url: &str) -> EmulatorResult<()> {
    if let Some(bp) = p.sub("business_profile")? {
        bp.allow(&["headline", "privacy_policy_url", "terms_of_service_url"])?;
        for k in ["headline", "privacy_policy_url", "terms_of_service_url"] {
            if let Some(v) = bp.string(k)? {
                cfg["business_profile"][k] = if v.is_empty() { Value::Null } else { json!(v) };
            }
        }
    }
    for k in ["default_return_url", "name"] {
        if let Some(v) = p.string(k)? {
            cfg[k] = if v.is_empty() { Value::Null } else { json!(v) };
        }
    }
    if let Some(lp) = p.sub("login_page")? {
        lp.allow(&["enabled"])?;
        let e = lp
            .boolean("enabled")?
            .ok_or_else(|| EmulatorError::missing(&lp.name("enabled")))?;
        // A fresh shareable URL on enabling; disabling deactivates the old one.
        cfg["login_page"] = if e {
            json!({"enabled": true, "url": format!("{base_url}/p/login/test_{}", random_alnum(24))})
        } else {
            json!({"enabled": false, "url": null})
        };
    }
    apply_metadata(&mut cfg["metadata"], p.raw("metadata"))
}

pub const CREATE_CONFIGURATION: Handler = create_configuration;
fn create_configuration(
    st: &mut State,
    ctx: &Ctx,
    p: &Params,
    _: &[&str],
) -> EmulatorResult<Value> {
    p.allow(&[
        "features",
        "business_profile",
        "default_return_url",
        "login_page",
        "metadata",
        "name",
    ])?;
    let fp = p
        .sub("features")?
        .ok_or_else(|| EmulatorError::missing("features"))?;
    let mut features = default_features();
    apply_features(st, &mut features, &fp, true)?;
    let now = st.now();
    let mut cfg = json!({
        "id": new_id("bpc_"),
        "object": "billing_portal.configuration",
        "active": true,
        "application": null,
        "business_profile": {"headline": null, "privacy_policy_url": null, "terms_of_service_url": null},
        "created": now,
        "default_return_url": null,
        "features": features,
        // The first configuration stands in for the one the Dashboard creates as default.
        "is_default": !st.portal_configurations.iter().any(|c| c["is_default"] == true),
        "livemode": false,
        "login_page": {"enabled": false, "url": null},
        "metadata": {},
        "name": null,
        "updated": now,
    });
    apply_common(&mut cfg, p, &ctx.base_url)?;
    st.portal_configurations.insert(cfg.clone())?;
    st.emit(ctx, "billing_portal.configuration.created", &cfg, None);
    Ok(cfg)
}

fn configuration<'s>(st: &'s State, id: &str, param: &str) -> EmulatorResult<&'s Value> {
    st.portal_configurations
        .get(id)
        .ok_or_else(|| EmulatorError::no_such("billing_portal.configuration", id, param))
}

pub const GET_CONFIGURATION: Handler = get_configuration;
fn get_configuration(st: &mut State, _: &Ctx, p: &Params, ids: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[])?;
    configuration(st, arg(ids, 0), "configuration").cloned()
}

pub const UPDATE_CONFIGURATION: Handler = update_configuration;
fn update_configuration(
    st: &mut State,
    ctx: &Ctx,
    p: &Params,
    ids: &[&str],
) -> EmulatorResult<Value> {
    p.allow(&[
        "active",
        "features",
        "business_profile",
        "default_return_url",
        "login_page",
        "metadata",
        "name",
    ])?;
    let id = arg(ids, 0);
    let before = configuration(st, id, "configuration")?.clone();
    let mut cfg = before.clone();
    if let Some(active) = p.boolean("active")? {
        if !active && cfg["is_default"] == true {
            return Err(EmulatorError::invalid_param(
                "active",
                "You cannot deactivate the default configuration.",
            ));
        }
        cfg["active"] = json!(active);
    }
    if let Some(fp) = p.sub("features")? {
        apply_features(st, &mut cfg["features"], &fp, false)?;
    }
    apply_common(&mut cfg, p, &ctx.base_url)?;
    if cfg != before {
        cfg["updated"] = json!(st.now());
        st.portal_configurations.insert(cfg.clone())?;
        st.emit(
            ctx,
            "billing_portal.configuration.updated",
            &cfg,
            Some(previous_attributes(&before, &cfg)),
        );
    }
    Ok(cfg)
}

pub const LIST_CONFIGURATIONS: Handler = list_configurations;
fn list_configurations(st: &mut State, _: &Ctx, p: &Params, _: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[
        "active",
        "is_default",
        "limit",
        "starting_after",
        "ending_before",
    ])?;
    let active = p.boolean("active")?;
    let is_default = p.boolean("is_default")?;
    let items = st
        .portal_configurations
        .newest_first()
        .filter(|c| active.is_none_or(|a| c["active"] == a))
        .filter(|c| is_default.is_none_or(|d| c["is_default"] == d))
        .cloned()
        .collect();
    paginate(
        items,
        p,
        "/v1/billing_portal/configurations",
        "billing_portal.configuration",
    )
}

const FLOW_TYPES: &[&str] = &[
    "payment_method_update",
    "subscription_cancel",
    "subscription_update",
    "subscription_update_confirm",
];

/// The subscription a subscription flow names: it must exist, belong to the session's
/// customer and still be changeable.
fn flow_subscription(st: &State, fp: &Params, customer: &str) -> EmulatorResult<String> {
    let param = fp.name("subscription");
    let id = fp.require("subscription")?;
    let sub = st
        .subscriptions
        .get(id)
        .ok_or_else(|| EmulatorError::no_such("subscription", id, &param))?;
    if sub["customer"] != customer {
        return Err(EmulatorError::invalid_param(
            &param,
            format!("The subscription {id} does not belong to the customer {customer}."),
        ));
    }
    let status = sub.str_field("status")?;
    if !UPDATABLE.contains(&status) {
        return Err(EmulatorError::invalid_param(
            &param,
            format!("The subscription {id} has status `{status}`; only active, trialing or past_due subscriptions can be used in a portal flow."),
        ));
    }
    Ok(id.to_string())
}

fn require_feature(cfg: &Value, feature: &str, flow: &str) -> EmulatorResult<()> {
    if cfg["features"][feature]["enabled"] == true {
        return Ok(());
    }
    Err(EmulatorError::invalid_param(
        "flow_data[type]",
        format!("The `{flow}` flow cannot be used because `features[{feature}][enabled]` is false in the portal configuration {}.", cfg.id()?),
    ))
}

/// Validates `flow_data` and returns the session's `flow` with every sub-object present.
fn build_flow(st: &State, p: &Params, customer: &str, cfg: &Value) -> EmulatorResult<Value> {
    let Some(fd) = p.sub("flow_data")? else {
        return Ok(Value::Null);
    };
    fd.allow(&[
        "type",
        "after_completion",
        "subscription_cancel",
        "subscription_update",
        "subscription_update_confirm",
    ])?;
    let kind = fd
        .one_of("type", FLOW_TYPES)?
        .ok_or_else(|| EmulatorError::missing("flow_data[type]"))?;

    let mut after =
        json!({"hosted_confirmation": null, "redirect": null, "type": "portal_homepage"});
    if let Some(ac) = fd.sub("after_completion")? {
        ac.allow(&["type", "redirect", "hosted_confirmation"])?;
        let t = ac
            .one_of(
                "type",
                &["hosted_confirmation", "portal_homepage", "redirect"],
            )?
            .ok_or_else(|| EmulatorError::missing("flow_data[after_completion][type]"))?;
        after["type"] = json!(t);
        match t {
            "redirect" => {
                let r = ac.sub("redirect")?.ok_or_else(|| {
                    EmulatorError::missing("flow_data[after_completion][redirect]")
                })?;
                r.allow(&["return_url"])?;
                after["redirect"] = json!({"return_url": r.require("return_url")?});
            }
            "hosted_confirmation" => {
                let msg = match ac.sub("hosted_confirmation")? {
                    Some(h) => {
                        h.allow(&["custom_message"])?;
                        h.text("custom_message")?
                    }
                    None => None,
                };
                if msg.is_some_and(|m| m.chars().count() > 500) {
                    return Err(EmulatorError::invalid_param(
                        "flow_data[after_completion][hosted_confirmation][custom_message]",
                        "Invalid string: must be at most 500 characters",
                    ));
                }
                after["hosted_confirmation"] = json!({"custom_message": msg});
            }
            _ => {}
        }
    }

    let mut flow = json!({
        "after_completion": after,
        "subscription_cancel": null,
        "subscription_update": null,
        "subscription_update_confirm": null,
        "type": kind,
    });
    let section = |name: &str| -> EmulatorResult<Params> {
        fd.sub(name)?
            .ok_or_else(|| EmulatorError::missing(&format!("flow_data[{name}]")))
    };
    match kind {
        "payment_method_update" => require_feature(cfg, "payment_method_update", kind)?,
        "subscription_cancel" => {
            require_feature(cfg, "subscription_cancel", kind)?;
            let sc = section("subscription_cancel")?;
            sc.allow(&["subscription", "retention"])?;
            let sub = flow_subscription(st, &sc, customer)?;
            let retention = match sc.sub("retention")? {
                None => Value::Null,
                Some(r) => {
                    r.allow(&["type", "coupon_offer"])?;
                    r.one_of("type", &["coupon_offer"])?
                        .ok_or_else(|| EmulatorError::missing(&r.name("type")))?;
                    let co = r
                        .sub("coupon_offer")?
                        .ok_or_else(|| EmulatorError::missing(&r.name("coupon_offer")))?;
                    co.allow(&["coupon"])?;
                    let coupon = co.require("coupon")?;
                    super::coupons::ensure_redeemable(st, coupon, &co.name("coupon"))?;
                    json!({"coupon_offer": {"coupon": coupon}, "type": "coupon_offer"})
                }
            };
            flow["subscription_cancel"] = json!({"retention": retention, "subscription": sub});
        }
        "subscription_update" => {
            require_feature(cfg, "subscription_update", kind)?;
            let su = section("subscription_update")?;
            su.allow(&["subscription"])?;
            flow["subscription_update"] =
                json!({"subscription": flow_subscription(st, &su, customer)?});
        }
        _ => {
            require_feature(cfg, "subscription_update", kind)?;
            let sc = section("subscription_update_confirm")?;
            sc.allow(&["subscription", "items", "discounts"])?;
            let sub_id = flow_subscription(st, &sc, customer)?;
            let items = sc
                .objects("items")?
                .filter(|i| !i.is_empty())
                .ok_or_else(|| {
                    EmulatorError::missing("flow_data[subscription_update_confirm][items]")
                })?;
            if items.len() > 1 {
                return Err(EmulatorError::invalid_param(
                    "flow_data[subscription_update_confirm][items]",
                    "Currently, only up to one item may be specified.",
                ));
            }
            let sub =
                st.subscriptions.get(&sub_id).cloned().ok_or_else(|| {
                    EmulatorError::no_such("subscription", &sub_id, "subscription")
                })?;
            let sub_items = sub.field("items")?.array_field("data")?;
            if sub_items.len() > 1 {
                return Err(EmulatorError::invalid_param(
                    "flow_data[subscription_update_confirm][subscription]",
                    "Subscriptions with multiple items are not updatable in the portal.",
                ));
            }
            let mut out = Vec::new();
            for it in &items {
                it.allow(&["id", "price", "quantity"])?;
                let id = it.require("id")?;
                if !sub_items.iter().any(|si| si["id"] == id) {
                    return Err(EmulatorError::invalid_param(
                        it.name("id"),
                        format!(
                            "The subscription item {id} does not belong to subscription {sub_id}."
                        ),
                    ));
                }
                let price = it.text("price")?;
                if let Some(pr) = price {
                    let allowed = cfg["features"]["subscription_update"]["products"]
                        .as_array()
                        .is_some_and(|ps| {
                            ps.iter().any(|p| {
                                p["prices"]
                                    .as_array()
                                    .is_some_and(|l| l.iter().any(|x| x == pr))
                            })
                        });
                    if st.prices.get(pr).is_none() {
                        return Err(EmulatorError::no_such("price", pr, &it.name("price")));
                    }
                    if !allowed {
                        return Err(EmulatorError::invalid_param(
                            it.name("price"),
                            format!("The price {pr} is not in the portal configuration's `features[subscription_update][products]`."),
                        ));
                    }
                }
                let quantity = it.integer("quantity")?;
                let mut item = json!({"id": id, "price": price});
                if let Some(q) = quantity {
                    item["quantity"] = json!(q);
                }
                out.push(item);
            }
            let mut discounts = Vec::new();
            for d in sc.objects("discounts")?.unwrap_or_default() {
                d.allow(&["coupon", "promotion_code"])?;
                discounts.push(json!({"coupon": d.text("coupon")?, "promotion_code": d.text("promotion_code")?}));
            }
            flow["subscription_update_confirm"] =
                json!({"discounts": discounts, "items": out, "subscription": sub_id});
        }
    }
    Ok(flow)
}

const LOCALES: &[&str] = &[
    "auto", "bg", "cs", "da", "de", "el", "en", "en-AU", "en-CA", "en-GB", "en-IE", "en-IN",
    "en-NZ", "en-SG", "es", "es-419", "et", "fi", "fil", "fr", "fr-CA", "hr", "hu", "id", "it",
    "ja", "ko", "lt", "lv", "ms", "mt", "nb", "nl", "pl", "pt", "pt-BR", "ro", "ru", "sk", "sl",
    "sv", "th", "tr", "vi", "zh", "zh-HK", "zh-TW",
];

pub const CREATE_SESSION: Handler = create_session;
fn create_session(st: &mut State, ctx: &Ctx, p: &Params, _: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[
        "customer",
        "configuration",
        "flow_data",
        "locale",
        "on_behalf_of",
        "return_url",
    ])?;
    let customer = p.require("customer")?;
    st.customer(customer, "customer")?;
    let cfg = match p.text("configuration")? {
        Some(id) => {
            let c = configuration(st, id, "configuration")?;
            if c["active"] != true {
                return Err(EmulatorError::invalid_param(
                    "configuration",
                    format!("The configuration {id} is not active. Activate it or provide a different configuration."),
                ));
            }
            c.clone()
        }
        None => st
            .portal_configurations
            .iter()
            .find(|c| c["is_default"] == true)
            .cloned()
            .ok_or_else(|| EmulatorError::invalid(
                "No configuration provided and your test mode default configuration has not been created. Provide a configuration or create your default by saving your customer portal settings in test mode at https://dashboard.stripe.com/test/settings/billing/portal.",
            ))?,
    };
    let locale = p.one_of("locale", LOCALES)?;
    let flow = build_flow(st, p, customer, &cfg)?;
    let return_url = p
        .text("return_url")?
        .map(Value::from)
        .unwrap_or_else(|| cfg["default_return_url"].clone());
    let id = new_id("bps_");
    let session = json!({
        "id": id,
        "object": "billing_portal.session",
        "configuration": cfg["id"],
        "created": st.now(),
        "customer": customer,
        "customer_account": null,
        "flow": flow,
        "livemode": false,
        "locale": locale,
        "on_behalf_of": p.text("on_behalf_of")?,
        "return_url": return_url,
        "url": format!("{}/p/session/{id}", ctx.base_url),
    });
    st.portal_sessions.insert(session.clone())?;
    st.emit(ctx, "billing_portal.session.created", &session, None);
    Ok(session)
}

pub fn routes() -> V1Routes {
    V1Routes::default()
        .post("/v1/billing_portal/sessions", CREATE_SESSION)
        .get("/v1/billing_portal/configurations", LIST_CONFIGURATIONS)
        .post("/v1/billing_portal/configurations", CREATE_CONFIGURATION)
        .get(
            "/v1/billing_portal/configurations/{configuration}",
            GET_CONFIGURATION,
        )
        .post(
            "/v1/billing_portal/configurations/{configuration}",
            UPDATE_CONFIGURATION,
        )
}
