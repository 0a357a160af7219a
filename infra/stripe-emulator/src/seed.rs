//! Data every fresh emulator starts with: a small catalogue and Stripe's test cards.
//!
//! Ids are deterministic so docs and tests can name them:
//! products `prod_portico_pro`, `prod_portico_team`; prices `price_pro_monthly` (1200 usd),
//! `price_pro_yearly` (12000), `price_team_monthly` (2900), `price_team_yearly` (29000), each
//! with the same `lookup_key` minus the `price_` prefix, and the one-time `price_pro_lifetime`
//! (29900). Test payment methods (templates,
//! cloned on attach): `pm_card_visa` (4242), `pm_card_mastercard` (4444),
//! `pm_card_chargeDeclined` (0002, declined with `card_declined` / `generic_decline`),
//! `pm_card_chargeCustomerFail` (0341, attaches but every charge is declined),
//! `pm_usBankAccount` (`us_bank_account`, STRIPE TEST BANK 6789), `pm_sepaDebit` (`sepa_debit`,
//! DE 3000).

use crate::error::EmulatorResult;
use crate::resources::catalog::{one_time_price_object, price_object, product_object};
use crate::resources::payment_methods::{bank_template, card_template};
use crate::state::State;

pub const PRICE_PRO_MONTHLY: &str = "price_pro_monthly";
pub const PRICE_PRO_YEARLY: &str = "price_pro_yearly";
pub const PRICE_TEAM_MONTHLY: &str = "price_team_monthly";
pub const PRICE_TEAM_YEARLY: &str = "price_team_yearly";
/// A one-time price (29900 usd) of Portico Pro: a lifetime licence.
pub const PRICE_PRO_LIFETIME: &str = "price_pro_lifetime";
pub const PRODUCT_PRO: &str = "prod_portico_pro";
pub const PRODUCT_TEAM: &str = "prod_portico_team";
pub const PM_VISA: &str = "pm_card_visa";
pub const PM_MASTERCARD: &str = "pm_card_mastercard";
pub const PM_DECLINED: &str = "pm_card_chargeDeclined";
/// Attaches fine, then every charge is declined (renewals go `past_due`).
pub const PM_CHARGE_FAIL: &str = "pm_card_chargeCustomerFail";
/// A US bank account (ACH debit), STRIPE TEST BANK ••••6789.
pub const PM_US_BANK_ACCOUNT: &str = "pm_usBankAccount";
/// A SEPA Direct Debit account (DE, bank code 37040044) ••••3000.
pub const PM_SEPA_DEBIT: &str = "pm_sepaDebit";
pub const CHARGE_FAIL_FINGERPRINT: &str = "Cf0341QxZk2LmN7a";

pub fn seed(s: &mut State) -> EmulatorResult<()> {
    let now = s.now();
    let catalogue = [
        (
            PRODUCT_PRO,
            "Portico Pro",
            PRICE_PRO_MONTHLY,
            1200,
            PRICE_PRO_YEARLY,
            12000,
        ),
        (
            PRODUCT_TEAM,
            "Portico Team",
            PRICE_TEAM_MONTHLY,
            2900,
            PRICE_TEAM_YEARLY,
            29000,
        ),
    ];
    for (prod, name, monthly, m_amount, yearly, y_amount) in catalogue {
        s.products
            .insert(product_object(prod, name, Some(monthly), now))?;
        s.prices
            .insert(price_object(monthly, prod, m_amount, "month", now))?;
        s.prices
            .insert(price_object(yearly, prod, y_amount, "year", now))?;
    }
    s.prices.insert(one_time_price_object(
        PRICE_PRO_LIFETIME,
        PRODUCT_PRO,
        29900,
        now,
    ))?;
    s.pm_templates.insert(card_template(
        PM_VISA,
        "visa",
        "4242",
        "Xt5EWLLDS7FJjR1c",
        now,
    ))?;
    s.pm_templates.insert(card_template(
        PM_MASTERCARD,
        "mastercard",
        "4444",
        "Mc4DgRNDS3TAhF8p",
        now,
    ))?;
    s.pm_templates.insert(card_template(
        PM_DECLINED,
        "visa",
        "0002",
        "Dc2QfLpWs9KzT1aB",
        now,
    ))?;
    s.pm_templates.insert(card_template(
        PM_CHARGE_FAIL,
        "visa",
        "0341",
        CHARGE_FAIL_FINGERPRINT,
        now,
    ))?;
    s.pm_templates.insert(bank_template(
        PM_US_BANK_ACCOUNT,
        "us_bank_account",
        "6789",
        "Ub6789TqLw3NzR5e",
        now,
    ))?;
    s.pm_templates.insert(bank_template(
        PM_SEPA_DEBIT,
        "sepa_debit",
        "3000",
        "Sd3000XpKe8VbM2q",
        now,
    ))?;
    Ok(())
}
